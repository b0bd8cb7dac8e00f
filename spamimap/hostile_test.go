package spamimap

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tip-project/tip/spamimap/imaptest"
)

type collected struct {
	mails   map[uint32][]byte
	refused map[uint32]string
	calls   int
	last    Cursor
}

func (c *collected) stored(batch []Mail, next Cursor) error {
	c.calls++
	for _, m := range batch {
		if m.Refused != "" {
			c.refused[m.UID] = m.Refused
		} else {
			c.mails[m.UID] = m.Raw
		}
	}
	c.last = next
	return nil
}

func newCollected() *collected {
	return &collected{mails: map[uint32][]byte{}, refused: map[uint32]string{}}
}

// A server that ignores the partial fetch and answers with a 300 MiB literal
// has that message refused, unread, with the reason; the messages after it are
// collected all the same, the cursor moves past it, and memory stays small.
// (go-imap v1 allocated the literal whole: 916 MiB for this test.)
func TestHugeLiteralIsRefused(t *testing.T) {
	const huge, limit = 300 << 20, 1 << 20
	for _, reversed := range []bool{false, true} {
		t.Run(fmt.Sprintf("reversed=%v", reversed), func(t *testing.T) {
			f := imaptest.NewServer(t, imaptest.Options{Mails: map[uint32]string{1: fakeMail(1), 3: fakeMail(3), 4: fakeMail(4)},
				Huge: map[uint32]int64{2: huge}, Reversed: reversed})
			got := newCollected()
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			cur, n, err := Poll(context.Background(), fakeBox(f), Cursor{}, Options{MaxSize: limit}, got.stored)
			runtime.ReadMemStats(&after)
			allocated := after.TotalAlloc - before.TotalAlloc
			t.Logf("allocated %d KiB; the server streamed %d KiB of its literal over %d connections", allocated>>10, f.Streamed.Load()>>10, f.Sessions.Load())
			if err != nil || n != 3 || cur != (Cursor{UIDValidity: imaptest.UIDValidity, LastUID: 4}) || got.last != cur {
				t.Fatalf("poll: cursor %+v (last stored %+v), %d fetched, %v", cur, got.last, n, err)
			}
			for _, u := range []uint32{1, 3, 4} {
				if string(got.mails[u]) != fakeMail(u) {
					t.Errorf("UID %d: %q", u, got.mails[u])
				}
			}
			if reason := got.refused[2]; !strings.Contains(reason, "314572800 bytes where at most 1048576 were asked for") || got.mails[2] != nil {
				t.Errorf("UID 2: refused %q, fetched %d bytes", reason, len(got.mails[2]))
			}
			if allocated > 16<<20 {
				t.Errorf("allocated %d MiB polling 3 small messages and a refused one", allocated>>20)
			}
			// The refused message is not asked for again.
			again := newCollected()
			if cur2, n, err := Poll(context.Background(), fakeBox(f), cur, Options{MaxSize: limit}, again.stored); err != nil || n != 0 || cur2 != cur || len(again.refused) != 0 {
				t.Fatalf("next poll: cursor %+v, %d fetched, refused %v, %v", cur2, n, again.refused, err)
			}
		})
	}
}

// A batch holds at most BatchBytes of mail: the answer is cut short there and
// the rest fetched over a new connection, in order, none lost or repeated.
func TestBatchesAreBoundedInBytes(t *testing.T) {
	mails := map[uint32]string{}
	for u := uint32(1); u <= 20; u++ {
		mails[u] = fakeMail(u) + strings.Repeat("x", 4000)
	}
	for _, reversed := range []bool{false, true} {
		t.Run(fmt.Sprintf("reversed=%v", reversed), func(t *testing.T) {
			f := imaptest.NewServer(t, imaptest.Options{Mails: mails, Reversed: reversed})
			var order []uint32
			got := newCollected()
			cur, n, err := Poll(context.Background(), fakeBox(f), Cursor{}, Options{BatchBytes: 10000}, func(batch []Mail, next Cursor) error {
				var held int
				for _, m := range batch {
					held += len(m.Raw)
					order = append(order, m.UID)
				}
				if held > 10000 && len(batch) > 1 {
					t.Errorf("a batch of %d messages holds %d bytes", len(batch), held)
				}
				return got.stored(batch, next)
			})
			if err != nil || n != 20 || cur.LastUID != 20 || len(got.mails) != 20 || len(got.refused) != 0 {
				t.Fatalf("cursor %+v, %d fetched, %d distinct, %v", cur, n, len(got.mails), err)
			}
			for u, raw := range got.mails {
				if !bytes.Equal(raw, []byte(mails[u])) {
					t.Errorf("UID %d differs", u)
				}
			}
			if f.Sessions.Load() < 5 {
				t.Errorf("%d connections for 20 messages of 4 KB in batches of 10 KB", f.Sessions.Load())
			}
			if !reversed && !slices.IsSorted(order) {
				t.Errorf("fetched in the order %v", order)
			}
		})
	}
}

// A server that sends more than any answer needs has the poll fail saying so,
// before memory fills: here a literal of 200 MiB in an envelope nobody asked
// for, which go-imap would read whole into a string.
func TestUnrequestedDataIsCutOff(t *testing.T) {
	var f *imaptest.Server
	f = imaptest.NewServer(t, imaptest.Options{Mails: map[uint32]string{1: fakeMail(1)}, FetchAnswer: func(w *bufio.Writer) bool {
		const n = 200 << 20
		fmt.Fprintf(w, "* 1 FETCH (UID 1 ENVELOPE (NIL {%d}\r\n", n)
		if !f.Stream(w, n) {
			return false
		}
		fmt.Fprint(w, " NIL NIL NIL NIL NIL NIL NIL NIL))\r\n")
		return true
	}})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	cur, n, err := Poll(context.Background(), fakeBox(f), Cursor{}, Options{MaxSize: 1 << 20, BatchBytes: 1 << 20}, newCollected().stored)
	runtime.ReadMemStats(&after)
	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("%v; allocated %d KiB, the server streamed %d KiB", err, allocated>>10, f.Streamed.Load()>>10)
	if err == nil || !strings.Contains(err.Error(), "the server sent more than any answer needs answering UID FETCH from UID 1") || n != 0 || cur.LastUID != 0 {
		t.Fatalf("cursor %+v, %d fetched, %v", cur, n, err)
	}
	if allocated > 32<<20 {
		t.Errorf("allocated %d MiB", allocated>>20)
	}
}

// A server that stops answering has the command fail after Options.Timeout,
// saying which.
func TestSilentServerTimesOut(t *testing.T) {
	silence := make(chan struct{})
	f := imaptest.NewServer(t, imaptest.Options{Mails: map[uint32]string{1: fakeMail(1)}, FetchAnswer: func(*bufio.Writer) bool {
		<-silence
		return false
	}})
	t.Cleanup(func() { close(silence) }) // before the server's cleanup waits for its sessions
	cur, n, err := Poll(context.Background(), fakeBox(f), Cursor{}, Options{Timeout: 200 * time.Millisecond}, newCollected().stored)
	if err == nil || !strings.Contains(err.Error(), "the server sent nothing for 200ms answering UID FETCH from UID 1") || n != 0 || cur.LastUID != 0 {
		t.Fatalf("cursor %+v, %d fetched, %v", cur, n, err)
	}
}
