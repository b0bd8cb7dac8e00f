package world

import (
	"sync"
	"time"
)

// Clock maps wall time to lab time: lab time runs Speed times faster than the wall
// clock from Start, so a demo can live through days in minutes. Tests drive it with
// Set and Advance instead of waiting.
type Clock struct {
	mu    sync.Mutex
	start time.Time // lab time at wall0
	wall0 time.Time
	speed float64
	wall  func() time.Time
	fixed bool
}

// NewClock starts lab time at start, running speed times faster than the wall clock.
func NewClock(start time.Time, speed float64) *Clock {
	if speed <= 0 {
		speed = 1
	}
	return &Clock{start: start, wall0: time.Now(), speed: speed, wall: time.Now}
}

// FixedClock is a clock that moves only when told (tests, `tip lab truth --at`).
func FixedClock(at time.Time) *Clock {
	return &Clock{start: at, speed: 1, wall: time.Now, fixed: true}
}

// Now is the current lab time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fixed {
		return c.start
	}
	return c.start.Add(time.Duration(float64(c.wall().Sub(c.wall0)) * c.speed))
}

// Speed is how many lab seconds pass per wall second.
func (c *Clock) Speed() float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fixed {
		return 0
	}
	return c.speed
}

// Set moves lab time to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.start, c.wall0 = t, c.wall()
}

// Advance moves lab time forward by d.
func (c *Clock) Advance(d time.Duration) { c.Set(c.Now().Add(d)) }

// WallDuration converts a lab duration into the wall time it takes to pass.
func (c *Clock) WallDuration(lab time.Duration) time.Duration {
	s := c.Speed()
	if s == 0 {
		return lab
	}
	return time.Duration(float64(lab) / s)
}
