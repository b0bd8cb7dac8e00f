package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tip-project/tip/config"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/taxii"
	"github.com/tip-project/tip/workflows/contract"
)

// liveAPI says what `tip serve api` answers, asked as a client would with a
// token made for the question and revoked after it: a lookup of a flux agent
// TIP listed, the first page of the TAXII indicators collection, and the MISP
// feed's manifest; "" when no API is configured.
func liveAPI(ctx context.Context, db *storage.DB, cfg config.API) string {
	if cfg.Listen == "" || cfg.TLSCert != "" {
		return ""
	}
	base := "http://" + cfg.Listen
	name := fmt.Sprintf("demo-%d", time.Now().UnixNano())
	tok, _, err := db.AddAPIToken(ctx, name, []storage.APIScope{storage.ScopeAll}, time.Hour)
	if err != nil {
		return fmt.Sprintf("%s: no token: %v", base, err)
	}
	defer db.RevokeAPIToken(context.WithoutCancel(ctx), name) //nolint:errcheck // it expires within the hour anyway
	client := &http.Client{Timeout: 30 * time.Second}
	get := func(path, accept string, v any) (http.Header, error) {
		req, err := http.NewRequestWithContext(ctx, "GET", base+path, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
			return nil, fmt.Errorf("GET %s: %s: %s", path, resp.Status, strings.TrimSpace(string(b)))
		}
		return resp.Header, json.NewDecoder(resp.Body).Decode(v)
	}
	var parts []string
	if agent, err := db.SampleListing(ctx, contract.FluxAgentsSource); err == nil && agent != "" {
		var doc struct {
			Score    float64           `json:"score"`
			Listings []json.RawMessage `json:"listings"`
		}
		if _, err := get("/v1/lookup?q="+url.QueryEscape(agent), "", &doc); err != nil {
			parts = append(parts, err.Error())
		} else {
			parts = append(parts, fmt.Sprintf("lookup %s: score %.2f, %d listing(s)", agent, doc.Score, len(doc.Listings)))
		}
	}
	// The TAXII collections are brought up to date in the background when
	// the server starts: the first page may take a moment to fill.
	var page struct {
		More    bool              `json:"more"`
		Objects []json.RawMessage `json:"objects"`
	}
	var taxiiErr error
	for range 30 {
		if _, taxiiErr = get("/taxii2/tip/collections/"+taxii.CollectionID(storage.TAXIIIndicators)+"/objects/?limit=100",
			taxii.MediaTAXII, &page); taxiiErr != nil || len(page.Objects) > 0 {
			break
		}
		time.Sleep(time.Second)
	}
	if taxiiErr != nil {
		parts = append(parts, taxiiErr.Error())
	} else {
		more := ""
		if page.More {
			more = ", more to page through"
		}
		parts = append(parts, fmt.Sprintf("TAXII indicators: %d STIX objects on the first page%s", len(page.Objects), more))
	}
	var manifest map[string]json.RawMessage
	if _, err := get("/misp/manifest.json", "", &manifest); err != nil {
		parts = append(parts, err.Error())
	} else {
		parts = append(parts, fmt.Sprintf("MISP feed: %d events", len(manifest)))
	}
	return base + "\n                 " + strings.Join(parts, "\n                 ")
}
