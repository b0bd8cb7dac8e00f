package resolver

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/miekg/dns"
)

// Query asks server (ip:port) one question and returns the checked response:
// over UDP with EDNS0 first, again without EDNS0 if the server answers FORMERR to
// it, and over TCP when the answer is truncated. Each leg waits its turn under the
// server's rate limit and gets Config.Timeout. A refused response comes back as a
// *RejectError. The recursion-desired bit is set when the Resolver is recursive.
func (r *Resolver) Query(ctx context.Context, server, name string, qtype uint16) (*dns.Msg, error) {
	m, _, err := r.exchange(ctx, server, name, qtype, nil)
	return m, err
}

// exchange is Query that counts the queries it sends and asks spend before each one
// (spend fails when the budget is gone).
func (r *Resolver) exchange(ctx context.Context, server, name string, qtype uint16, spend func() error) (*dns.Msg, int, error) {
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), qtype)
	q.RecursionDesired = r.recursive
	q.SetEdns0(uint16(r.cfg.UDPSize), false)

	sent := 0
	leg := func(tcp bool) (*dns.Msg, error) {
		if spend != nil {
			if err := spend(); err != nil {
				return nil, err
			}
		}
		if err := r.limit.wait(ctx, server); err != nil {
			return nil, err
		}
		sent++
		lctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
		defer cancel()
		if tcp {
			return r.tcp(lctx, server, q)
		}
		return r.udp(lctx, server, q)
	}

	m, err := leg(false)
	if err == nil && m.Rcode == dns.RcodeFormatError && m.IsEdns0() == nil {
		// A server from before EDNS0 (RFC 6891 section 7): ask plainly.
		q.Extra = nil
		q.Id = dns.Id()
		m, err = leg(false)
	}
	if err == nil && m.Truncated {
		m, err = leg(true)
		var rej *RejectError
		switch {
		case errors.As(err, &rej), errors.Is(err, ErrBudget), done(ctx) != nil:
			// Refused for its own reason, or stopped from outside: that is the news.
		case err != nil:
			err = &RejectError{Reason: ErrTruncated, Detail: fmt.Sprintf("TCP: %v", err)}
		case m.Truncated:
			m, err = nil, &RejectError{Reason: ErrTruncated, Detail: "TC set over TCP"}
		}
	}
	if err != nil {
		var rej *RejectError
		if errors.As(err, &rej) {
			rej.Server = server
			r.log.Debug("response refused", "server", server, "name", name, "type", dns.Type(qtype).String(), "err", err)
			return nil, sent, rej
		}
		return nil, sent, fmt.Errorf("%s: %w", server, err)
	}
	return m, sent, nil
}

// udp sends q and reads until a packet passes as its answer. Packets that may be
// someone else's (wrong ID or question, not a response, garbage) are skipped: a
// spoofer must not be able to end the exchange. If nothing else came before the
// deadline, the last refusal is the error.
func (r *Resolver) udp(ctx context.Context, server string, q *dns.Msg) (*dns.Msg, error) {
	limit := dns.MinMsgSize
	if opt := q.IsEdns0(); opt != nil {
		limit = int(opt.UDPSize())
	}
	packed, err := q.Pack()
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", server)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	defer watch(ctx, conn)()
	if _, err := conn.Write(packed); err != nil {
		return nil, ctxErr(ctx, err)
	}
	// One byte more than allowed: a datagram that fills it is too large (the kernel
	// drops the rest of it), without a 64 KB buffer per query.
	buf := make([]byte, limit+1)
	var skipped error
	for {
		n, err := conn.Read(buf)
		if err != nil {
			if skipped != nil {
				return nil, skipped
			}
			return nil, ctxErr(ctx, err)
		}
		m, err := ParseResponse(buf[:n], q, limit)
		var rej *RejectError
		switch {
		case err != nil && stray(err):
			skipped = err
			continue
		case errors.As(err, &rej) && rej.Reason == ErrOversized:
			rej.Detail = fmt.Sprintf("UDP datagram over the %d bytes advertised", limit)
		}
		return m, err
	}
}

// tcp sends q over a new TCP connection and reads one answer. Nobody can inject
// into the stream, so every refusal is final.
func (r *Resolver) tcp(ctx context.Context, server string, q *dns.Msg) (*dns.Msg, error) {
	packed, err := q.Pack()
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", server)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	defer watch(ctx, conn)()
	out := make([]byte, 2+len(packed))
	binary.BigEndian.PutUint16(out, uint16(len(packed)))
	copy(out[2:], packed)
	if _, err := conn.Write(out); err != nil {
		return nil, ctxErr(ctx, err)
	}
	var lenbuf [2]byte
	if _, err := io.ReadFull(conn, lenbuf[:]); err != nil {
		return nil, ctxErr(ctx, err)
	}
	n := int(binary.BigEndian.Uint16(lenbuf[:]))
	if n > r.cfg.MaxTCPSize {
		return nil, reject(ErrOversized, "%d bytes over TCP, limit %d", n, r.cfg.MaxTCPSize)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(conn, buf); err != nil {
		return nil, ctxErr(ctx, err)
	}
	return ParseResponse(buf, q, r.cfg.MaxTCPSize)
}

// watch makes conn's reads and writes fail once ctx ends, deadline or cancel; the
// returned func stops watching.
func watch(ctx context.Context, conn net.Conn) func() {
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	return func() { stop() }
}

// ctxErr prefers ctx's reason over the I/O error it caused.
func ctxErr(ctx context.Context, err error) error {
	if cerr := done(ctx); cerr != nil {
		return fmt.Errorf("%w (%v)", cerr, err)
	}
	return err
}

// done is ctx.Err(), also when the deadline has passed but ctx's timer has not yet
// fired: a connection's deadline, set from ctx, may beat it.
func done(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if deadline, ok := ctx.Deadline(); ok && !time.Now().Before(deadline) {
		return context.DeadlineExceeded
	}
	return nil
}
