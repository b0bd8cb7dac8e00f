// Package trap publishes the lab's spam the way real spamtraps do: monthly 7z archives
// in the untroubled.org layout (Archive), a Maildir that keeps receiving mail as lab
// time passes (Delivery), and a real Dovecot serving that Maildir over IMAP (Dovecot).
// It knows nothing about how spam is made; it takes mail from a Source.
package trap

import (
	"fmt"
	"strings"
	"time"
)

// Mail is one raw RFC 822 message received by the trap at lab time Time. Name is its
// file name in the archive (e.g. "1788220800.12345_3.txt") and must be unique.
type Mail struct {
	Name string
	Time time.Time
	Raw  []byte
}

// Source yields the mail received in the lab time window [from, to), ordered by time.
// It must be deterministic: the same window always yields the same mail, and a window
// split in two yields the same mail as the whole. from may be the zero time, meaning
// "since the beginning".
type Source interface {
	Between(from, to time.Time) []Mail
}

// checkName rejects names that would escape or break the archive tree.
func checkName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\\\x00") {
		return fmt.Errorf("bad mail name %q", name)
	}
	return nil
}
