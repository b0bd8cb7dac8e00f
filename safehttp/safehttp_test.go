package safehttp

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
)

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		addr    string
		what    string // "" for a public address
		private bool   // allowed where private addresses are
	}{
		{"8.8.8.8", "", true},
		{"1.1.1.1", "", true},
		{"2606:4700:4700::1111", "", true},
		{"::ffff:8.8.8.8", "", true},
		{"64:ff9b::808:808", "", true}, // NAT64 of 8.8.8.8
		{"2002:808:808::1", "", true},  // 6to4 of 8.8.8.8
		{"127.0.0.1", "loopback", true},
		{"127.1.2.3", "loopback", true},
		{"::1", "loopback", true},
		{"10.1.2.3", "private", true},
		{"172.16.0.1", "private", true},
		{"172.31.255.255", "private", true},
		{"192.168.1.1", "private", true},
		{"100.64.0.1", "carrier-grade NAT", true},
		{"169.254.1.1", "link-local", true},
		{"fe80::1%eth0", "link-local", true},
		{"fc00::1", "unique local", true},
		{"fd12:3456::1", "unique local", true},
		{"0.0.0.0", "unspecified", true},
		{"::", "unspecified", true},
		{"224.0.0.1", "multicast", true},
		{"ff02::1", "multicast", true},
		{"255.255.255.255", "reserved", true},
		{"192.0.2.7", "documentation", true},
		{"2001:db8::1", "documentation", true},
		{"::ffff:127.0.0.1", "loopback", true},
		{"::ffff:10.0.0.1", "private", true},
		{"::127.0.0.1", "IPv4-compatible", true},
		{"64:ff9b::7f00:1", "loopback (127.0.0.1 inside IPv6)", true},
		{"2002:a00:1::", "private (10.0.0.1 inside IPv6)", true},
		{"169.254.169.254", "metadata", false},
		{"::ffff:169.254.169.254", "metadata", false},
		{"64:ff9b::a9fe:a9fe", "metadata", false},
		{"fd00:ec2::254", "metadata", false},
	} {
		addr := netip.MustParseAddr(tc.addr)
		what, always := classify(addr)
		if !strings.Contains(what, tc.what) || (tc.what == "") != (what == "") {
			t.Errorf("%s is %q, want %q", tc.addr, what, tc.what)
		}
		if always == tc.private {
			t.Errorf("%s: refused where private addresses are allowed = %v, want %v", tc.addr, always, !tc.private)
		}
		err := check(addr, false)
		if (err == nil) != (tc.what == "") {
			t.Errorf("check(%s) = %v", tc.addr, err)
		}
		var refused *RefusedError
		if errors.As(err, &refused) && refused.Private != tc.private {
			t.Errorf("check(%s): allowed with AllowPrivate = %v, want %v", tc.addr, refused.Private, tc.private)
		}
	}
}

// server counts the requests it answers; handler (nil: 200 "ok") answers them.
func server(t *testing.T, tls bool, handler http.HandlerFunc) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	h := func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		if handler == nil {
			fmt.Fprint(w, "ok")
			return
		}
		handler(w, r)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(h))
	if tls {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv, &n
}

func redirectTo(target string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, target, http.StatusFound) }
}

// publicHop is a client that takes the server at first for a public host (the
// test's servers are all on loopback) and checks every other address as
// NewClient does.
func publicHop(t *testing.T, first *httptest.Server) *http.Client {
	t.Helper()
	u, _ := url.Parse(first.URL)
	hop := netip.MustParseAddrPort(u.Host)
	return newClient(func(ap netip.AddrPort) error {
		if ap == hop {
			return nil
		}
		return check(ap.Addr(), false)
	})
}

func trusting(c *http.Client, srv *httptest.Server) *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	c.Transport.(*http.Transport).TLSClientConfig.RootCAs = pool
	return c
}

