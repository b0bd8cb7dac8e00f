package storage_test

import (
	"context"
	"testing"
	"time"

	"github.com/tip-project/tip/internal/testenv"
)

func TestWorkersAliveAndGone(t *testing.T) {
	ctx := context.Background()
	db := openFresh(t)
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	alive := func(id, queue string) int {
		t.Helper()
		n, err := db.WorkerAlive(ctx, id, queue, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := alive("w1", "tip"); n != 1 {
		t.Errorf("the first worker sees %d live", n)
	}
	if n := alive("w2", "tip"); n != 2 {
		t.Errorf("the second worker sees %d live", n)
	}
	if n := alive("other", "elsewhere"); n != 1 {
		t.Errorf("a worker of another queue sees %d live", n)
	}
	// A worker not seen for longer than the window died: it is not counted.
	if _, err := testenv.SQL(t, db).Exec(ctx, `UPDATE workers SET seen_at = now() - interval '31 seconds' WHERE identity = 'w2'`); err != nil {
		t.Fatal(err)
	}
	if n := alive("w1", "tip"); n != 1 {
		t.Errorf("with w2 silent for 31 s, w1 sees %d live", n)
	}
	if n := alive("w2", "tip"); n != 2 {
		t.Errorf("w2 back: it sees %d live", n)
	}
	if err := db.WorkerGone(ctx, "w2"); err != nil {
		t.Fatal(err)
	}
	var rows int
	if err := testenv.SQL(t, db).QueryRow(ctx, `SELECT count(*) FROM workers WHERE identity = 'w2'`).Scan(&rows); err != nil || rows != 0 {
		t.Errorf("w2 stopped but keeps %d rows (%v)", rows, err)
	}
	if n := alive("w1", "tip"); n != 1 {
		t.Errorf("after w2 stopped, w1 sees %d live", n)
	}
}

func TestUpstreamSlots(t *testing.T) {
	ctx := context.Background()
	db := openFresh(t)
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	acquire := func(holder string) (int, bool) {
		t.Helper()
		s, ok, err := db.AcquireUpstream(ctx, "feeds.example", 2, holder, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return s, ok
	}
	a, okA := acquire("a")
	b, okB := acquire("b")
	if !okA || !okB || a == b {
		t.Fatalf("two holders of two slots: %d %v, %d %v", a, okA, b, okB)
	}
	if _, ok := acquire("c"); ok {
		t.Fatal("a third holder got one of two slots")
	}
	if s, ok, _ := db.AcquireUpstream(ctx, "other.example", 2, "c", time.Minute); !ok || s != 0 {
		t.Errorf("another upstream's slots are its own: %d %v", s, ok)
	}
	if err := db.ReleaseUpstream(ctx, "feeds.example", a, "a"); err != nil {
		t.Fatal(err)
	}
	if s, ok := acquire("c"); !ok || s != a {
		t.Errorf("after a released slot %d, c got %d %v", a, s, ok)
	}
	// b's worker dies: its lease expires, and the slot is free again; b's renewal
	// then says it lost it.
	if _, err := testenv.SQL(t, db).Exec(ctx, `UPDATE upstream_leases SET expires_at = now() - interval '1 second' WHERE holder = 'b'`); err != nil {
		t.Fatal(err)
	}
	if s, ok := acquire("d"); !ok || s != b {
		t.Errorf("after b's lease expired, d got %d %v", s, ok)
	}
	if kept, err := db.RenewUpstream(ctx, "feeds.example", b, "b", time.Minute); err != nil || kept {
		t.Errorf("b renewed a lease taken by d: %v, %v", kept, err)
	}
	if kept, err := db.RenewUpstream(ctx, "feeds.example", b, "d", time.Minute); err != nil || !kept {
		t.Errorf("d could not renew its lease: %v, %v", kept, err)
	}
}
