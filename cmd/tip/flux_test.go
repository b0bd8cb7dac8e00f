package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tip-project/tip/config"
	"github.com/tip-project/tip/flux"
	"github.com/tip-project/tip/fluxview"
	"github.com/tip-project/tip/internal/testenv"
	"github.com/tip-project/tip/lab/world"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/workflows/contract"
)

// tip flux on the lab's DNS: probe judges without the stack; watch starts a
// monitor that show, list, pause, set-interval and stop then see and steer.
func TestFluxCommands(t *testing.T) {
	w := world.NewWorld(1)
	clock := world.NewClock(world.DefaultStart.Add(12*time.Hour), 60) // a 300 s TTL passes in 5 s
	fluxy := w.DomainsOf(world.SingleFlux)[5].Name
	cdn := w.DomainsOf(world.CDNDomain)[0].Name
	dns, asns := testenv.LabDNS(t, w, clock), testenv.LabASNTable(t, w)
	t.Setenv("TIP_FLUX_RESOLVERS", dns)
	t.Setenv("TIP_FLUX_ASN_TABLE", asns)
	t.Setenv("TIP_FLUX_MIN_CHECK", "1s")
	t.Setenv("TIP_FLUX_MAX_CHECK", "2s")

	// probe needs no stack.
	t.Chdir(t.TempDir())
	out, err := runTip(t, "flux", "probe", fluxy, strings.ToUpper(cdn)+".", "--max-wait", "6s", "--json")
	if err != nil {
		t.Fatalf("probe: %v\n%s", err, out)
	}
	var probes []flux.Assessment
	if err := json.Unmarshal([]byte(out[strings.Index(out, "["):]), &probes); err != nil {
		t.Fatalf("probe --json: %v\n%s", err, out)
	}
	if len(probes) != 2 || !probes[0].Verdict.Fluxy() || probes[1].Domain != cdn || probes[1].Verdict.Fluxy() {
		t.Fatalf("probe: %+v", probes)
	}
	if _, err := runTip(t, "flux", "probe", "203.0.113.7"); err == nil || !strings.Contains(err.Error(), "not a domain") {
		t.Errorf("probe of an address: %v", err)
	}

	// The worker the monitor runs on resolves through the lab too.
	startCollector(t, "traps: []\n", func(c *config.Config) {
		c.Flux.Resolvers, c.Flux.ASNTable, c.Flux.MinCheck, c.Flux.MaxCheck = dns, asns, time.Second, 2*time.Second
	})
	if out, err := runTip(t, "flux", "watch", fluxy); err != nil || !strings.Contains(out, "watching "+fluxy) {
		t.Fatalf("watch: %v\n%s", err, out)
	}
	var shown struct {
		storage.FluxDomain
		Timeline []fluxview.Point `json:"timeline"`
	}
	waitFor(t, time.Minute, "two checks shown", func() (bool, string) {
		out, err := runTip(t, "flux", "show", fluxy, "--json")
		return err == nil && json.Unmarshal([]byte(out), &shown) == nil && len(shown.Timeline) >= 2, out
	})
	if shown.Monitor != contract.MonitorWatching || shown.Timeline[len(shown.Timeline)-1].IPs < 2 ||
		shown.Summary == nil || shown.Summary.Observations < len(shown.Timeline) {
		t.Errorf("show: monitor %q, summary %+v, timeline %+v", shown.Monitor, shown.Summary, shown.Timeline)
	}
	if out, err := runTip(t, "flux", "show", fluxy); err != nil || !strings.Contains(out, "IPs (cumulative)") {
		t.Errorf("show draws no timeline: %v\n%s", err, out)
	}
	// Its passive DNS, in the Common Output Format: every address it used,
	// and from one of them, back to it.
	out, err = runTip(t, "flux", "pdns", strings.ToUpper(fluxy)+".", "--json")
	var cof []storage.PDNSRecord
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var r storage.PDNSRecord
		if json.Unmarshal([]byte(l), &r) == nil {
			cof = append(cof, r)
		}
	}
	if err != nil || len(cof) < 2 || cof[0].RRName != fluxy || cof[0].RRType != "A" || cof[0].Count < 1 || cof[0].TimeLast < cof[0].TimeFirst {
		t.Fatalf("pdns %s: %v\n%s", fluxy, err, out)
	}
	if out, err := runTip(t, "flux", "pdns", cof[0].RData); err != nil || !strings.Contains(out, fluxy) || !strings.Contains(out, "RRNAME") {
		t.Errorf("pdns %s: %v\n%s", cof[0].RData, err, out)
	}
	// Its name servers (NS), and from one of them, its addresses and the
	// domain delegated to it.
	var ns string
	for _, r := range cof {
		if r.RRType == "NS" && r.RRName == fluxy && r.Count >= 1 {
			ns = r.RData
		}
	}
	if ns == "" {
		t.Errorf("pdns %s: no NS record\n%s", fluxy, out)
	} else {
		out, err := runTip(t, "flux", "pdns", ns, "--json")
		var back, addrs bool
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			var r storage.PDNSRecord
			if json.Unmarshal([]byte(l), &r) == nil {
				back = back || r.RRType == "NS" && r.RRName == fluxy && r.RData == ns
				addrs = addrs || r.RRName == ns && (r.RRType == "A" || r.RRType == "AAAA")
			}
		}
		if err != nil || !back || !addrs {
			t.Errorf("pdns %s: %v, delegation found %v, addresses found %v\n%s", ns, err, back, addrs, out)
		}
	}
	if _, err := runTip(t, "flux", "pdns", "not a name"); err == nil {
		t.Error("pdns took a value that is no address or name")
	}
	for _, args := range [][]string{{"pause", fluxy}, {"set-interval", fluxy, "2s"}, {"resume", fluxy}, {"stop", fluxy, "enough"}} {
		if out, err := runTip(t, append([]string{"flux"}, args...)...); err != nil || !strings.Contains(out, "sent "+args[0]) {
			t.Fatalf("flux %v: %v\n%s", args, err, out)
		}
	}
	if _, err := runTip(t, "flux", "set-interval", fluxy, "soon"); err == nil {
		t.Error("set-interval took a duration that is none")
	}
	waitFor(t, time.Minute, "the monitor stopped", func() (bool, string) {
		out, err := runTip(t, "flux", "list", "--state", "stopped", "--json")
		if err != nil {
			return false, err.Error()
		}
		sc := bufio.NewScanner(strings.NewReader(out))
		for sc.Scan() {
			var r storage.FluxDomain
			if json.Unmarshal(sc.Bytes(), &r) == nil && r.Domain == fluxy && r.Summary != nil && r.Summary.IPs >= 2 {
				return true, ""
			}
		}
		return false, out
	})
	if out, err := runTip(t, "flux", "list"); err != nil || !strings.Contains(out, fluxy) || !strings.Contains(out, "stopped") {
		t.Errorf("list: %v\n%s", err, out)
	}
}

