// Package dnsd is the lab's authoritative DNS server: it answers for every zone of
// the lab world over UDP and TCP, asking the world for the ground truth at the
// current lab time, so fast-flux answers rotate every TTL, double-flux zones rotate
// their name servers too, taken-down zones go NXDOMAIN and then SERVFAIL, and the
// lame delegation refuses.
package dnsd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"

	"github.com/miekg/dns"

	"github.com/tip-project/tip/lab/world"
)

// Server answers DNS queries for the lab world. It implements dns.Handler, so it
// can also be mounted on a dns.Server of the caller's own.
type Server struct {
	world *world.World
	clock *world.Clock
	log   *slog.Logger

	mu      sync.Mutex
	servers []*dns.Server
	addr    string
}

// New returns a server for the zones of w, answering as of clock.Now(). A nil log
// discards the query log.
func New(w *world.World, clock *world.Clock, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{world: w, clock: clock, log: log}
}

// Serve answers on udp and tcp (either may be nil, not both) until Shutdown. It
// returns once both are accepting queries, or with the error that stopped one.
func (s *Server) Serve(udp net.PacketConn, tcp net.Listener) error {
	if udp == nil && tcp == nil {
		return errors.New("dnsd: serve: no listener")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.servers != nil {
		return errors.New("dnsd: serve: already serving")
	}
	var started []*dns.Server
	for _, srv := range []*dns.Server{
		s.newServer(udp, nil),
		s.newServer(nil, tcp),
	} {
		if srv == nil {
			continue
		}
		if err := s.start(srv); err != nil {
			for _, o := range started {
				_ = o.Shutdown()
			}
			return fmt.Errorf("dnsd: serve %s: %w", srv.Net, err)
		}
		started = append(started, srv)
	}
	s.servers = started
	if udp != nil {
		s.addr = udp.LocalAddr().String()
	} else {
		s.addr = tcp.Addr().String()
	}
	return nil
}

func (s *Server) newServer(udp net.PacketConn, tcp net.Listener) *dns.Server {
	srv := &dns.Server{Handler: s, UDPSize: dns.DefaultMsgSize}
	switch {
	case udp != nil:
		srv.Net, srv.PacketConn = "udp", udp
	case tcp != nil:
		srv.Net, srv.Listener = "tcp", tcp
	default:
		return nil
	}
	return srv
}

// start runs srv in the background and waits until it reads queries.
func (s *Server) start(srv *dns.Server) error {
	ready := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(ready) }
	done := make(chan error, 1)
	go func() {
		err := srv.ActivateAndServe()
		if err != nil {
			s.log.Error("dns server stopped", "net", srv.Net, "err", err)
		}
		done <- err
	}()
	select {
	case <-ready:
		return nil
	case err := <-done:
		if err == nil {
			err = errors.New("stopped before it started")
		}
		return err
	}
}

// ListenAndServe listens on addr (host:port) over both UDP and TCP, on the same
// port, and serves until Shutdown. Port 0 picks a free port; Addr reports it.
func (s *Server) ListenAndServe(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("dnsd: listen %s: %w", addr, err)
	}
	// With port 0, the port UDP picked may be taken for TCP: try a few.
	tries := 1
	if port == "0" {
		tries = 10
	}
	for i := 0; ; i++ {
		udp, err := net.ListenPacket("udp", addr)
		if err != nil {
			return fmt.Errorf("dnsd: listen udp %s: %w", addr, err)
		}
		_, got, _ := net.SplitHostPort(udp.LocalAddr().String())
		tcp, err := net.Listen("tcp", net.JoinHostPort(host, got))
		if err != nil {
			udp.Close()
			if i+1 < tries {
				continue
			}
			return fmt.Errorf("dnsd: listen tcp %s: %w", net.JoinHostPort(host, got), err)
		}
		if err := s.Serve(udp, tcp); err != nil {
			udp.Close()
			tcp.Close()
			return err
		}
		return nil
	}
}

// Addr is the host:port the server answers on ("" before Serve).
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Shutdown stops the listeners and waits, up to ctx, for queries in flight.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	servers := s.servers
	s.servers = nil
	s.mu.Unlock()
	var errs []error
	for _, srv := range servers {
		if err := srv.ShutdownContext(ctx); err != nil {
			errs = append(errs, fmt.Errorf("dnsd: shutdown %s: %w", srv.Net, err))
		}
	}
	return errors.Join(errs...)
}

// ServeDNS answers one query. A query it cannot make sense of gets FORMERR or
// NOTIMP; a message that is itself a response gets nothing, so the server never
// talks to another server in a loop.
func (s *Server) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	if r == nil || r.Response {
		return
	}
	defer func() {
		// A bug must cost one answer, not the lab's DNS server.
		if v := recover(); v != nil {
			s.log.Error("dns handler panic", "panic", v, "stack", string(debug.Stack()))
			m := new(dns.Msg)
			m.SetRcode(r, dns.RcodeServerFailure)
			_ = w.WriteMsg(m)
		}
	}()
	tcp := isTCP(w)
	now := s.clock.Now()
	m, size := s.reply(r, now, tcp)
	fit(m, size)
	err := w.WriteMsg(m)
	if !s.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	attrs := []slog.Attr{
		slog.String("proto", map[bool]string{false: "udp", true: "tcp"}[tcp]),
		slog.String("rcode", rcodeString(m.Rcode)),
		slog.Int("answers", len(m.Answer)),
		slog.Bool("truncated", m.Truncated),
		slog.Time("lab_time", now),
	}
	if len(r.Question) > 0 {
		q := r.Question[0]
		attrs = append(attrs, slog.String("name", q.Name), slog.String("type", dns.Type(q.Qtype).String()))
	}
	if a := w.RemoteAddr(); a != nil {
		attrs = append(attrs, slog.String("client", a.String()))
	}
	if err != nil {
		attrs = append(attrs, slog.String("err", err.Error()))
	}
	s.log.LogAttrs(context.Background(), slog.LevelDebug, "dns query", attrs...)
}

func isTCP(w dns.ResponseWriter) bool {
	_, ok := w.RemoteAddr().(*net.TCPAddr)
	return ok
}

func rcodeString(rc int) string {
	if s, ok := dns.RcodeToString[rc]; ok {
		return s
	}
	return fmt.Sprintf("RCODE%d", rc)
}
