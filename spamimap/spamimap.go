// Package spamimap fetches new mail from an IMAP spamtrap mailbox with go-imap
// v2 (github.com/emersion/go-imap/v2): implicit TLS, STARTTLS or plain (loopback
// only), a cursor of UIDVALIDITY and last UID so only new mail is fetched, and an
// optional delete or move once the caller has stored a batch safely. No Temporal
// inside.
//
// The server is trusted with nothing that costs memory. Each message is asked
// for truncated to Options.MaxSize, and go-imap v2 hands over its body as a
// stream whose announced size is known before a byte is read: a server that
// ignores the partial fetch has the message refused, unread, with the reason
// (go-imap v1 read any literal whole, up to the 4 GiB a server announced). A
// batch holds at most Options.BatchBytes of mail, and the connection reads at
// most what the command in flight can need, so unrequested data (a literal in
// an envelope nobody asked for, a line without end) ends the poll instead of
// filling memory.
package spamimap

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/tip-project/tip/catalog"
)

// Cursor is how far a mailbox was read: the last UID stored under a UIDVALIDITY.
// A server that changes UIDVALIDITY renumbered the mailbox: reading restarts at
// UID 1 (the caller's store de-duplicates by content).
type Cursor struct {
	UIDValidity uint32 `json:"uid_validity"`
	LastUID     uint32 `json:"last_uid"`
}

// Mail is one message of a batch: fetched (Raw), or refused (Refused says why;
// Raw is nil). A refused message is passed like a fetched one, so the cursor
// moves past it and it is not asked for again, but it stays in the mailbox
// whatever the after policy.
type Mail struct {
	UID     uint32
	Raw     []byte
	Size    int64 // as the server reports it (RFC822.SIZE)
	Refused string
}

// Options bound a poll.
type Options struct {
	Batch      int   // messages per fetch (and per Stored call); default 100
	MaxSize    int64 // larger messages are fetched truncated to this many bytes; default 25 MiB
	BatchBytes int64 // mail held before it is stored; default 64 MiB (a message larger than this makes a batch alone)
	// Timeout bounds the dial, and how long a command waits for the server's
	// next byte (go-imap itself waits for the first byte of an answer without
	// end); default 30s. The caller's context bounds the whole poll.
	Timeout time.Duration
}

