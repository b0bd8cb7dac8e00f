package agent

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// memInUse is the heap and the goroutine stacks in use, after a collection.
func memInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse
}

// raiseFileLimit raises the soft limit of open files as far as the hard one
// allows, up to want, and returns the limit.
func raiseFileLimit(t *testing.T, want uint64) uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	if rl.Cur < want {
		rl.Cur = min(want, rl.Max)
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			t.Fatal(err)
		}
	}
	return rl.Cur
}

// The agent under thousands of idle connections and a flood of requests
// without a token keeps its memory and log bounded and serves its token holder
// throughout (issue 17's figure: 4,000 idle HTTP/2 connections, a
// 10,000-request flood).
func TestAgentUnderFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("4,000 connections and 10,000 requests")
	}
	const perAddr, floodRequests, floodConns = 20, 10_000, 8
	idle := 4000
	if limit := raiseFileLimit(t, uint64(idle)+2*DefaultMaxConns+500); limit < uint64(idle)+2*DefaultMaxConns+500 {
		idle = int(limit) - 2*DefaultMaxConns - 500
		t.Logf("open files limited to %d: %d idle connections", limit, idle)
	}
	a := newLimitedAgent(t, Limits{Rate: 1000}) // the default limits otherwise
	ctx := context.Background()
	before := memInUse()

	// The token holder asks every 10 ms from start to end, without retrying.
	holder := &Client{URL: "https://" + a.addr, Token: a.token, Fingerprint: a.fingerprint}
	var served, failed atomic.Int64
	var firstFailure atomic.Value
	stop := make(chan struct{})
	var holderDone sync.WaitGroup
	holderDone.Go(func() {
		for {
			resp, err := holder.getOnce(ctx, "/v1/latest", nil, "application/json")
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				served.Add(1)
			} else {
				failed.Add(1)
				firstFailure.CompareAndSwap(nil, err.Error())
			}
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	})

	// Idle HTTP/2 connections: TLS, the client preface and SETTINGS, then
	// nothing; perAddr from each client address. Only the TCP connection is
	// kept on this side, so what stays in memory is the server's.
	var mu sync.Mutex
	var conns []net.Conn
	handshakes := 0
	work := make(chan int)
	var dialers sync.WaitGroup
	for range 32 {
		dialers.Go(func() {
			for i := range work {
				k := i / perAddr
				c, err := a.dial(fmt.Sprintf("127.1.%d.%d", k/200, k%200+1), "h2")
				if err != nil {
					continue
				}
				io.WriteString(c, http2.ClientPreface)
				http2.NewFramer(c, nil).WriteSettings()
				mu.Lock()
				conns = append(conns, c.NetConn())
				handshakes++
				mu.Unlock()
			}
		})
	}
	for i := range idle {
		work <- i
	}
	close(work)
	dialers.Wait()
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	// A new token holder gets in while the idle connections fill the server.
	if _, err := (&Client{URL: holder.URL, Token: a.token, Fingerprint: a.fingerprint}).Latest(ctx); err != nil {
		t.Errorf("a new token holder among the idle connections: %v", err)
	}
	open, peak := a.srv.conns.Load().counts()
	stillOpen := 0
	for _, c := range conns {
		if !closedByServer(c, time.Millisecond) {
			stillOpen++
		}
	}
	afterIdle := memInUse()

	// The flood: requests without a token from one address, floodConns at a
	// time on keep-alive connections.
	conf, err := (&Client{Fingerprint: a.fingerprint}).TLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{
		TLSClientConfig: conf, MaxConnsPerHost: floodConns, MaxIdleConnsPerHost: floodConns,
		DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).DialContext,
	}
	defer tr.CloseIdleConnections()
	fc := &http.Client{Transport: tr}
	var codes [600]atomic.Int64
	var floodErrs atomic.Int64
	var floods sync.WaitGroup
	for w := range floodConns {
		floods.Go(func() {
			for range floodRequests / floodConns {
				resp, err := fc.Get("https://" + a.addr + fmt.Sprintf("/v1/latest?worker=%d", w))
				if err != nil {
					floodErrs.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				codes[resp.StatusCode].Add(1)
			}
		})
	}
	floods.Wait()
	afterFlood := memInUse()
	close(stop)
	holderDone.Wait()
	if _, err := holder.Latest(ctx); err != nil {
		t.Errorf("the token holder after the flood: %v", err)
	}
	a.srv.ev.flush()
	log := a.log.String()

	mib := func(n uint64) float64 { return float64(n) / (1 << 20) }
	t.Logf("idle connections: %d tried from %d addresses, %d handshakes, %d still open after all were tried (server: %d open, peak %d)",
		idle, (idle+perAddr-1)/perAddr, handshakes, stillOpen, open, peak)
	t.Logf("flood of %d requests without a token: %d × 401, %d × 429, %d other, %d transport errors",
		floodRequests, codes[401].Load(), codes[429].Load(), floodRequests-int(codes[401].Load()+codes[429].Load()+floodErrs.Load()), floodErrs.Load())
	t.Logf("token holder: %d answered, %d failed", served.Load(), failed.Load())
	t.Logf("memory in use (heap and stacks): %.1f MiB before, %.1f MiB with the idle connections, %.1f MiB after the flood",
		mib(before), mib(afterIdle), mib(afterFlood))
	t.Logf("log: %d bytes, %d lines", len(log), strings.Count(log, "\n"))

	if peak > DefaultMaxConns || stillOpen > DefaultMaxConns {
		t.Errorf("%d connections open at most, %d idle ones still open; the bound is %d", peak, stillOpen, DefaultMaxConns)
	}
	if failed.Load() > 0 || served.Load() == 0 {
		t.Errorf("the token holder: %d answered, %d failed (first: %v)", served.Load(), failed.Load(), firstFailure.Load())
	}
	if n401, n429 := codes[401].Load(), codes[429].Load(); n401+n429+floodErrs.Load() != floodRequests || n429 < 9*floodRequests/10 {
		t.Errorf("flood: %d × 401, %d × 429, %d errors; want nearly all 429", n401, n429, floodErrs.Load())
	}
	if len(log) > 16<<10 {
		t.Errorf("the log took %d bytes:\n%.3000s", len(log), log)
	}
	if grew := int64(afterIdle) - int64(before); grew > 48<<20 {
		t.Errorf("memory grew by %.1f MiB with the idle connections", mib(uint64(grew)))
	}
	if grew := int64(afterFlood) - int64(before); grew > 48<<20 {
		t.Errorf("memory grew by %.1f MiB by the flood", mib(uint64(grew)))
	}
}
