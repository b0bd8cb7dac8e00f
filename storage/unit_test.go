package storage_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tip-project/tip/storage"
)

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestOpenDBUnreachableFailsFastWithFix(t *testing.T) {
	addr := closedPort(t)
	start := time.Now()
	_, err := storage.OpenDB(context.Background(), "postgres://tip:secret@"+addr+"/tip?sslmode=disable")
	if err == nil {
		t.Fatal("OpenDB to a closed port succeeded")
	}
	for _, want := range []string{"postgres at " + addr, "not reachable", "make up", "TIP_POSTGRES_DSN"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("error %q leaks the password", err)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("took %s", d)
	}
}

func TestOpenDBBadDSN(t *testing.T) {
	_, err := storage.OpenDB(context.Background(), "postgres://tip:secret@[::1/tip")
	if err == nil || strings.Contains(err.Error(), "secret") || !strings.Contains(err.Error(), "TIP_POSTGRES_DSN") {
		t.Fatalf("bad DSN: %v", err)
	}
}

func TestBlobKeySpreadsByHash(t *testing.T) {
	sha := "f05f70583894d657b9bf4b75ff64373e1aa5a5c0e4191856467169d9e36b122f"
	if got, want := storage.BlobKey(sha), "sha256/f0/5f/"+sha; got != want {
		t.Fatalf("BlobKey = %q, want %q", got, want)
	}
}

func TestEmbeddedMigrationsAreNumberedInOrder(t *testing.T) {
	ms, err := storage.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range ms {
		if m.Version != i+1 || m.Name == "" || len(m.Checksum) != 64 || strings.TrimSpace(m.SQL) == "" {
			t.Fatalf("migration %d = %+v", i, m)
		}
	}
}