func (o Options) withDefaults() Options {
	if o.Batch <= 0 {
		o.Batch = 100
	}
	if o.MaxSize <= 0 {
		o.MaxSize = 25 << 20
	}
	if o.BatchBytes <= 0 {
		o.BatchBytes = 64 << 20
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	return o
}

// What the server may send answering a command other than FETCH, and a FETCH
// beyond its messages' bodies: a SEARCH of a few million UIDs fits.
const (
	commandBudget    = 1 << 20
	searchBudget     = 64 << 20
	perMessageBudget = 4 << 10
)

// Stored is called after each batch; when it returns nil the batch is safe and the
// cursor may advance (and the mail be moved or deleted).
type Stored func(batch []Mail, next Cursor) error

// Poll logs in, selects the mailbox and fetches every message after the cursor in
// batches, handing each to stored, then applies the mailbox's after policy to
// what was stored. It returns the final cursor and how many messages it fetched
// (refused ones not counted). A batch cut short (a refused message, or
// BatchBytes reached) ends its connection, since the rest of the answer is not
// read; the poll goes on over a new one.
func Poll(ctx context.Context, box catalog.Mailbox, cur Cursor, o Options, stored Stored) (Cursor, int, error) {
	p := &poll{box: box, o: o.withDefaults(), stored: stored, cur: cur, settled: map[uint32]bool{}}
	for {
		again, err := p.session(ctx)
		if err != nil || !again {
			return p.cur, p.fetched, err
		}
	}
}

// poll is the state of one Poll across its connections.
type poll struct {
	box     catalog.Mailbox
	o       Options
	stored  Stored
	cur     Cursor
	fetched int
	// settled are the UIDs past the cursor this poll is done with: stored,
	// refused, or asked for and not answered. The cursor moves past the ones
	// that follow it without a gap.
	settled map[uint32]bool
	// unmoved are stored UIDs whose after policy waits for the next connection
	// (their batch was cut short).
	unmoved []uint32
}

// session runs one connection; again says the poll goes on over another.
func (p *poll) session(ctx context.Context) (again bool, err error) {
	s, err := open(ctx, p.box, p.o)
	if err != nil {
		return false, err
	}
	defer s.close()
	if err := s.login(); err != nil {
		return false, err
	}
	validity, err := s.selectMailbox()
	if err != nil {
		return false, err
	}
	if validity != p.cur.UIDValidity {
		p.cur = Cursor{UIDValidity: validity}
		clear(p.settled)
		p.unmoved = nil
	}
	if len(p.unmoved) > 0 {
		if err := s.after(p.unmoved); err != nil {
			return false, err
		}
		p.unmoved = nil
	}
	for {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		found, err := s.search(p.cur.LastUID + 1)
		if err != nil {
			return false, err
		}
		want := p.pick(found)
		if len(want) == 0 {
			// Whatever is left was refused earlier in this poll.
			if next := p.advance(found); next != p.cur {
				if err := p.stored(nil, next); err != nil {
					return false, err
				}
				p.cur = next
			}
			return false, nil
		}
		batch, cut, err := s.fetch(want, p.o)
		if err != nil {
			return false, err
		}
		if len(batch) == 0 && !cut {
			return false, nil // asked for, not answered: asked again next poll
		}
		for _, m := range batch {
			p.settled[m.UID] = true
		}
		if !cut {
			for _, u := range want {
				p.settled[u] = true
			}
		}
		next := p.advance(found)
		if err := p.stored(batch, next); err != nil {
			return false, err
		}
		p.cur = next
		var keep []uint32
		for _, m := range batch {
			if m.Refused == "" {
				keep = append(keep, m.UID)
				p.fetched++
			}
		}
		for u := range p.settled {
			if u <= p.cur.LastUID {
				delete(p.settled, u)
			}
		}
		if cut {
			p.unmoved = keep
			return true, nil
		}
		if err := s.after(keep); err != nil {
			return false, err
		}
	}
}

// pick returns up to Batch UIDs of found not settled yet, in order.
func (p *poll) pick(found []imap.UIDRange) []uint32 {
	var want []uint32
	each(found, func(u uint32) bool {
		if !p.settled[u] {
			want = append(want, u)
		}
		return len(want) < p.o.Batch
	})
	return want
}

// advance is the cursor past every found UID settled without a gap after it.
func (p *poll) advance(found []imap.UIDRange) Cursor {
	next := p.cur
	each(found, func(u uint32) bool {
		if !p.settled[u] {
			return false
		}
		next.LastUID = u
		return true
	})
	return next
}

// each calls f on the UIDs of sorted, disjoint ranges in order, while it returns true.
func each(ranges []imap.UIDRange, f func(uint32) bool) {
	for _, r := range ranges {
		for u := uint32(r.Start); ; u++ {
			if !f(u) {
				return
			}
			if u == uint32(r.Stop) {
				break
			}
		}
	}
}

// session is one connection, logged in.
type session struct {
	box  catalog.Mailbox
	raw  net.Conn
	m    *meter
	c    *imapclient.Client
	stop func() bool
	// broken: the connection was closed in the middle of an answer, or a
	// message's body could not be read. Its command is left alone: go-imap
	// would read the body a second time, alongside its reader (a data race).
	broken bool
}

func open(ctx context.Context, box catalog.Mailbox, o Options) (*session, error) {
	host, _, err := net.SplitHostPort(box.Address)
	if err != nil {
		return nil, fmt.Errorf("imap %s: address %q: %w", box.Name, box.Address, err)
	}
	if box.TLS == "none" {
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			return nil, fmt.Errorf("imap %s: tls: none is allowed on loopback only (the password would cross the network in clear)", box.Name)
		}
	}
	tc := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if box.CAFile != "" {
		pem, err := os.ReadFile(box.CAFile)
		if err != nil {
			return nil, fmt.Errorf("imap %s: ca_file: %w", box.Name, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("imap %s: ca_file %s holds no PEM certificate", box.Name, box.CAFile)
		}
		tc.RootCAs = pool
	}
	d := &net.Dialer{Timeout: o.Timeout}
	raw, err := d.DialContext(ctx, "tcp", box.Address)
	if err != nil {
		return nil, fmt.Errorf("imap %s: %w", box.Name, err)
	}
	s := &session{box: box, raw: raw, m: &meter{Conn: raw, timeout: o.Timeout}}
	s.stop = context.AfterFunc(ctx, func() { raw.Close() })
	s.m.begin(commandBudget, "the greeting")
	defer s.m.end()
	var conn net.Conn = s.m
	if box.TLS == "tls" {
		tconn := tls.Client(s.m, tc)
		if err := tconn.HandshakeContext(ctx); err != nil {
			s.close()
			return nil, fmt.Errorf("imap %s: TLS: %w", box.Name, s.m.explain(err))
		}
		conn = tconn
	}
	opts := &imapclient.Options{TLSConfig: tc}
	if box.TLS == "starttls" {
		// STARTTLS is sent whatever the server advertises: one that cannot do it
		// answers NO, and no password crosses in clear.
		s.c, err = imapclient.NewStartTLS(conn, opts)
		if err != nil {
			s.close()
			return nil, fmt.Errorf("imap %s: STARTTLS: %w", box.Name, s.m.explain(err))
		}
	} else {
		s.c = imapclient.New(conn, opts)
	}
	if err := s.c.WaitGreeting(); err != nil {
		s.close()
		return nil, fmt.Errorf("imap %s: greeting: %w", box.Name, s.m.explain(err))
	}
	return s, nil
}

func (s *session) login() error {
	s.m.begin(commandBudget, "LOGIN")
	defer s.m.end()
	if err := s.c.Login(s.box.Username, s.box.Secret()).Wait(); err != nil {
		return fmt.Errorf("imap %s: login as %s: %w", s.box.Name, s.box.Username, s.m.explain(err))
	}
	return nil
}

func (s *session) selectMailbox() (uint32, error) {
	s.m.begin(commandBudget, "SELECT")
	defer s.m.end()
	st, err := s.c.Select(s.box.Mailbox, &imap.SelectOptions{ReadOnly: s.box.After == "keep"}).Wait()
	if err != nil {
		return 0, fmt.Errorf("imap %s: select %s: %w", s.box.Name, s.box.Mailbox, s.m.explain(err))
	}
	return st.UIDValidity, nil
}

// search returns the UIDs from `from` on, as sorted, disjoint ranges. "UID
// SEARCH UID n:*" answers the last message even when its UID is below n, so
// every UID is checked.
func (s *session) search(from uint32) ([]imap.UIDRange, error) {
	s.m.begin(searchBudget, "UID SEARCH")
	defer s.m.end()
	data, err := s.c.UIDSearch(&imap.SearchCriteria{UID: []imap.UIDSet{{{Start: imap.UID(from), Stop: 0}}}}, nil).Wait()
	if err != nil {
		return nil, fmt.Errorf("imap %s: search: %w", s.box.Name, s.m.explain(err))
	}
	set, _ := data.All.(imap.UIDSet)
	var out []imap.UIDRange
	for _, r := range set {
		lo, hi := max(uint32(r.Start), from), uint32(r.Stop)
		if hi == 0 { // "*" in an answer: a server bug; its start stands
			hi = uint32(r.Start)
		}
		if lo <= hi {
			out = append(out, imap.UIDRange{Start: imap.UID(lo), Stop: imap.UID(hi)})
		}
	}
	slices.SortFunc(out, func(a, b imap.UIDRange) int { return cmp.Compare(a.Start, b.Start) })
	merged := out[:0]
	for _, r := range out {
		if n := len(merged); n > 0 && r.Start <= merged[n-1].Stop {
			merged[n-1].Stop = max(merged[n-1].Stop, r.Stop)
			continue
		}
		merged = append(merged, r)
	}
	return merged, nil
}

// fetch asks for the messages want and returns those answered in UID order.
// cut says the answer was not read to its end: a message was refused, or the
// next one would have taken the batch over BatchBytes. The connection is then
// closed, and the messages not answered yet are asked for again over the next.
func (s *session) fetch(want []uint32, o Options) (batch []Mail, cut bool, err error) {
	uids := make([]imap.UID, len(want))
	for i, u := range want {
		uids[i] = imap.UID(u)
	}
	section := &imap.FetchItemBodySection{Peek: true, Partial: &imap.SectionPartial{Offset: 0, Size: o.MaxSize}}
	s.m.begin(o.BatchBytes+o.MaxSize+int64(len(want))*perMessageBudget+commandBudget, fmt.Sprintf("UID FETCH from UID %d", want[0]))
	cmd := s.c.Fetch(imap.UIDSetNum(uids...), &imap.FetchOptions{UID: true, RFC822Size: true, BodySection: []*imap.FetchItemBodySection{section}})
	defer func() {
		defer s.m.end()
		if !s.broken {
			if cerr := cmd.Close(); cerr != nil && err == nil {
				err = fmt.Errorf("imap %s: fetch: %w", s.box.Name, s.m.explain(cerr))
			}
		}
		slices.SortFunc(batch, func(a, b Mail) int { return cmp.Compare(a.UID, b.UID) })
	}()
	var held int64
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
		m := Mail{}
		for item := msg.Next(); item != nil; item = msg.Next() {
			switch it := item.(type) {
			case imapclient.FetchItemDataUID:
				m.UID = uint32(it.UID)
			case imapclient.FetchItemDataRFC822Size:
				m.Size = it.Size
			case imapclient.FetchItemDataBodySection:
				if it.Literal == nil || m.Raw != nil {
					continue // NIL, or a second body: not what was asked for
				}
				size := it.Literal.Size()
				switch {
				case size > o.MaxSize:
					m.Refused = fmt.Sprintf("the server answered with %d bytes where at most %d were asked for (it ignored the partial fetch)", size, o.MaxSize)
					s.closeMidAnswer(it.Literal)
					return append(batch, m), true, nil
				case len(batch) > 0 && held+size > o.BatchBytes:
					s.closeMidAnswer(it.Literal)
					return batch, true, nil
				}
				raw, err := io.ReadAll(it.Literal)
				if err != nil {
					s.broken = true
					s.raw.Close()
					return nil, false, fmt.Errorf("imap %s: read UID %d: %w", s.box.Name, m.UID, s.m.explain(err))
				}
				m.Raw = raw
				held += int64(len(raw))
			}
		}
		if m.Raw != nil && slices.Contains(want, m.UID) {
			batch = append(batch, m)
		}
	}
	return batch, false, nil
}

