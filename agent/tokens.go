package agent

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"time"
)

// TokensFile holds the collector tokens in the agent's folder, hashed.
const TokensFile = "tokens.json"

const (
	tokensFormat = "tip-agent-tokens"
	tokenPrefix  = "tipa_"
)

// MaxTokenTTL is the longest lifetime a token can be given: a hundred years
// (36500 days), far past any use and far from time.Duration's bound.
const MaxTokenTTL = 36500 * 24 * time.Hour

// Scope is what a token may fetch.
type Scope string

// The scopes of docs/agent-protocol.md.
const (
	ScopeFacts Scope = "facts" // the manifest and batches
	ScopeRaw   Scope = "raw"   // those and the raw mails
)

// ParseScope reads a scope as the CLI and tokens.json write it.
func ParseScope(s string) (Scope, error) {
	switch Scope(s) {
	case ScopeFacts, ScopeRaw:
		return Scope(s), nil
	}
	return "", fmt.Errorf("scope %q: want %q or %q", s, ScopeFacts, ScopeRaw)
}

// Allows says whether a token of scope s may fetch what needs scope need.
func (s Scope) Allows(need Scope) bool { return s == ScopeRaw || s == need }

// Token is a collector token as tokens.json keeps it: its SHA-256, never the token.
type Token struct {
	Name    string    `json:"name"`
	SHA256  string    `json:"sha256"` // of the whole token string, "tipa_" included
	Scope   Scope     `json:"scope"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires,omitzero"` // zero: never
	Revoked time.Time `json:"revoked,omitzero"` // zero: not revoked
}

// Status is "active", "expired" or "revoked" at time now.
func (t Token) Status(now time.Time) string {
	switch {
	case !t.Revoked.IsZero():
		return "revoked"
	case !t.Expires.IsZero() && !now.Before(t.Expires):
		return "expired"
	}
	return "active"
}

// The reasons Verify refuses a token; the server answers each with 401.
var (
	ErrNoToken      = errors.New("no bearer token")
	ErrUnknownToken = errors.New("unknown token")
	ErrTokenExpired = errors.New("token expired")
	ErrTokenRevoked = errors.New("token revoked")
)

type tokensFile struct {
	Format string  `json:"format"`
	Schema int     `json:"schema"`
	Tokens []Token `json:"tokens"`
}

var (
	tokenNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)
	tokenRE     = regexp.MustCompile(`^tipa_[A-Za-z0-9_-]{43}$`)
)

// Tokens is the agent's tokens.json. Verify rereads the file whenever it was
// replaced or changed, so `tip agent token revoke` takes effect on a running
// agent with its next request; a file that cannot be read refuses every token.
type Tokens struct {
	path string
	now  func() time.Time

	mu     sync.Mutex
	stat   fs.FileInfo // of the file last loaded; nil: none loaded
	tokens []Token
	err    error // loading the current file failed
}

// OpenTokens is the tokens of the agent folder dir; a missing file has none.
func OpenTokens(dir string) *Tokens {
	return &Tokens{path: filepath.Join(dir, TokensFile), now: time.Now}
}

// refresh reloads the file when it is not the one loaded last. Called with mu held.
func (t *Tokens) refresh() error {
	fi, err := os.Stat(t.path)
	if errors.Is(err, fs.ErrNotExist) {
		t.stat, t.tokens, t.err = nil, nil, nil
		return nil
	}
	if err != nil {
		t.err = fmt.Errorf("%s: %w", t.path, err)
		return t.err
	}
	// A write replaces the file (a new inode); SameFile, size and time together
	// also catch an edit in place.
	if t.stat != nil && os.SameFile(t.stat, fi) && fi.Size() == t.stat.Size() && fi.ModTime().Equal(t.stat.ModTime()) {
		return t.err
	}
	data, err := os.ReadFile(t.path)
	if err != nil {
		t.err = fmt.Errorf("%s: %w", t.path, err)
		return t.err
	}
	var f tokensFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		t.stat, t.tokens, t.err = fi, nil, fmt.Errorf("%s: %w", t.path, err)
		return t.err
	}
	if f.Format != tokensFormat || f.Schema != Schema {
		t.stat, t.tokens, t.err = fi, nil, fmt.Errorf("%s: format %q schema %d, want %q schema %d", t.path, f.Format, f.Schema, tokensFormat, Schema)
		return t.err
	}
	for i, tk := range f.Tokens {
		if !tokenNameRE.MatchString(tk.Name) || !ValidSHA256(tk.SHA256) {
			t.stat, t.tokens, t.err = fi, nil, fmt.Errorf("%s: token %d: bad name or sha256", t.path, i)
			return t.err
		}
		if _, err := ParseScope(string(tk.Scope)); err != nil {
			t.stat, t.tokens, t.err = fi, nil, fmt.Errorf("%s: token %s: %w", t.path, tk.Name, err)
			return t.err
		}
	}
	t.stat, t.tokens, t.err = fi, f.Tokens, nil
	return nil
}

