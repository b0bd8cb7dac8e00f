package contract

// ProbeWorkflowIDPrefix starts the ID of every probe run (`tip doctor`).
const ProbeWorkflowIDPrefix = "tip-probe/"

// ProbeReport says what a worker reached when it ran the storage probe.
type ProbeReport struct {
	Worker          string
	Host            string
	PostgresVersion string
	SchemaVersion   int
	S3Endpoint      string
	Bucket          string
	BlobKey         string
}

// ProbeActivity is the storage probe's registered name.
const ProbeActivity = "Probe"
