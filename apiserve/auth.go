package apiserve

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tip-project/tip/storage"
)

// realm names TIP in the challenges of a 401.
const realm = `realm="tip"`

type tokenKey struct{}

// TokenFrom is the token a request was let in with (for the TAXII handler).
func TokenFrom(ctx context.Context) (storage.APIToken, bool) {
	t, ok := ctx.Value(tokenKey{}).(storage.APIToken)
	return t, ok
}

// credentials is the token a request presents: `Authorization: Bearer
// TOKEN`, or HTTP Basic with the token as the password (any user name) as
// TAXII clients send it, or as the user name with an empty password.
func credentials(r *http.Request) string {
	auth := r.Header.Get("Authorization")
	if scheme, rest, ok := strings.Cut(auth, " "); ok && strings.EqualFold(scheme, "Bearer") {
		return strings.TrimSpace(rest)
	}
	if user, pass, ok := r.BasicAuth(); ok {
		if pass == "" {
			return user
		}
		return pass
	}
	return ""
}

// auth lets a request through to h when its token verifies, holds scope
// need, and is within its rate; it answers 401, 403, 429 or 503 otherwise.
func (s *Server) auth(need storage.APIScope, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		client := clientOf(r.RemoteAddr)
		start := time.Now()
		tk, err := s.store.VerifyAPIToken(r.Context(), credentials(r))
		s.m.verify.Observe(time.Since(start).Seconds())
		switch {
		case errors.Is(err, storage.ErrAPITokenMissing):
			s.refuse(client, "no_token", "")
			s.challenge(w, "", "no token: send Authorization: Bearer <token>, or HTTP Basic with the token as the password")
			return
		case errors.Is(err, storage.ErrAPITokenUnknown):
			s.refuse(client, "unknown_token", "")
			s.challenge(w, "invalid_token", "unknown token")
			return
		case errors.Is(err, storage.ErrAPITokenExpired):
			s.refuse(client, "expired_token", tk.Name)
			s.challenge(w, "invalid_token", fmt.Sprintf("token %s expired at %s", tk.Name, tk.Expires.Format(time.RFC3339)))
			return
		case errors.Is(err, storage.ErrAPITokenRevoked):
			s.refuse(client, "revoked_token", tk.Name)
			s.challenge(w, "invalid_token", fmt.Sprintf("token %s was revoked at %s", tk.Name, tk.Revoked.Format(time.RFC3339)))
			return
		case err != nil:
			if r.Context().Err() != nil {
				return // the client left
			}
			s.refused.note("postgres", "verify", "api: cannot verify tokens", "err", err)
			writeError(w, http.StatusServiceUnavailable, "cannot verify the token now; try again later")
			return
		}
		if !tk.Allows(need) {
			s.refuse(client, "scope", tk.Name)
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer %s, error="insufficient_scope", scope="%s"`, realm, need))
			writeError(w, http.StatusForbidden, "token %s lacks scope %s (it holds %s)", tk.Name, need, tk.ScopeList())
			return
		}
		if ok, wait := s.limits.allow(tk.Name, time.Now()); !ok {
			s.refuse(client, "rate", tk.Name)
			secs := int(math.Ceil(wait.Seconds()))
			w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
			writeError(w, http.StatusTooManyRequests, "token %s is over its rate of %g requests a second; retry after %d s", tk.Name, s.cfg.RatePerToken, max(secs, 1))
			return
		}
		w.Header().Set("Vary", "Authorization")
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), tokenKey{}, tk)))
	})
}

// challenge answers 401 with both challenges, Bearer (with error, RFC 6750,
// when a token was sent) and Basic.
func (s *Server) challenge(w http.ResponseWriter, bearerError, msg string) {
	bearer := "Bearer " + realm
	if bearerError != "" {
		bearer += fmt.Sprintf(`, error="%s"`, bearerError)
	}
	w.Header().Add("WWW-Authenticate", bearer)
	w.Header().Add("WWW-Authenticate", "Basic "+realm+`, charset="UTF-8"`)
	writeError(w, http.StatusUnauthorized, "%s", msg)
}

// refuse counts a refused request and logs it, boundedly.
func (s *Server) refuse(client, reason, token string) {
	s.m.refused.WithLabelValues(reason).Inc()
	attrs := []any{}
	if token != "" {
		attrs = append(attrs, "token", token)
	}
	s.refused.note(client, reason, "api: request refused", attrs...)
}