// closeMidAnswer drops the connection while go-imap waits for lit to be read:
// reading what is left of it then fails at once, which lets go-imap's reader
// go on to find the connection gone.
func (s *session) closeMidAnswer(lit io.Reader) {
	s.broken = true
	s.raw.Close()
	io.Copy(io.Discard, lit) //nolint:errcheck
}

// after deletes or moves stored mail, as the mailbox is configured.
func (s *session) after(uids []uint32) error {
	if s.box.After == "keep" || len(uids) == 0 {
		return nil
	}
	set := make([]imap.UID, len(uids))
	for i, u := range uids {
		set[i] = imap.UID(u)
	}
	s.m.begin(commandBudget+int64(len(uids))*perMessageBudget, s.box.After)
	defer s.m.end()
	switch s.box.After {
	case "move":
		if _, err := s.c.Move(imap.UIDSetNum(set...), s.box.MoveTo).Wait(); err != nil {
			return fmt.Errorf("imap %s: move to %s: %w", s.box.Name, s.box.MoveTo, s.m.explain(err))
		}
	case "delete":
		flags := &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}
		if err := s.c.Store(imap.UIDSetNum(set...), flags, nil).Close(); err != nil {
			return fmt.Errorf("imap %s: flag deleted: %w", s.box.Name, s.m.explain(err))
		}
		if err := s.c.Expunge().Close(); err != nil {
			return fmt.Errorf("imap %s: expunge: %w", s.box.Name, s.m.explain(err))
		}
	default:
		return errors.New("unknown after policy " + s.box.After)
	}
	return nil
}