// tip flux probe without an ASN table, unreachable or not configured: the
// domains are resolved and judged all the same, the verdicts say what the
// missing ASNs leave unknown, and the log says why once.
func TestFluxProbeWithoutASNTable(t *testing.T) {
	w := world.NewWorld(1)
	clock := world.NewClock(world.DefaultStart.Add(12*time.Hour), 60)
	fluxy, cdn := w.DomainsOf(world.SingleFlux)[5].Name, w.DomainsOf(world.CDNDomain)[0].Name
	t.Setenv("TIP_FLUX_RESOLVERS", testenv.LabDNS(t, w, clock))
	t.Setenv("TIP_FLUX_ASN_TABLE_ALLOW_PRIVATE", "true")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	for name, url := range map[string]string{"unreachable": "http://" + ln.Addr().String() + "/ip2asn.tsv", "not set": ""} {
		t.Run(name, func(t *testing.T) {
			t.Chdir(t.TempDir())
			t.Setenv("TIP_FLUX_ASN_TABLE", url)
			var out string
			logged := captureStderr(t, func() {
				out, err = runTip(t, "flux", "probe", fluxy, cdn, "--max-wait", "2s", "--json")
			})
			if err != nil {
				t.Fatalf("probe: %v\n%s", err, out)
			}
			var probes []struct {
				flux.Assessment
				Scored      bool                `json:"scored"`
				Resolutions [2]flux.Observation `json:"resolutions"`
			}
			if err := json.Unmarshal([]byte(out[strings.Index(out, "["):]), &probes); err != nil {
				t.Fatalf("probe --json: %v\n%s", err, out)
			}
			if len(probes) != 2 {
				t.Fatalf("%d probes: %s", len(probes), out)
			}
			for _, p := range probes {
				if p.Scored || !p.Resolutions[0].Answered() || !p.Resolutions[1].Answered() ||
					!strings.Contains(p.Reason, "ASN table unavailable: ") || !strings.HasPrefix(p.Features.NoASN, "ASN table unavailable: ") {
					t.Errorf("%s: %s (scored %v) %q; features %+v", p.Domain, p.Verdict, p.Scored, p.Reason, p.Features)
				}
			}
			if n := strings.Count(logged, "ASN table unavailable"); n != 1 {
				t.Errorf("the log says %d times that the table is unavailable, want once:\n%s", n, logged)
			}
		})
	}
}

// tip flux probe says what it waited for: the lab's TTLs (minutes) outlast a
// 1 s maximum wait, so the second answer may be a cache's.
func TestFluxProbeSaysWhatItWaitedFor(t *testing.T) {
	w := world.NewWorld(1)
	clock := world.NewClock(world.DefaultStart.Add(12*time.Hour), 60)
	fluxy := w.DomainsOf(world.SingleFlux)[5].Name
	t.Setenv("TIP_FLUX_RESOLVERS", testenv.LabDNS(t, w, clock))
	t.Setenv("TIP_FLUX_ASN_TABLE", testenv.LabASNTable(t, w))
	t.Setenv("TIP_FLUX_ASN_TABLE_ALLOW_PRIVATE", "true")
	t.Chdir(t.TempDir())
	out, err := runTip(t, "flux", "probe", fluxy, "--max-wait", "1s")
	if err != nil {
		t.Fatalf("probe: %v\n%s", err, out)
	}
	if !strings.Contains(out, "resolution 2: waited the maximum 1s; TTLs of ") ||
		!strings.Contains(out, " s had not run out: the answer may come from the resolver's cache") {
		t.Errorf("probe does not say what it waited for:\n%s", out)
	}
	if !strings.Contains(out, "  resolution 2 at ") {
		t.Errorf("probe does not show the second resolution:\n%s", out)
	}
}

// captureStderr runs fn with os.Stderr, where tip logs, going to a pipe, and
// returns what was written.
func captureStderr(t *testing.T, fn func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stderr
	os.Stderr = w
	done := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		done <- string(b)
	}()
	fn()
	os.Stderr = saved
	w.Close()
	return <-done
}
