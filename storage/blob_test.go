package storage_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/tip-project/tip/internal/testenv"
	"github.com/tip-project/tip/storage"
)

func newStore(t *testing.T) *storage.BlobStore {
	t.Helper()
	cfg := testenv.NewBucket(t, testenv.Config(t))
	b, err := storage.NewBlobStoreFromConfig(cfg.S3)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.EnsureBucket(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := b.EnsureBucket(context.Background()); err != nil {
		t.Fatalf("EnsureBucket twice: %v", err)
	}
	b.SpoolDir = t.TempDir()
	return b
}

func sha(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

func TestBlobRoundTripCompressesTextOnceAndDedups(t *testing.T) {
	ctx := context.Background()
	b := newStore(t)
	text := []byte(strings.Repeat("Received: from mail.example.net (203.0.113.7) by mx.trap.example\r\n", 500))

	first, err := b.PutBytes(ctx, text, storage.PutOptions{ContentType: "message/rfc822"})
	if err != nil {
		t.Fatal(err)
	}
	if first.SHA256 != sha(text) || first.Key != storage.BlobKey(sha(text)) || first.Existed {
		t.Fatalf("first put = %+v", first)
	}
	if first.Encoding != storage.EncodingZstd || first.StoredSize >= first.Size/4 {
		t.Fatalf("text stored as %s, %d of %d bytes: want zstd and much smaller", first.Encoding, first.StoredSize, first.Size)
	}
	second, err := b.PutBytes(ctx, text, storage.PutOptions{ContentType: "message/rfc822"})
	if err != nil {
		t.Fatal(err)
	}
	if !second.Existed || second.SHA256 != first.SHA256 || second.Size != int64(len(text)) || second.Encoding != storage.EncodingZstd {
		t.Fatalf("second put = %+v, want the existing blob", second)
	}
	back, err := b.ReadAll(ctx, first.SHA256)
	if err != nil || !bytes.Equal(back, text) {
		t.Fatalf("read back %d bytes, %v", len(back), err)
	}
	st, err := b.Stat(ctx, first.SHA256)
	if err != nil || st.Size != int64(len(text)) || st.ContentType != "message/rfc822" {
		t.Fatalf("stat = %+v, %v", st, err)
	}
}

func TestBlobKeepsCompressedContentAsIs(t *testing.T) {
	ctx := context.Background()
	b := newStore(t)
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	fmt.Fprint(w, strings.Repeat("1.2.3.4\n", 1000))
	w.Close()
	blob, err := b.PutBytes(ctx, gz.Bytes(), storage.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if blob.Encoding != storage.EncodingIdentity || blob.StoredSize != int64(gz.Len()) {
		t.Fatalf("gzip content stored as %+v; want identity", blob)
	}
	back, err := b.ReadAll(ctx, blob.SHA256)
	if err != nil || !bytes.Equal(back, gz.Bytes()) {
		t.Fatalf("read back: %v", err)
	}
	empty, err := b.PutBytes(ctx, nil, storage.PutOptions{})
	if err != nil || empty.Size != 0 {
		t.Fatalf("empty blob: %+v, %v", empty, err)
	}
	if back, err := b.ReadAll(ctx, empty.SHA256); err != nil || len(back) != 0 {
		t.Fatalf("empty blob read: %d bytes, %v", len(back), err)
	}
}

func TestBlobMissingAndCorrupt(t *testing.T) {
	ctx := context.Background()
	b := newStore(t)
	missing := strings.Repeat("0", 64)
	if _, _, err := b.Open(ctx, missing); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Open(missing) = %v, want ErrNotFound", err)
	}
	if _, err := b.Stat(ctx, "../../etc/passwd"); err == nil {
		t.Fatal("Stat accepted a key that is not a hash")
	}

	// Overwrite a stored object behind the store's back: reading it must fail loudly.
	blob, err := b.PutBytes(ctx, []byte("genuine raw mail\n"), storage.PutOptions{Compression: storage.CompressNever})
	if err != nil {
		t.Fatal(err)
	}
	s := testenv.Stack(t)
	raw, err := minio.New(s.S3Endpoint(), &minio.Options{Creds: credentials.NewStaticV4(s.S3AccessKey, s.S3SecretKey, "")})
	if err != nil {
		t.Fatal(err)
	}
	tampered := []byte("tampered raw mail\n")
	if _, err := raw.PutObject(ctx, b.Bucket(), blob.Key, bytes.NewReader(tampered), int64(len(tampered)),
		minio.PutObjectOptions{UserMetadata: map[string]string{"Tip-Sha256": blob.SHA256, "Tip-Encoding": "identity"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.ReadAll(ctx, blob.SHA256); !errors.Is(err, storage.ErrCorrupt) {
		t.Fatalf("reading a tampered blob = %v, want ErrCorrupt", err)
	}
}

func TestBlobStoreErrorsNameServiceAddressAndFix(t *testing.T) {
	cfg := testenv.Config(t)
	ctx := context.Background()

	wrong := cfg.S3
	wrong.SecretKey = "not-the-secret"
	b, _ := storage.NewBlobStoreFromConfig(wrong)
	err := b.Check(ctx)
	if err == nil || !strings.Contains(err.Error(), "rejected the credentials") || !strings.Contains(err.Error(), cfg.S3.Endpoint) {
		t.Fatalf("wrong secret: %v", err)
	}

	cfg = testenv.NewBucket(t, cfg)
	b, _ = storage.NewBlobStoreFromConfig(cfg.S3)
	if err := b.Check(ctx); err == nil || !strings.Contains(err.Error(), "has no bucket") || !strings.Contains(err.Error(), "tip setup") {
		t.Fatalf("missing bucket: %v", err)
	}
}

func TestBlobStoreUnreachable(t *testing.T) {
	b, err := storage.NewBlobStore(storage.S3Options{Endpoint: closedPort(t), AccessKey: "a", SecretKey: "b", Bucket: "tip"})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = b.Check(context.Background())
	if err == nil || !strings.Contains(err.Error(), "not reachable") || !strings.Contains(err.Error(), "make up") {
		t.Fatalf("unreachable S3: %v", err)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Fatalf("unreachable S3 took %s to report", d)
	}
}

// textStream yields n bytes of deterministic, moderately compressible text lines.
type textStream struct {
	left  int64
	state uint64
	line  []byte
}

func (s *textStream) Read(p []byte) (int, error) {
	if s.left <= 0 {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && s.left > 0 {
		if len(s.line) == 0 {
			s.state ^= s.state << 13
			s.state ^= s.state >> 7
			s.state ^= s.state << 17
			s.line = fmt.Appendf(s.line, "%d.%d.%d.%d\t# listed %016x\n", s.state>>56, s.state>>48&255, s.state>>40&255, s.state>>32&255, s.state&0xffff)
		}
		c := copy(p[n:], s.line)
		if int64(c) > s.left {
			c = int(s.left)
		}
		s.line = s.line[c:]
		n += c
		s.left -= int64(c)
	}
	return n, nil
}

// TestBlob200MBStreamsInBoundedMemory puts and gets a 200 MB object and checks that
// the heap never grows anywhere near the object's size.
func TestBlob200MBStreamsInBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("large object")
	}
	const size = 200 << 20
	const heapLimit = 64 << 20
	ctx := context.Background()
	b := newStore(t)

	want := sha256.New()
	if _, err := io.Copy(want, &textStream{left: size, state: 88172645463325252}); err != nil {
		t.Fatal(err)
	}
	wantSHA := hex.EncodeToString(want.Sum(nil))

	peak := watchHeap(t)
	blob, err := b.Put(ctx, &textStream{left: size, state: 88172645463325252}, storage.PutOptions{ContentType: "text/plain"})
	if err != nil {
		t.Fatal(err)
	}
	if blob.SHA256 != wantSHA || blob.Size != size {
		t.Fatalf("put: %+v", blob)
	}
	rc, _, err := b.Open(ctx, blob.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	got := sha256.New()
	n, err := io.Copy(got, rc)
	rc.Close()
	if err != nil || n != size || hex.EncodeToString(got.Sum(nil)) != wantSHA {
		t.Fatalf("get: %d bytes, %v", n, err)
	}
	p := peak()
	t.Logf("200 MB object: stored %d bytes (%s), peak heap in use %.1f MiB (limit %d MiB)",
		blob.StoredSize, blob.Encoding, float64(p)/(1<<20), heapLimit>>20)
	if p > heapLimit {
		t.Fatalf("peak heap in use %d MiB while streaming a 200 MB object; want under %d MiB", p>>20, heapLimit>>20)
	}
}

// watchHeap samples the heap until the returned function is called, and returns the
// peak bytes in use above the starting point.
func watchHeap(t *testing.T) func() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				if ms.HeapInuse > base && ms.HeapInuse-base > peak.Load() {
					peak.Store(ms.HeapInuse - base)
				}
			}
		}
	}()
	var once sync.Once
	done := func() uint64 {
		once.Do(func() { close(stop); wg.Wait() })
		return peak.Load()
	}
	t.Cleanup(func() { done() })
	return done
}
