package storage_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tip-project/tip/internal/testenv"
	"github.com/tip-project/tip/storage"
)

func TestParseAPIScopes(t *testing.T) {
	for _, c := range []struct {
		in, want, err string
	}{
		{in: "lookup", want: "lookup"},
		{in: "export, lookup,export", want: "lookup,export"},
		{in: "sources,export,lookup", want: "lookup,export,sources"},
		{in: "all", want: "all"},
		{in: "all,lookup", err: "alone"},
		{in: "raw", err: `scope "raw"`},
		{in: "", err: `scope ""`},
	} {
		got, err := storage.ParseAPIScopes(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: %v, %v; want an error saying %q", c.in, got, err, c.err)
			}
			continue
		}
		if tk := (storage.APIToken{Scopes: got}); err != nil || tk.ScopeList() != c.want {
			t.Errorf("%q = %v, %v; want %s", c.in, got, err, c.want)
		}
	}
	all := storage.APIToken{Scopes: []storage.APIScope{storage.ScopeAll}}
	some := storage.APIToken{Scopes: []storage.APIScope{storage.ScopeLookup, storage.ScopeSources}}
	for _, sc := range storage.APIScopes {
		if !all.Allows(sc) {
			t.Errorf("scope all does not allow %s", sc)
		}
		if some.Allows(sc) != (sc != storage.ScopeExport) {
			t.Errorf("lookup,sources allows %s: %v", sc, some.Allows(sc))
		}
	}
}