func get(c *http.Client, u string) (int, error) {
	resp, err := c.Get(u)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

func wantRefused(t *testing.T, err error, says string) {
	t.Helper()
	var refused *RefusedError
	if !errors.As(err, &refused) || !strings.Contains(err.Error(), says) {
		t.Fatalf("got %v, want a refusal saying %q", err, says)
	}
}

func TestPrivateDestinationsAreRefusedUnlessAllowed(t *testing.T) {
	local, hits := server(t, false, nil)
	port := local.URL[strings.LastIndexByte(local.URL, ':')+1:]
	strict := NewClient(Options{})
	for _, u := range []string{
		local.URL,                              // 127.0.0.1
		"http://localhost:" + port,             // a name: checked once resolved
		"http://[::ffff:127.0.0.1]:" + port,    // IPv4-mapped IPv6
		"http://[::ffff:7f00:1]:" + port + "/", // the same, in hex
	} {
		_, err := get(strict, u)
		wantRefused(t, err, "loopback")
	}
	if hits.Load() != 0 {
		t.Fatalf("the loopback server was reached %d times", hits.Load())
	}
	if code, err := get(NewClient(Options{AllowPrivate: true}), local.URL); err != nil || code != http.StatusOK {
		t.Fatalf("with private addresses allowed: %d, %v", code, err)
	}
}

func TestRedirectsAreChecked(t *testing.T) {
	inside, insideHits := server(t, false, nil)
	toInside, _ := server(t, false, redirectTo(inside.URL+"/admin"))
	toMetadata, _ := server(t, false, redirectTo("http://169.254.169.254/latest/meta-data/iam/security-credentials/"))
	toMetadataV6, _ := server(t, false, redirectTo("http://[::ffff:169.254.169.254]/latest/meta-data/"))

	// From a public host, a redirect to loopback or to the metadata service
	// is refused before its connection is made.
	_, err := get(publicHop(t, toInside), toInside.URL)
	wantRefused(t, err, "loopback")
	if insideHits.Load() != 0 {
		t.Fatalf("the redirect reached the loopback server")
	}
	_, err = get(publicHop(t, toMetadata), toMetadata.URL)
	wantRefused(t, err, "169.254.169.254: the cloud metadata service")
	_, err = get(publicHop(t, toMetadataV6), toMetadataV6.URL)
	wantRefused(t, err, "metadata")

	// A client that allows private addresses follows the first, never the metadata ones.
	allowing := NewClient(Options{AllowPrivate: true})
	if code, err := get(allowing, toInside.URL); err != nil || code != http.StatusOK || insideHits.Load() != 1 {
		t.Fatalf("redirect within the lab: %d, %v, %d hits", code, err, insideHits.Load())
	}
	_, err = get(allowing, toMetadata.URL)
	wantRefused(t, err, "metadata")
}

func TestRedirectsNeverDropTLS(t *testing.T) {
	plain, plainHits := server(t, false, nil)
	secure, _ := server(t, true, redirectTo(plain.URL+"/feed.txt"))
	c := trusting(NewClient(Options{AllowPrivate: true}), secure)
	_, err := get(c, secure.URL)
	wantRefused(t, err, "gives up TLS")
	if plainHits.Load() != 0 {
		t.Fatal("the https answer's redirect to http was followed")
	}
	// The other way is an upgrade: followed.
	upgraded, _ := server(t, true, nil)
	toTLS, _ := server(t, false, redirectTo(upgraded.URL))
	c = trusting(NewClient(Options{AllowPrivate: true}), upgraded)
	if code, err := get(c, toTLS.URL); err != nil || code != http.StatusOK {
		t.Fatalf("redirect from http to https: %d, %v", code, err)
	}
}

func TestRedirectsAreCounted(t *testing.T) {
	var loop *httptest.Server
	loop, hits := server(t, false, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, loop.URL+"/again", http.StatusFound)
	})
	_, err := get(NewClient(Options{AllowPrivate: true}), loop.URL)
	wantRefused(t, err, "stopped after 5 redirects")
	if hits.Load() != MaxRedirects+1 {
		t.Fatalf("%d requests, want the first and %d redirects", hits.Load(), MaxRedirects)
	}
}
