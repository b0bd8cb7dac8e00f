package activities

import (
	"bytes"
	"context"
	"fmt"
	"os"

	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/workflows/contract"
)

// probeContent is a fixed payload: its content-addressed key is the same on every
// run, so probing never grows the bucket.
var probeContent = []byte("TIP storage probe: a worker wrote and read this object through the blob store.\n")

// Probe is the storage probe's activity (`tip doctor` runs it through a worker).
type Probe struct {
	Store interface {
		ServerVersion(ctx context.Context) (string, error)
		SchemaVersion(ctx context.Context) (int, error)
	}
	Blobs interface {
		PutBytes(ctx context.Context, data []byte, o storage.PutOptions) (storage.Blob, error)
		ReadAll(ctx context.Context, sha string) ([]byte, error)
		Endpoint() string
		Bucket() string
	}
	Identity string // the worker's, as Temporal knows it
}

// Probe proves that the worker reaching it can use PostgreSQL and S3: it reads the
// server and schema versions, then writes the probe object and reads it back.
func (a *Probe) Probe(ctx context.Context) (contract.ProbeReport, error) {
	host, _ := os.Hostname()
	r := contract.ProbeReport{Worker: a.Identity, Host: host, S3Endpoint: a.Blobs.Endpoint(), Bucket: a.Blobs.Bucket()}
	pv, err := a.Store.ServerVersion(ctx)
	if err != nil {
		return r, fmt.Errorf("probe postgres: %w", err)
	}
	r.PostgresVersion = pv
	v, err := a.Store.SchemaVersion(ctx)
	if err != nil {
		return r, fmt.Errorf("probe schema: %w", err)
	}
	r.SchemaVersion = v
	blob, err := a.Blobs.PutBytes(ctx, probeContent, storage.PutOptions{ContentType: "text/plain"})
	if err != nil {
		return r, fmt.Errorf("probe s3 put: %w", err)
	}
	back, err := a.Blobs.ReadAll(ctx, blob.SHA256)
	if err != nil {
		return r, fmt.Errorf("probe s3 get: %w", err)
	}
	if !bytes.Equal(back, probeContent) {
		return r, fmt.Errorf("probe s3: read back %d bytes that differ from the %d written", len(back), len(probeContent))
	}
	r.BlobKey = blob.Key
	return r, nil
}