// Verify finds the token a collector presented. It compares the token's SHA-256
// with every stored hash in constant time, so the answer's timing tells nothing
// about how close a guess was. The Token is returned with ErrTokenExpired and
// ErrTokenRevoked too, so the refusal can be logged with its name.
func (t *Tokens) Verify(secret string) (Token, error) {
	if secret == "" {
		return Token{}, ErrNoToken
	}
	sum := sha256.Sum256([]byte(secret))
	want := []byte(hex.EncodeToString(sum[:]))
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.refresh(); err != nil {
		return Token{}, err
	}
	found := -1
	for i := range t.tokens {
		if subtle.ConstantTimeCompare(want, []byte(t.tokens[i].SHA256)) == 1 {
			found = i
		}
	}
	if found < 0 || !tokenRE.MatchString(secret) {
		return Token{}, ErrUnknownToken
	}
	tk := t.tokens[found]
	switch tk.Status(t.now()) {
	case "revoked":
		return tk, ErrTokenRevoked
	case "expired":
		return tk, ErrTokenExpired
	}
	return tk, nil
}

// List is the stored tokens, in the order they were added.
func (t *Tokens) List() ([]Token, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.refresh(); err != nil {
		return nil, err
	}
	return append([]Token{}, t.tokens...), nil
}

// Add makes a token for a collector, stores its hash and returns the token: the
// only time it is ever shown. ttl > 0 makes it expire that long from now. Names
// are unique, also among revoked tokens, so the log's names stay unambiguous.
func (t *Tokens) Add(name string, scope Scope, ttl time.Duration) (string, Token, error) {
	if !tokenNameRE.MatchString(name) {
		return "", Token{}, fmt.Errorf("token name %q: want 1 to 64 letters, digits, '.', '_', '@' or '-'", name)
	}
	if _, err := ParseScope(string(scope)); err != nil {
		return "", Token{}, err
	}
	if ttl < 0 || ttl > MaxTokenTTL {
		return "", Token{}, fmt.Errorf("expiry %s: want a positive duration up to %s (100 years)", ttl, MaxTokenTTL)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.refresh(); err != nil {
		return "", Token{}, err
	}
	for _, tk := range t.tokens {
		if tk.Name == name {
			return "", Token{}, fmt.Errorf("a token named %q exists (%s): pick another name", name, tk.Status(t.now()))
		}
	}
	var random [32]byte
	if _, err := rand.Read(random[:]); err != nil {
		return "", Token{}, err
	}
	secret := tokenPrefix + base64.RawURLEncoding.EncodeToString(random[:])
	sum := sha256.Sum256([]byte(secret))
	now := t.now().UTC().Truncate(time.Second)
	tk := Token{Name: name, SHA256: hex.EncodeToString(sum[:]), Scope: scope, Created: now}
	if ttl > 0 {
		tk.Expires = now.Add(ttl)
	}
	if err := t.save(append(append([]Token{}, t.tokens...), tk)); err != nil {
		return "", Token{}, err
	}
	return secret, tk, nil
}

// Revoke marks the token named name revoked; a running agent refuses it from its
// next request on. Revoking a revoked token is an error, so a typo is noticed.
func (t *Tokens) Revoke(name string) (Token, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.refresh(); err != nil {
		return Token{}, err
	}
	list := append([]Token{}, t.tokens...)
	for i := range list {
		if list[i].Name != name {
			continue
		}
		if !list[i].Revoked.IsZero() {
			return list[i], fmt.Errorf("token %q was revoked at %s", name, list[i].Revoked.Format(time.RFC3339))
		}
		list[i].Revoked = t.now().UTC().Truncate(time.Second)
		return list[i], t.save(list)
	}
	return Token{}, fmt.Errorf("no token named %q", name)
}

// save writes the list atomically, readable by the agent's user only. Called
// with mu held.
func (t *Tokens) save(list []Token) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", " ")
	if err := enc.Encode(tokensFile{Format: tokensFormat, Schema: Schema, Tokens: list}); err != nil {
		return err
	}
	if err := WriteFileAtomic(t.path, b.Bytes(), 0o600); err != nil {
		return fmt.Errorf("%s: %w", t.path, err)
	}
	t.stat = nil // reload what was written, with its new identity
	return t.refresh()
}
