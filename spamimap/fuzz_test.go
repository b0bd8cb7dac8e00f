package spamimap

import (
	"bufio"
	"context"
	"testing"
	"time"

	"github.com/tip-project/tip/spamimap/imaptest"
)

// FuzzFetchAnswer has the server answer a FETCH of UIDs 1 to 3 with arbitrary
// bytes, then hang up: the poll must end (with mail or an error) without
// panicking, and hand over only messages asked for, each within the size asked
// for. (A server that stalls instead is go-imap's timeouts' and the context's.)
func FuzzFetchAnswer(f *testing.F) {
	const limit = 64
	for _, seed := range []string{
		"* 1 FETCH (UID 1 RFC822.SIZE 5 BODY[]<0> {5}\r\nhello)\r\n",
		"* 1 FETCH (UID 1 RFC822.SIZE 500 BODY[]<0> {500}\r\nhello)\r\n",                           // over the limit, cut short
		"* 1 FETCH (UID 1 BODY[]<0> {4294967295}\r\n",                                              // announced 4 GiB
		"* 1 FETCH (BODY[]<0> {5}\r\nhello UID 1)\r\n",                                             // body before UID
		"* 1 FETCH (UID 1 BODY[] NIL)\r\n* 2 FETCH (UID 2 BODY[] \"quoted\")\r\n",                  // no literal
		"* 1 FETCH (UID 9 BODY[] {2}\r\nhi)\r\n* 2 FETCH (UID 2 BODY[] {2}\r\nhi)\r\n",             // a UID not asked for
		"* 1 FETCH (UID 1 BODY[] {2}\r\nhi)\r\n* 1 FETCH (UID 1 BODY[] {3}\r\nbye)\r\n",            // the same twice
		"* 1 FETCH (UID 1 ENVELOPE (NIL {3}\r\nabc NIL NIL NIL NIL NIL NIL NIL NIL))\r\n",          // unrequested envelope
		"* 1 FETCH (UID 1 BODY[HEADER] {2}\r\nhi BODY[] {2}\r\nho)\r\n",                            // two sections
		"* 1 FETCH (UID 1 BODY[]<0> {-1}\r\n",                                                      // a negative size
		"* 1 FETCH (UID 0 BODY[] {1}\r\nx)\r\n",                                                    // UID 0
		"* 1 FETCH (UID 4294967295 BODY[] {1}\r\nx)\r\n",                                           // the last UID
		"* 1 FETCH (UID 3 RFC822.SIZE 1 BODY[] {1}\r\nx)\r\n* 1 FETCH (UID 2 BODY[] {1}\r\ny)\r\n", // out of order
		"* BYE going away\r\n",
		"* 1 FETCH (((((((((((((((((((((((((((((((((((((((((\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, answer []byte) {
		srv := imaptest.NewServer(t, imaptest.Options{Mails: map[uint32]string{1: "a", 2: "b", 3: "c"}, FetchAnswer: func(w *bufio.Writer) bool {
			w.Write(answer)
			w.Flush()
			return false
		}})
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, _, _ = Poll(ctx, fakeBox(srv), Cursor{}, Options{MaxSize: limit, BatchBytes: 4 * limit}, func(batch []Mail, next Cursor) error {
			for _, m := range batch {
				if m.UID < 1 || m.UID > 3 || int64(len(m.Raw)) > limit || (m.Raw == nil) == (m.Refused == "") {
					t.Fatalf("handed over %+v", m)
				}
			}
			if next.LastUID > 3 {
				t.Fatalf("cursor %+v past the mailbox", next)
			}
			return nil
		})
		if ctx.Err() != nil {
			t.Fatal("the poll did not end")
		}
	})
}
