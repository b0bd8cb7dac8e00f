// Package imaptest is a scripted IMAP server for tests: just enough of one
// (greeting, LOGIN, SELECT, UID SEARCH, UID FETCH, LOGOUT) for spamimap.Poll,
// to play the hostile server Dovecot will not. It can ignore the partial fetch
// asked for and stream a literal of any size, answer messages out of order, or
// answer a FETCH with whatever bytes a test writes.
package imaptest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// UIDValidity is the mailbox's.
const UIDValidity = 7

// Options script a server.
type Options struct {
	// Mails are the messages by UID, answered as asked (truncated to a
	// partial fetch).
	Mails map[uint32]string
	// Huge are the messages answered with a literal of that many bytes,
	// whatever part was asked for; streamed, never held.
	Huge map[uint32]int64
	// Reversed answers a FETCH's messages from the highest UID down.
	Reversed bool
	// FetchAnswer, when set, writes the FETCH responses in place of the
	// messages'; false ends the connection.
	FetchAnswer func(w *bufio.Writer) bool
}

// Server is a running scripted server.
type Server struct {
	o    Options
	l    net.Listener
	uids []uint32
	wg   sync.WaitGroup

	// Sessions counts the connections accepted; Streamed the bytes of huge
	// literals written.
	Sessions atomic.Int32
	Streamed atomic.Int64
}

// NewServer starts a server on loopback until the test ends.
func NewServer(t testing.TB, o Options) *Server {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{o: o, l: l}
	for u := range o.Mails {
		s.uids = append(s.uids, u)
	}
	for u := range o.Huge {
		s.uids = append(s.uids, u)
	}
	slices.Sort(s.uids)
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(func() { l.Close(); s.wg.Wait() })
	return s
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return s.l.Addr().String() }

func (s *Server) serve() {
	defer s.wg.Done()
	for {
		c, err := s.l.Accept()
		if err != nil {
			return
		}
		s.Sessions.Add(1)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer c.Close()
			s.session(c)
		}()
	}
}

func (s *Server) session(c net.Conn) {
	r := bufio.NewReader(c)
	w := bufio.NewWriter(c)
	fmt.Fprint(w, "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] fake ready\r\n")
	w.Flush()
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		tag, rest, _ := strings.Cut(strings.TrimRight(line, "\r\n"), " ")
		verb, args, _ := strings.Cut(rest, " ")
		switch strings.ToUpper(verb) {
		case "CAPABILITY":
			fmt.Fprintf(w, "* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n%s OK done\r\n", tag)
		case "LOGIN", "NOOP":
			fmt.Fprintf(w, "%s OK done\r\n", tag)
		case "SELECT", "EXAMINE":
			fmt.Fprintf(w, "* %d EXISTS\r\n* OK [UIDVALIDITY %d] ok\r\n%s OK [READ-ONLY] done\r\n", len(s.uids), UIDValidity, tag)
		case "LOGOUT":
			fmt.Fprintf(w, "* BYE bye\r\n%s OK done\r\n", tag)
			w.Flush()
			return
		case "UID":
			sub, spec, _ := strings.Cut(args, " ")
			switch strings.ToUpper(sub) {
			case "SEARCH":
				fmt.Fprint(w, "* SEARCH")
				for _, u := range s.uids {
					fmt.Fprintf(w, " %d", u)
				}
				fmt.Fprintf(w, "\r\n%s OK done\r\n", tag)
			case "FETCH":
				set, items, _ := strings.Cut(spec, " ")
				if !s.fetch(w, set, items) {
					return
				}
				fmt.Fprintf(w, "%s OK done\r\n", tag)
			default:
				fmt.Fprintf(w, "%s BAD unknown\r\n", tag)
			}
		default:
			fmt.Fprintf(w, "%s BAD unknown\r\n", tag)
		}
		if w.Flush() != nil {
			return
		}
	}
}

// fetch answers UID FETCH set items; false: the client went away.
func (s *Server) fetch(w *bufio.Writer, set, items string) bool {
	if s.o.FetchAnswer != nil {
		return s.o.FetchAnswer(w)
	}
	// BODY.PEEK[]<0.N>: at most N bytes, unless the server is told to ignore it
	partial := int64(-1)
	if i := strings.Index(items, "<0."); i >= 0 {
		n, _ := strconv.ParseInt(strings.TrimRight(items[i+3:], ">)"), 10, 64)
		partial = n
	}
	var uids []uint32
	for _, part := range strings.Split(set, ",") {
		lo, hi, isRange := strings.Cut(part, ":")
		a, _ := strconv.ParseUint(lo, 10, 32)
		b := a
		if isRange {
			b, _ = strconv.ParseUint(hi, 10, 32)
		}
		for u := a; u <= b; u++ {
			uids = append(uids, uint32(u))
		}
	}
	if s.o.Reversed {
		for i, j := 0, len(uids)-1; i < j; i, j = i+1, j-1 {
			uids[i], uids[j] = uids[j], uids[i]
		}
	}
	for i, u := range uids {
		if n, ok := s.o.Huge[u]; ok {
			fmt.Fprintf(w, "* %d FETCH (UID %d RFC822.SIZE %d BODY[]<0> {%d}\r\n", i+1, u, n, n)
			if !s.Stream(w, n) {
				return false
			}
			fmt.Fprint(w, ")\r\n")
			continue
		}
		body, ok := s.o.Mails[u]
		if !ok {
			continue
		}
		sent := body
		if partial >= 0 && int64(len(sent)) > partial {
			sent = sent[:partial]
		}
		fmt.Fprintf(w, "* %d FETCH (UID %d RFC822.SIZE %d BODY[]<0> {%d}\r\n%s)\r\n", i+1, u, len(body), len(sent), sent)
	}
	return true
}

// Stream writes n bytes of a mail-like literal from one small buffer; false:
// the client went away.
func (s *Server) Stream(w io.Writer, n int64) bool {
	chunk := []byte(strings.Repeat("spam spam spam spam spam spam spam spam spam spam spam spam spam\r\n", 1024))
	for n > 0 {
		b := chunk
		if int64(len(b)) > n {
			b = b[:n]
		}
		m, err := w.Write(b)
		s.Streamed.Add(int64(m))
		if err != nil {
			return false
		}
		n -= int64(m)
	}
	return true
}