func (s *session) close() {
	if s.c != nil && !s.broken {
		s.m.begin(commandBudget, "LOGOUT")
		s.c.Logout().Wait() //nolint:errcheck
	}
	s.stop()
	s.raw.Close()
	if s.c != nil {
		s.c.Close() //nolint:errcheck
	}
}

// meter is a connection that reads at most what the command in flight may
// need, and lets it wait at most its timeout for each byte: a server sending
// more, or nothing, is cut off, and the command fails saying so.
type meter struct {
	net.Conn
	timeout time.Duration
	left    atomic.Int64
	mu      sync.Mutex
	what    string // the command in flight, or the last one
	active  bool   // a command is in flight: reads wait at most timeout
	over    error  // once set, every read fails
}

// begin starts a command, what, whose answer may take n bytes.
func (m *meter) begin(n int64, what string) {
	m.left.Store(n)
	m.mu.Lock()
	m.what, m.active = what, true
	// go-imap's reader is most likely waiting in a read already, begun while
	// no command was in flight: the deadline applies to it too.
	m.Conn.SetReadDeadline(time.Now().Add(m.timeout)) //nolint:errcheck
	m.mu.Unlock()
}

// end ends the command: the connection may stay silent until the next.
func (m *meter) end() {
	m.mu.Lock()
	m.active = false
	m.Conn.SetReadDeadline(time.Time{}) //nolint:errcheck
	m.mu.Unlock()
}

func (m *meter) Read(b []byte) (int, error) {
	m.mu.Lock()
	if m.over != nil {
		defer m.mu.Unlock()
		return 0, m.over
	}
	if m.active {
		m.Conn.SetReadDeadline(time.Now().Add(m.timeout)) //nolint:errcheck
	}
	m.mu.Unlock()
	// One byte more than allowed is enough to know the server went over.
	if left := m.left.Load(); left >= 0 && int64(len(b)) > left+1 {
		b = b[:left+1]
	}
	n, err := m.Conn.Read(b)
	tooMuch := m.left.Add(-int64(n)) < 0
	if !tooMuch && !errors.Is(err, os.ErrDeadlineExceeded) {
		return n, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.over != nil:
	case tooMuch:
		m.over = fmt.Errorf("%w answering %s", errTooMuch, m.what)
	case m.active:
		m.over = fmt.Errorf("the server sent nothing for %s answering %s", m.timeout, m.what)
	default:
		return n, err // go-imap's own deadline, between commands
	}
	return 0, m.over
}

var errTooMuch = errors.New("the server sent more than any answer needs")

// explain replaces a command's error by the meter's when the server went over
// its allowance or its time: go-imap reports only that the connection failed.
func (m *meter) explain(err error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.over != nil {
		return m.over
	}
	return err
}
