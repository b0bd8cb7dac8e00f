// Package spamimap fetches new mail from an IMAP spamtrap mailbox with go-imap
// (github.com/emersion/go-imap, v1: the design card's choice, and v2 is still a
// beta): implicit TLS, STARTTLS or plain (loopback only), a cursor of UIDVALIDITY
// and last UID so only new mail is fetched, and an optional delete or move once
// the caller has stored a batch safely. No Temporal inside.
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
	"time"

	"github.com/emersion/go-imap"
	"github.com/emersion/go-imap/client"

	"github.com/tip-project/tip/catalog"
)

// Cursor is how far a mailbox was read: the last UID stored under a UIDVALIDITY.
// A server that changes UIDVALIDITY renumbered the mailbox: reading restarts at
// UID 1 (the caller's store de-duplicates by content).
type Cursor struct {
	UIDValidity uint32 `json:"uid_validity"`
	LastUID     uint32 `json:"last_uid"`
}

// Mail is one fetched message.
type Mail struct {
	UID  uint32
	Raw  []byte
	Size uint32 // as the server reports it (RFC822.SIZE)
}

// Options bound a poll.
type Options struct {
	Batch   int           // messages per fetch (and per Stored call); default 100
	MaxSize int64         // larger messages are fetched truncated to this many bytes
	Timeout time.Duration // dial and command timeout; default 30s
}

// Stored is called after each batch; when it returns nil the batch is safe and the
// cursor may advance (and the mail be moved or deleted).
type Stored func(batch []Mail, next Cursor) error

// Poll logs in, selects the mailbox and fetches every message after the cursor in
// batches, handing each to stored, then applies the mailbox's after policy to
// what was stored. It returns the final cursor and how many messages it fetched.
func Poll(ctx context.Context, box catalog.Mailbox, cur Cursor, o Options, stored Stored) (Cursor, int, error) {
	if o.Batch <= 0 {
		o.Batch = 100
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	c, err := dial(ctx, box, o.Timeout)
	if err != nil {
		return cur, 0, err
	}
	defer c.Logout()                                         //nolint:errcheck
	stop := context.AfterFunc(ctx, func() { c.Terminate() }) //nolint:errcheck
	defer stop()

	if err := c.Login(box.Username, box.Secret()); err != nil {
		return cur, 0, fmt.Errorf("imap %s: login as %s: %w", box.Name, box.Username, err)
	}
	st, err := c.Select(box.Mailbox, box.After == "keep")
	if err != nil {
		return cur, 0, fmt.Errorf("imap %s: select %s: %w", box.Name, box.Mailbox, err)
	}
	if st.UidValidity != cur.UIDValidity {
		cur = Cursor{UIDValidity: st.UidValidity}
	}
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return cur, total, err
		}
		batch, err := fetch(c, cur.LastUID+1, o)
		if err != nil {
			return cur, total, fmt.Errorf("imap %s: %w", box.Name, err)
		}
		if len(batch) == 0 {
			return cur, total, nil
		}
		next := cur
		for _, m := range batch {
			next.LastUID = max(next.LastUID, m.UID)
		}
		if err := stored(batch, next); err != nil {
			return cur, total, err
		}
		cur = next
		total += len(batch)
		if err := after(c, box, batch); err != nil {
			return cur, total, fmt.Errorf("imap %s: %w", box.Name, err)
		}
	}
}

func dial(ctx context.Context, box catalog.Mailbox, timeout time.Duration) (*client.Client, error) {
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
	d := &net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, "tcp", box.Address)
	if err != nil {
		return nil, fmt.Errorf("imap %s: %w", box.Name, err)
	}
	if box.TLS == "tls" {
		tconn := tls.Client(conn, tc)
		if err := tconn.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, fmt.Errorf("imap %s: TLS: %w", box.Name, err)
		}
		conn = tconn
	}
	c, err := client.New(conn)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("imap %s: greeting: %w", box.Name, err)
	}
	c.Timeout = timeout
	switch box.TLS {
	case "starttls":
		if ok, err := c.SupportStartTLS(); err != nil || !ok {
			c.Terminate() //nolint:errcheck
			return nil, fmt.Errorf("imap %s: the server offers no STARTTLS (refusing to log in in clear)", box.Name)
		}
		if err := c.StartTLS(tc); err != nil {
			c.Terminate() //nolint:errcheck
			return nil, fmt.Errorf("imap %s: STARTTLS: %w", box.Name, err)
		}
	}
	return c, nil
}

// fetch returns up to o.Batch messages with UIDs from `from` on, in UID order.
func fetch(c *client.Client, from uint32, o Options) ([]Mail, error) {
	// Find the UIDs first: "UID FETCH n:*" answers the last message even when its
	// UID is below n, so every UID is checked, and the batch is bounded.
	set := new(imap.SeqSet)
	set.AddRange(from, 0)
	uids, err := c.UidSearch(&imap.SearchCriteria{Uid: set})
	if err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	var want []uint32
	for _, u := range uids {
		if u >= from {
			want = append(want, u)
		}
	}
	if len(want) == 0 {
		return nil, nil
	}
	slices.Sort(want)
	if len(want) > o.Batch {
		want = want[:o.Batch]
	}
	set = new(imap.SeqSet)
	set.AddNum(want...)
	section := &imap.BodySectionName{Peek: true}
	if o.MaxSize > 0 {
		section.Partial = []int{0, int(o.MaxSize)}
	}
	items := []imap.FetchItem{imap.FetchUid, imap.FetchRFC822Size, section.FetchItem()}
	ch := make(chan *imap.Message, 16)
	done := make(chan error, 1)
	go func() { done <- c.UidFetch(set, items, ch) }()
	var out []Mail
	for msg := range ch {
		if msg.Uid < from {
			continue
		}
		body := msg.GetBody(section)
		if body == nil {
			continue
		}
		raw, err := io.ReadAll(body)
		if err != nil {
			return nil, fmt.Errorf("read UID %d: %w", msg.Uid, err)
		}
		out = append(out, Mail{UID: msg.Uid, Raw: raw, Size: msg.Size})
	}
	if err := <-done; err != nil {
		return nil, fmt.Errorf("fetch: %w", err)
	}
	slices.SortFunc(out, func(a, b Mail) int { return cmp.Compare(a.UID, b.UID) })
	return out, nil
}

// after deletes or moves a stored batch, as the mailbox is configured.
func after(c *client.Client, box catalog.Mailbox, batch []Mail) error {
	if box.After == "keep" {
		return nil
	}
	set := new(imap.SeqSet)
	for _, m := range batch {
		set.AddNum(m.UID)
	}
	switch box.After {
	case "move":
		if err := c.UidMove(set, box.MoveTo); err != nil {
			return fmt.Errorf("move to %s: %w", box.MoveTo, err)
		}
	case "delete":
		if err := c.UidStore(set, imap.FormatFlagsOp(imap.AddFlags, true), []any{imap.DeletedFlag}, nil); err != nil {
			return fmt.Errorf("flag deleted: %w", err)
		}
		if err := c.Expunge(nil); err != nil {
			return fmt.Errorf("expunge: %w", err)
		}
	default:
		return errors.New("unknown after policy " + box.After)
	}
	return nil
}
