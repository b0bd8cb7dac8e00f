// Package textcap bounds text that comes from outside input before it reaches a
// database row, a workflow payload or a log: an error quoting a hostile line must
// not carry the line whole.
package textcap

import (
	"strconv"
	"unicode/utf8"
)

// Cap returns s when it is at most n bytes long, and otherwise the longest prefix
// of s that fits in n bytes together with a marker "… (K more bytes)" saying how
// many bytes were cut. The cut never splits a UTF-8 sequence, so valid UTF-8 stays
// valid. When n is too small for the marker, the prefix comes alone.
func Cap(s string, n int) string {
	if len(s) <= n {
		return s
	}
	if n <= 0 {
		return ""
	}
	// The marker is longest when it counts every byte of s; sized for that, the
	// prefix and the marker together never pass n.
	longest := len(marker(len(s)))
	if longest > n {
		return s[:boundary(s, n)]
	}
	keep := boundary(s, n-longest)
	return s[:keep] + marker(len(s)-keep)
}

func marker(cut int) string { return "… (" + strconv.Itoa(cut) + " more bytes)" }

// boundary is the largest i <= n at which s can be cut without splitting a rune;
// n itself when s is not UTF-8 there.
func boundary(s string, n int) int {
	for i := n; i >= 0 && i > n-utf8.UTFMax; i-- {
		if utf8.RuneStart(s[i]) {
			return i
		}
	}
	return n
}

// Error returns err when its text is at most n bytes, and otherwise an error whose
// text is capped with Cap and which unwraps to err, so errors.Is and errors.As
// still find what err wraps.
func Error(err error, n int) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if len(msg) <= n {
		return err
	}
	return &capped{msg: Cap(msg, n), err: err}
}

type capped struct {
	msg string
	err error
}

func (e *capped) Error() string { return e.msg }
func (e *capped) Unwrap() error { return e.err }
