package flux

import "time"

// Cadence tuning of a monitored domain.
const (
	// StableAfter is how many checks in a row without a new address make a
	// domain stable, and slow its checks down.
	StableAfter = 12
	// MaxStableSlowdown: a stable domain is checked at most this many times less
	// often than its TTL calls for.
	MaxStableSlowdown = 8
)

// CheckInterval is the delay to a domain's next check: the pinned one when set,
// or the answer's TTL bounded by minCheck and maxCheck, slowed 2, 4 and 8 times
// (MaxStableSlowdown) after 12, 24 and 48 checks without a new address
// (StableAfter doubling), and never past maxCheck: hot domains are checked at
// their TTL, stable ones slower.
func CheckInterval(ttl uint32, stable int, pinned, minCheck, maxCheck time.Duration) time.Duration {
	if pinned > 0 {
		return pinned
	}
	d := min(max(time.Duration(ttl)*time.Second, minCheck), maxCheck)
	for slow := 1; stable >= StableAfter*slow && slow < MaxStableSlowdown; slow *= 2 {
		d *= 2
	}
	return min(d, maxCheck)
}
