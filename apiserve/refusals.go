package apiserve

import (
	"log/slog"
	"sync"
	"time"
)

// refusals bounds what the server logs of what goes wrong again and again: a
// client refused for the same reason, a database that does not answer. One
// line per key and interval, saying how many it stood for; a flood of bad
// requests costs a line a minute, not a line a request. The metrics count
// every one.
type refusals struct {
	log   *slog.Logger
	every time.Duration
	now   func() time.Time

	mu    sync.Mutex
	seen  map[[2]string]*refusal
	swept time.Time
}

type refusal struct {
	logged     time.Time
	suppressed int // since logged
}

func newRefusals(log *slog.Logger, every time.Duration) *refusals {
	return &refusals{log: log, every: every, now: time.Now, seen: map[[2]string]*refusal{}}
}

// note logs msg for who and why unless it was logged within the interval;
// the next line of the same key, or the sweep that forgets it, counts the
// ones left out.
func (r *refusals) note(who, why, msg string, attrs ...any) {
	now := r.now()
	key := [2]string{who, why}
	type leftOut struct {
		key [2]string
		n   int
	}
	var swept []leftOut
	r.mu.Lock()
	if now.Sub(r.swept) > r.every {
		for k, e := range r.seen {
			if now.Sub(e.logged) > r.every {
				if e.suppressed > 0 {
					swept = append(swept, leftOut{k, e.suppressed})
				}
				delete(r.seen, k)
			}
		}
		r.swept = now
	}
	e := r.seen[key]
	logIt := e == nil || now.Sub(e.logged) >= r.every
	left := 0
	if logIt {
		if e != nil {
			left = e.suppressed
		}
		r.seen[key] = &refusal{logged: now}
	} else {
		e.suppressed++
	}
	r.mu.Unlock()
	for _, l := range swept {
		r.log.Warn("api: repeated since its last line", "who", l.key[0], "reason", l.key[1], "repeats_not_logged", l.n)
	}
	if logIt {
		r.log.Warn(msg, append([]any{"who", who, "reason", why, "repeats_not_logged", left, "next_within", r.every}, attrs...)...)
	}
}