// TestAPITokens: a token is shown once and stored hashed; it verifies until it
// expires or is revoked, and a revocation acts on the next verification.
func TestAPITokens(t *testing.T) {
	ctx := context.Background()
	db := openFresh(t)
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	sql := testenv.SQL(t, db)
	secret, tk, err := db.AddAPIToken(ctx, "soc-siem", []storage.APIScope{storage.ScopeLookup, storage.ScopeExport}, 90*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^tipk_[A-Za-z0-9_-]{43}$`).MatchString(secret) {
		t.Fatalf("token %q: want tipk_ and 43 characters of base64url", secret)
	}
	if tk.Name != "soc-siem" || tk.ScopeList() != "lookup,export" || time.Since(tk.Created) > time.Minute ||
		tk.Expires.Sub(tk.Created) != 90*24*time.Hour || !tk.Revoked.IsZero() || !tk.LastUsed.IsZero() {
		t.Fatalf("AddAPIToken = %+v", tk)
	}
	var stored string
	if err := sql.QueryRow(ctx, `SELECT string_agg(sha256 || name || array_to_string(scopes, ','), ' ') FROM api_tokens`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stored, secret[5:]) {
		t.Fatal("the table holds the token itself")
	}
	other, _, err := db.AddAPIToken(ctx, "misp", []storage.APIScope{storage.ScopeAll}, 0)
	if err != nil || other == secret {
		t.Fatalf("second token: %v", err)
	}
	if _, _, err := db.AddAPIToken(ctx, "soc-siem", []storage.APIScope{storage.ScopeLookup}, 0); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("a second soc-siem: %v", err)
	}
	for _, bad := range []struct {
		name string
		ttl  time.Duration
	}{{"", 0}, {"has space", 0}, {strings.Repeat("x", 65), 0}, {"ok", -time.Hour}, {"ok", storage.MaxAPITokenTTL + time.Hour}} {
		if _, _, err := db.AddAPIToken(ctx, bad.name, []storage.APIScope{storage.ScopeLookup}, bad.ttl); err == nil {
			t.Errorf("AddAPIToken(%q, %s) passed", bad.name, bad.ttl)
		}
	}

	for _, c := range []struct {
		secret string
		want   error
	}{{secret, nil}, {other, nil}, {"", storage.ErrAPITokenMissing}, {secret + "x", storage.ErrAPITokenUnknown},
		{"tipk_" + strings.Repeat("x", 43), storage.ErrAPITokenUnknown}, {"tipa_" + secret[5:], storage.ErrAPITokenUnknown}} {
		if _, err := db.VerifyAPIToken(ctx, c.secret); !errors.Is(err, c.want) {
			t.Errorf("VerifyAPIToken(%.12q) = %v, want %v", c.secret, err, c.want)
		}
	}
	got, err := db.VerifyAPIToken(ctx, other)
	if err != nil || got.Name != "misp" || !got.Allows(storage.ScopeSources) || !got.Expires.IsZero() {
		t.Fatalf("VerifyAPIToken(misp) = %+v, %v", got, err)
	}

	// last_used is written at most once a minute, whatever the requests.
	lastUsed := func() time.Time {
		var at time.Time
		if err := sql.QueryRow(ctx, `SELECT last_used FROM api_tokens WHERE name = 'soc-siem'`).Scan(&at); err != nil {
			t.Fatal(err)
		}
		return at
	}
	first := lastUsed()
	if time.Since(first) > time.Minute {
		t.Fatalf("last_used %s after a verification", first)
	}
	if _, err := sql.Exec(ctx, `UPDATE api_tokens SET last_used = now() - interval '30 seconds' WHERE name = 'soc-siem'`); err != nil {
		t.Fatal(err)
	}
	recent := lastUsed()
	if _, err := db.VerifyAPIToken(ctx, secret); err != nil {
		t.Fatal(err)
	}
	if !lastUsed().Equal(recent) {
		t.Error("last_used written again within the minute")
	}
	if _, err := sql.Exec(ctx, `UPDATE api_tokens SET last_used = now() - interval '2 minutes' WHERE name = 'soc-siem'`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.VerifyAPIToken(ctx, secret); err != nil {
		t.Fatal(err)
	}
	if time.Since(lastUsed()) > 30*time.Second {
		t.Error("last_used not written after a minute")
	}

	// Expiry, by the database's clock.
	if _, err := sql.Exec(ctx, `UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE name = 'soc-siem'`); err != nil {
		t.Fatal(err)
	}
	if got, err := db.VerifyAPIToken(ctx, secret); !errors.Is(err, storage.ErrAPITokenExpired) || got.Name != "soc-siem" {
		t.Fatalf("expired: %+v, %v", got, err)
	}

	// Revocation: at once, and once.
	rv, err := db.RevokeAPIToken(ctx, "misp")
	if err != nil || rv.Revoked.IsZero() || rv.Status(time.Now()) != "revoked" {
		t.Fatalf("RevokeAPIToken = %+v, %v", rv, err)
	}
	if got, err := db.VerifyAPIToken(ctx, other); !errors.Is(err, storage.ErrAPITokenRevoked) || got.Name != "misp" {
		t.Fatalf("revoked: %+v, %v", got, err)
	}
	if _, err := db.RevokeAPIToken(ctx, "misp"); err == nil || !strings.Contains(err.Error(), "was revoked") {
		t.Fatalf("revoked again: %v", err)
	}
	if _, err := db.RevokeAPIToken(ctx, "nobody"); err == nil || !strings.Contains(err.Error(), "no token named") {
		t.Fatalf("revoke an unknown name: %v", err)
	}

	list, err := db.APITokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var status []string
	for _, tk := range list {
		status = append(status, tk.Name+":"+tk.Status(time.Now()))
	}
	if !slices.Equal(status, []string{"soc-siem:expired", "misp:revoked"}) {
		t.Fatalf("APITokens = %v", status)
	}
}

// TestVerifyAPITokenIsCheap: among 20,000 tokens a verification is one lookup
// by the primary key: it stays well under a millisecond on loopback, and the
// plan of that lookup is an index scan.
func TestVerifyAPITokenIsCheap(t *testing.T) {
	ctx := context.Background()
	db := openFresh(t)
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	sql := testenv.SQL(t, db)
	if _, err := sql.Exec(ctx, `
		INSERT INTO api_tokens (sha256, name, scopes)
		SELECT encode(sha256(i::text::bytea), 'hex'), 'bulk-' || i, ARRAY['lookup'] FROM generate_series(1, 20000) i;
		ANALYZE api_tokens`); err != nil {
		t.Fatal(err)
	}
	secret, _, err := db.AddAPIToken(ctx, "probe", []storage.APIScope{storage.ScopeLookup}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var plan string
	if err := sql.QueryRow(ctx, `EXPLAIN SELECT name FROM api_tokens WHERE sha256 = $1`, strings.Repeat("a", 64)).Scan(&plan); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(plan, "api_tokens_pkey") {
		t.Errorf("the lookup by hash is not on the primary key: %s", plan)
	}
	const n = 500
	start := time.Now()
	for range n {
		if _, err := db.VerifyAPIToken(ctx, secret); err != nil {
			t.Fatal(err)
		}
	}
	per := time.Since(start) / n
	t.Logf("VerifyAPIToken among 20,001 tokens: %s a call (%d calls)", per, n)
	if per > 5*time.Millisecond {
		t.Errorf("VerifyAPIToken takes %s a call", per)
	}
}

func BenchmarkVerifyAPIToken(b *testing.B) {
	ctx := context.Background()
	db, err := storage.OpenDB(ctx, testenv.NewDatabase(b))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	var secret string
	for i := range 1000 {
		s, _, err := db.AddAPIToken(ctx, fmt.Sprintf("t%d", i), []storage.APIScope{storage.ScopeLookup}, 0)
		if err != nil {
			b.Fatal(err)
		}
		secret = s
	}
	for b.Loop() {
		if _, err := db.VerifyAPIToken(ctx, secret); err != nil {
			b.Fatal(err)
		}
	}
}
