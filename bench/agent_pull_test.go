//go:build bench

package bench

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tip-project/tip/agent"
	"github.com/tip-project/tip/mail"
)

// pullTarget is the pull rate issue 6 asks of a collector over loopback HTTPS,
// in MB (10^6 bytes) per second.
const pullTarget = 50

const (
	pullBatches     = 128  // about 2.3 MB each: some 300 MB in all
	pullBatchMails  = 1000 // mails per batch, batch_max_mails' default
	pullRuns        = 3
	pullStreamBytes = 0 // each stream request asks for the agent's default, 64 MiB
)

// TestAgentPull runs the agent pull measurement alone:
//
//	go test -tags bench -short -count=1 -run TestAgentPull -v ./bench/
//
// (-short skips the test stack the other measurements need).
func TestAgentPull(t *testing.T) {
	r := newReport()
	benchAgentPull(t, r)
	r.write(t)
}

// benchAgentPull serves a folder of generated batches with the agent's HTTPS
// server on loopback and pulls them all with the collector's Client, each
// batch's SHA-256 checked on the way, as a sync does.
func benchAgentPull(t *testing.T, r *report) {
	dir := t.TempDir()
	const id = "bench.agent"
	total := writePullBatches(t, dir, id)

	c := agent.DefaultConfig(dir)
	c.ID = id
	fp, _, err := agent.EnsureCert(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	conf, _, err := agent.ServerTLS(c)
	if err != nil {
		t.Fatal(err)
	}
	tokens := agent.OpenTokens(dir)
	secret, _, err := tokens.Add("bench", agent.ScopeFacts, 0)
	if err != nil {
		t.Fatal(err)
	}
	src, err := agent.OpenStore(dir, id)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- agent.NewServer(src, tokens, 1000, slog.New(slog.DiscardHandler)).Serve(ctx, ln, conf)
	}()
	defer func() {
		cancel()
		<-done
	}()

	var took []time.Duration
	for range pullRuns {
		client := &agent.Client{URL: "https://" + ln.Addr().String(), Token: secret, Fingerprint: fp}
		start := time.Now()
		h, err := client.Latest(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var got int64
		var after uint64
		for after < h.Latest {
			after, err = client.Stream(ctx, after, pullStreamBytes, func(_ agent.StreamItem, r io.Reader) error {
				n, err := io.Copy(io.Discard, r)
				got += n
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		took = append(took, time.Since(start))
		if got != total {
			t.Fatalf("pulled %d bytes, published %d", got, total)
		}
	}
	slices.Sort(took)
	rate := func(d time.Duration) float64 { return float64(total) / d.Seconds() / 1e6 }
	med := took[len(took)/2]
	r.add(t, "agent pull: %d batches, %.0f MB over loopback HTTPS in %s = %.0f MB/s (%.1fx the %d MB/s target) [SHA-256 checked; %d CPUs; median of %d runs, %.0f-%.0f MB/s]",
		pullBatches, float64(total)/1e6, secs(med), rate(med), rate(med)/pullTarget, pullTarget, runtime.NumCPU(), pullRuns,
		rate(took[len(took)-1]), rate(took[0]))
}

// writePullBatches publishes pullBatches batches of generated mails into dir as
// the agent's store lays them out, and returns their bytes in all. The facts
// are random text, which gzip shrinks about as much as real ones.
func writePullBatches(t *testing.T, dir, id string) int64 {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, agent.BatchesDir), 0o700); err != nil {
		t.Fatal(err)
	}
	entries := make([]agent.Entry, pullBatches)
	created := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	errs := make(chan error, pullBatches)
	sem := make(chan struct{}, runtime.NumCPU())
	for i := range pullBatches {
		wg.Add(1)
		sem <- struct{}{}
		go func(v uint64) {
			defer func() { <-sem; wg.Done() }()
			rng := rand.New(rand.NewPCG(v, 6))
			text := func(n int) string {
				b := make([]byte, n+8)
				for i := 0; i < n; i += 8 {
					binary.LittleEndian.PutUint64(b[i:], rng.Uint64())
				}
				return base64.RawURLEncoding.EncodeToString(b)[:n]
			}
			b := agent.Batch{Header: agent.BatchHeader{Agent: id, Version: v, Created: created}}
			for j := range pullBatchMails {
				raw := text(64)
				sum := sha256.Sum256([]byte(raw))
				b.Mails = append(b.Mails, agent.Mail{
					Name: fmt.Sprintf("1764201600.M%dP%d.mx1", v, j), Folder: "spam", Delivered: created,
					Facts: mail.Facts{SHA256: hex.EncodeToString(sum[:]), Size: 4000, SenderIP: "203.0.113.9",
						From: text(24) + "@example.org", Subject: text(60), MessageID: "<" + text(32) + "@mx>",
						Domains: []string{text(12) + ".example", text(10) + ".example"}, CampaignKey: text(40)},
				})
				for k := range 6 {
					host := text(16) + ".example"
					b.Mails[j].Facts.URLs = append(b.Mails[j].Facts.URLs, mail.URL{URL: "http://" + host + "/" + text(400), Host: host, Registrable: host, Source: []string{"text", "html"}[k%2]})
				}
			}
			var buf bytes.Buffer
			if err := agent.EncodeBatch(&buf, b); err != nil {
				errs <- err
				return
			}
			if err := os.WriteFile(filepath.Join(dir, agent.BatchesDir, agent.BatchName(v)), buf.Bytes(), 0o644); err != nil {
				errs <- err
				return
			}
			sum := sha256.Sum256(buf.Bytes())
			entries[v-1] = agent.Entry{Version: v, SHA256: hex.EncodeToString(sum[:]), Size: int64(buf.Len()), Mails: len(b.Mails), Schema: agent.Schema, Created: created}
		}(uint64(i + 1))
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var m bytes.Buffer
	if err := agent.EncodeManifest(&m, agent.Manifest{Agent: id, Versions: entries}); err != nil {
		t.Fatal(err)
	}
	if err := agent.WriteFileAtomic(filepath.Join(dir, agent.ManifestFile), m.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, e := range entries {
		total += e.Size
	}
	return total
}
