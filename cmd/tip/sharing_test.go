package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tip-project/tip/config"
	"github.com/tip-project/tip/internal/testenv"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/taxii"
)

// checkSharing runs `tip serve api` on the loop's data and asks it what the
// demo asks (liveAPI), as a client with a token: a lookup of a flux agent, a
// TAXII collection page, the MISP manifest. Then the context a feed gave
// (Feodo's malware family and port) comes back from the API's lookup.
func checkSharing(t *testing.T, ctx context.Context, db *storage.DB, cfg config.Config) {
	listen := testenv.FreeAddr(t)
	t.Setenv("TIP_API_LISTEN", listen)
	t.Setenv("TIP_API_METRICS_ADDRESS", testenv.FreeAddr(t))
	t.Setenv("TIP_API_MISP_CACHE", t.TempDir())
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	var log bytes.Buffer
	go func() {
		root := newRoot()
		root.SetArgs([]string{"serve", "api"})
		root.SetOut(&log)
		root.SetErr(&log)
		done <- root.ExecuteContext(sctx)
	}()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve api: %v\n%s", err, log.String())
			}
		case <-time.After(20 * time.Second):
			t.Error("serve api did not stop")
		}
	}()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		resp, err := http.Get("http://" + listen + "/v1/openapi.json")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve api did not answer: %v\n%s", err, log.String())
		}
	}
	api := cfg.API
	api.Listen = listen
	out := liveAPI(ctx, db, api)
	t.Logf("API %s", out)
	for _, want := range []string{`lookup \S+: score 0\.\d\d, [1-9]\d* listing`, `TAXII indicators: [1-9]\d* STIX objects`, `MISP feed: [1-9]\d* events`} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("the demo's API line %q lacks %s", out, want)
		}
	}

	// What Feodo's CSV said of a C2 (its family, its port, when it listed it)
	// comes back with the listing.
	c2, err := db.SampleListing(ctx, "feodo-ipblocklist-csv")
	if err != nil || c2 == "" {
		t.Fatalf("a Feodo CSV listing: %q, %v", c2, err)
	}
	tok, _, err := db.AddAPIToken(ctx, "sharing-test", []storage.APIScope{storage.ScopeLookup}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+listen+"/v1/lookup?q="+url.QueryEscape(c2), nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	var doc struct {
		Listings []storage.Listing `json:"listings"`
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Second) { // until the index is built
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		err = json.NewDecoder(resp.Body).Decode(&doc)
		resp.Body.Close()
		if err == nil && len(doc.Listings) > 0 || time.Now().After(deadline) {
			break
		}
	}
	found := false
	for _, l := range doc.Listings {
		if l.Source == "feodo-ipblocklist-csv" {
			found = true
			if l.Malware == "" || l.Port == "" || l.Listed == nil || l.Category != "botnet-c2" || l.TLP != "clear" {
				t.Errorf("the API's listing of %s by Feodo's CSV: %+v; want its malware, port, listing time, category and TLP", c2, l)
			}
		}
	}
	if !found {
		t.Errorf("the API's lookup of %s: %+v; want Feodo's CSV listing", c2, doc.Listings)
	}
}

// TestReadmeSharingWalkthrough: the README's walk-through of the API names
// the collections by the ids the TAXII server gives them and the paths it
// serves.
func TestReadmeSharingWalkthrough(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	for _, want := range []string{
		"/taxii2/tip/collections/" + taxii.CollectionID(storage.TAXIIIndicators) + "/objects/",
		taxii.CollectionID(storage.TAXIIOwnSources), taxii.CollectionID(storage.TAXIIFluxNetworks),
		"http://" + config.Default().API.Listen + "/v1/lookup?q=", "/misp/manifest.json", taxii.MediaTAXII,
		"tip api token add", "--format misp-feed --out",
	} {
		if !strings.Contains(readme, want) {
			t.Errorf("README.md lacks %q", want)
		}
	}
}
