package agent

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestTokens(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 11, 27, 1, 0, 0, 0, time.UTC)
	tokens := OpenTokens(dir)
	tokens.now = func() time.Time { return now }

	if list, err := tokens.List(); err != nil || len(list) != 0 {
		t.Fatalf("no tokens.json: %v, %v", list, err)
	}
	secret, tk, err := tokens.Add("alice", ScopeFacts, 30*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^tipa_[A-Za-z0-9_-]{43}$`).MatchString(secret) {
		t.Fatalf("token %q: want tipa_ and 43 characters of base64url", secret)
	}
	if tk.Name != "alice" || tk.Scope != ScopeFacts || !tk.Created.Equal(now) || !tk.Expires.Equal(now.Add(30*24*time.Hour)) {
		t.Fatalf("Add = %+v", tk)
	}
	other, _, err := tokens.Add("bob", ScopeRaw, 0)
	if err != nil || other == secret {
		t.Fatalf("second token: %v", err)
	}

	// Only hashes are stored, readable by the agent's user alone.
	p := filepath.Join(dir, TokensFile)
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("tokens.json: %v, mode %v", err, fi.Mode())
	}
	data, _ := os.ReadFile(p)
	if strings.Contains(string(data), secret[5:]) || strings.Contains(string(data), other[5:]) {
		t.Fatal("tokens.json holds a token")
	}

	for _, tc := range []struct {
		secret string
		want   error
	}{{secret, nil}, {other, nil}, {"", ErrNoToken}, {secret + "x", ErrUnknownToken}, {"tipa_" + strings.Repeat("x", 43), ErrUnknownToken}} {
		if _, err := tokens.Verify(tc.secret); !errors.Is(err, tc.want) {
			t.Errorf("Verify(%.12q) = %v, want %v", tc.secret, err, tc.want)
		}
	}
	if tk, err := tokens.Verify(other); err != nil || tk.Name != "bob" || !tk.Scope.Allows(ScopeRaw) || !tk.Scope.Allows(ScopeFacts) {
		t.Fatalf("Verify(bob) = %+v, %v", tk, err)
	}
	if tk, _ := tokens.Verify(secret); tk.Scope.Allows(ScopeRaw) {
		t.Fatal("a facts token allows raw")
	}

	if _, _, err := tokens.Add("alice", ScopeRaw, 0); err == nil {
		t.Fatal("a second token named alice")
	}
	for _, name := range []string{"", "a b", "../x", strings.Repeat("n", 65), "-x"} {
		if _, _, err := tokens.Add(name, ScopeRaw, 0); err == nil {
			t.Errorf("token name %q accepted", name)
		}
	}
	if _, _, err := tokens.Add("carol", Scope("all"), 0); err == nil {
		t.Error("scope all accepted")
	}

	// Expiry, and revocation seen by another Tokens on the same file (the
	// running agent, when the CLI revokes).
	now = now.Add(31 * 24 * time.Hour)
	if tk, err := tokens.Verify(secret); !errors.Is(err, ErrTokenExpired) || tk.Name != "alice" {
		t.Fatalf("after expiry: %+v, %v", tk, err)
	}
	cli := OpenTokens(dir)
	if _, err := cli.Revoke("bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Revoke("bob"); err == nil {
		t.Fatal("revoked twice")
	}
	if _, err := cli.Revoke("nobody"); err == nil {
		t.Fatal("revoked an unknown token")
	}
	if _, err := tokens.Verify(other); !errors.Is(err, ErrTokenRevoked) {
		t.Fatalf("after revocation: %v", err)
	}
	list, err := tokens.List()
	if err != nil || len(list) != 2 || list[0].Status(now) != "expired" || list[1].Status(now) != "revoked" {
		t.Fatalf("List = %+v, %v", list, err)
	}
	js, _ := json.Marshal(list)
	if strings.Contains(string(js), secret[5:]) {
		t.Fatal("the list holds a token")
	}

	// A damaged file refuses every token rather than the revoked ones only.
	if err := os.WriteFile(p, []byte(`{"format":"tip-agent-tokens","schema":1,"tokens":[{"name":"x","sha256":"zz"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := tokens.Verify(secret); err == nil || errors.Is(err, ErrUnknownToken) {
		t.Fatalf("a damaged tokens.json: %v", err)
	}
}

// A token lives at most MaxTokenTTL (100 years); a longer or negative lifetime
// is refused rather than wrapped around.
func TestTokenLifetimeBounded(t *testing.T) {
	tokens := OpenTokens(t.TempDir())
	for _, ttl := range []time.Duration{-time.Hour, MaxTokenTTL + time.Second, math.MaxInt64} {
		if _, _, err := tokens.Add("carol", ScopeRaw, ttl); err == nil {
			t.Errorf("lifetime %v accepted", ttl)
		}
	}
	if _, tk, err := tokens.Add("carol", ScopeRaw, MaxTokenTTL); err != nil || !tk.Expires.After(time.Now().AddDate(99, 0, 0)) {
		t.Errorf("a lifetime of 100 years: %+v, %v", tk, err)
	}
}
