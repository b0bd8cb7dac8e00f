package storage

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The tokens of `tip serve api`: who may ask it what. Only a token's SHA-256
// is stored; the token itself is shown once, when it is made.

// APIScope is what a token may ask of the API.
type APIScope string

// The scopes; a token holds one or more.
const (
	ScopeLookup  APIScope = "lookup"  // /v1/lookup
	ScopeExport  APIScope = "export"  // /v1/export, /misp/, /taxii2/
	ScopeSources APIScope = "sources" // /v1/sources
	ScopeAll     APIScope = "all"     // every scope, those added later too
)

// APIScopes are the scopes a route may need, in the order lists show them.
var APIScopes = []APIScope{ScopeLookup, ScopeExport, ScopeSources}

// MaxAPITokenTTL is the longest lifetime a token can be given: a hundred years.
const MaxAPITokenTTL = 36500 * 24 * time.Hour

// apiTokenPrefix starts every API token, so a leaked one is recognised (and
// told from an agent's, tipa_).
const apiTokenPrefix = "tipk_"

var (
	apiTokenRE     = regexp.MustCompile(`^tipk_[A-Za-z0-9_-]{43}$`)
	apiTokenNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)
)

// The reasons VerifyAPIToken refuses a token; the API answers each with 401.
var (
	ErrAPITokenMissing = errors.New("no token")
	ErrAPITokenUnknown = errors.New("unknown token")
	ErrAPITokenExpired = errors.New("token expired")
	ErrAPITokenRevoked = errors.New("token revoked")
)

// ParseAPIScopes reads a comma-separated list of scopes (lookup,export): each
// once, in APIScopes order; "all" stands alone.
func ParseAPIScopes(s string) ([]APIScope, error) {
	seen := map[APIScope]bool{}
	for f := range strings.SplitSeq(s, ",") {
		sc := APIScope(strings.TrimSpace(f))
		if sc != ScopeAll && !slices.Contains(APIScopes, sc) {
			return nil, fmt.Errorf("scope %q: want %s or all", sc, joinScopes(APIScopes, ", "))
		}
		seen[sc] = true
	}
	if seen[ScopeAll] {
		if len(seen) > 1 {
			return nil, errors.New("scope all holds every other: name it alone")
		}
		return []APIScope{ScopeAll}, nil
	}
	var out []APIScope
	for _, sc := range APIScopes {
		if seen[sc] {
			out = append(out, sc)
		}
	}
	return out, nil
}

func joinScopes(scopes []APIScope, sep string) string {
	s := make([]string, len(scopes))
	for i, sc := range scopes {
		s[i] = string(sc)
	}
	return strings.Join(s, sep)
}

// APIToken is a token as stored: never the token itself.
type APIToken struct {
	Name     string     `json:"name"`
	Scopes   []APIScope `json:"scopes"`
	Created  time.Time  `json:"created"`
	Expires  time.Time  `json:"expires,omitzero"`   // zero: never
	Revoked  time.Time  `json:"revoked,omitzero"`   // zero: not revoked
	LastUsed time.Time  `json:"last_used,omitzero"` // to the minute; zero: never used
}

// Allows says whether the token may ask what needs scope need.
func (t APIToken) Allows(need APIScope) bool {
	return slices.Contains(t.Scopes, ScopeAll) || slices.Contains(t.Scopes, need)
}

// Status is "active", "expired" or "revoked" at time now.
func (t APIToken) Status(now time.Time) string {
	switch {
	case !t.Revoked.IsZero():
		return "revoked"
	case !t.Expires.IsZero() && !now.Before(t.Expires):
		return "expired"
	}
	return "active"
}

// ScopeList is the token's scopes as the CLI writes them: lookup,export.
func (t APIToken) ScopeList() string { return joinScopes(t.Scopes, ",") }

// apiTokenColumns are scanned by scanAPIToken, in this order.
const apiTokenColumns = `name, scopes, created_at, coalesce(expires_at, 'epoch'), coalesce(revoked_at, 'epoch'), coalesce(last_used, 'epoch')`

// scanAPIToken reads apiTokenColumns, then the extra destinations given.
func scanAPIToken(row pgx.Row, extra ...any) (APIToken, error) {
	var t APIToken
	var scopes []string
	if err := row.Scan(append([]any{&t.Name, &scopes, &t.Created, &t.Expires, &t.Revoked, &t.LastUsed}, extra...)...); err != nil {
		return t, err
	}
	for _, s := range scopes {
		t.Scopes = append(t.Scopes, APIScope(s))
	}
	for _, ts := range []*time.Time{&t.Created, &t.Expires, &t.Revoked, &t.LastUsed} {
		if *ts = ts.UTC(); ts.Unix() == 0 { // 'epoch' stands for NULL
			*ts = time.Time{}
		}
	}
	return t, nil
}

