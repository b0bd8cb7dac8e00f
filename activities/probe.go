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

// Probe proves that the worker reaching it can use PostgreSQL and S3: it reads the
// server and schema versions, then writes the probe object and reads it back.
func (a *Activities) Probe(ctx context.Context) (contract.ProbeReport, error) {
	host, _ := os.Hostname()
	r := contract.ProbeReport{Worker: a.Identity, Host: host, S3Endpoint: a.Blobs.Endpoint(), Bucket: a.Blobs.Bucket()}
	if err := a.DB.Pool.QueryRow(ctx, "SHOW server_version").Scan(&r.PostgresVersion); err != nil {
		return r, fmt.Errorf("probe postgres: %w", err)
	}
	v, err := a.DB.SchemaVersion(ctx)
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