// AddAPIToken makes a token, stores its hash and returns the token: the only
// time it is ever shown. ttl > 0 makes it expire that long from now. Names are
// unique, revoked tokens' too.
func (db *DB) AddAPIToken(ctx context.Context, name string, scopes []APIScope, ttl time.Duration) (string, APIToken, error) {
	if !apiTokenNameRE.MatchString(name) {
		return "", APIToken{}, fmt.Errorf("token name %q: want 1 to 64 letters, digits, '.', '_', '@' or '-'", name)
	}
	if len(scopes) == 0 {
		return "", APIToken{}, errors.New("a token needs a scope")
	}
	if ttl < 0 || ttl > MaxAPITokenTTL {
		return "", APIToken{}, fmt.Errorf("lifetime %s: want a positive duration up to %s (100 years)", ttl, MaxAPITokenTTL)
	}
	names := make([]string, len(scopes))
	for i, sc := range scopes {
		names[i] = string(sc)
	}
	var random [32]byte
	if _, err := rand.Read(random[:]); err != nil {
		return "", APIToken{}, err
	}
	secret := apiTokenPrefix + base64.RawURLEncoding.EncodeToString(random[:])
	var expires *int64
	if ttl > 0 {
		us := ttl.Microseconds()
		expires = &us
	}
	t, err := scanAPIToken(db.pool.QueryRow(ctx, `
		INSERT INTO api_tokens (sha256, name, scopes, expires_at)
		VALUES ($1, $2, $3, now() + $4 * interval '1 microsecond')
		RETURNING `+apiTokenColumns, apiTokenHash(secret), name, names, expires))
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "api_tokens_name_key" {
		return "", APIToken{}, fmt.Errorf("a token named %q exists (tip api token list): pick another name", name)
	}
	if err != nil {
		return "", APIToken{}, fmt.Errorf("add api token %s: %w", name, err)
	}
	return secret, t, nil
}

// APITokens lists the stored tokens, oldest first.
func (db *DB) APITokens(ctx context.Context) ([]APIToken, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+apiTokenColumns+` FROM api_tokens ORDER BY created_at, name`)
	if err != nil {
		return nil, fmt.Errorf("api tokens: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (APIToken, error) { return scanAPIToken(r) })
	if err != nil {
		return nil, fmt.Errorf("api tokens: %w", err)
	}
	return out, nil
}

// RevokeAPIToken marks the token named name revoked: every replica refuses it
// from its next request on. Revoking a revoked token is an error, so a typo is
// noticed.
func (db *DB) RevokeAPIToken(ctx context.Context, name string) (APIToken, error) {
	t, err := scanAPIToken(db.pool.QueryRow(ctx, `
		UPDATE api_tokens SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL
		RETURNING `+apiTokenColumns, name))
	if errors.Is(err, pgx.ErrNoRows) {
		t, err = scanAPIToken(db.pool.QueryRow(ctx, `SELECT `+apiTokenColumns+` FROM api_tokens WHERE name = $1`, name))
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return APIToken{}, fmt.Errorf("no token named %q (tip api token list)", name)
		case err == nil:
			return t, fmt.Errorf("token %q was revoked at %s", name, t.Revoked.Format(time.RFC3339))
		}
	}
	if err != nil {
		return APIToken{}, fmt.Errorf("revoke api token %s: %w", name, err)
	}
	return t, nil
}

// lastUsedEvery bounds how often a token's last_used is written: at most once
// this long, however many requests it makes.
const lastUsedEvery = time.Minute

// VerifyAPIToken finds the token a client presented: one lookup by the
// primary key, so a revocation acts at once. A token in use has last_used
// written in the same statement, at most once a minute. The token is returned
// with ErrAPITokenExpired and ErrAPITokenRevoked too, so the refusal can be
// logged with its name. Expiry is judged by the database's clock, the same
// for every replica. The lookup is by the token's SHA-256, so its timing tells
// nothing of the token.
func (db *DB) VerifyAPIToken(ctx context.Context, secret string) (APIToken, error) {
	if secret == "" {
		return APIToken{}, ErrAPITokenMissing
	}
	if !apiTokenRE.MatchString(secret) {
		return APIToken{}, ErrAPITokenUnknown
	}
	var expired bool
	t, err := scanAPIToken(db.pool.QueryRow(ctx, `
		WITH used AS (
		    UPDATE api_tokens SET last_used = date_trunc('second', now())
		     WHERE sha256 = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())
		       AND (last_used IS NULL OR last_used < now() - $2 * interval '1 microsecond'))
		SELECT `+apiTokenColumns+`, coalesce(expires_at <= now(), false) FROM api_tokens WHERE sha256 = $1`,
		apiTokenHash(secret), lastUsedEvery.Microseconds()), &expired)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return APIToken{}, ErrAPITokenUnknown
	case err != nil:
		return APIToken{}, fmt.Errorf("verify api token: %w", err)
	case !t.Revoked.IsZero():
		return t, ErrAPITokenRevoked
	case expired:
		return t, ErrAPITokenExpired
	}
	return t, nil
}

// apiTokenHash is the stored form of a token: its SHA-256 in hex.
func apiTokenHash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}
