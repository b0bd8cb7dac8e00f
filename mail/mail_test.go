package mail

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

func TestDigestReadsCRLFAsLF(t *testing.T) {
	lf := "Subject: a\n\nline\nbare\rcr\n\n"
	for _, c := range []struct {
		raw  string
		same bool
	}{
		{strings.ReplaceAll(lf, "\n", "\r\n"), true},   // IMAP's CRLF for every LF
		{"Subject: a\r\n\nline\nbare\rcr\r\n\n", true}, // mixed line ends
		{"Subject: a\n\nline\nbare\ncr\n\n", false},    // a bare CR is no line end
		{"Subject: a\n\nline\nbare\rcr\n", false},      // one line end fewer
	} {
		if got := Digest([]byte(c.raw)) == Digest([]byte(lf)); got != c.same {
			t.Errorf("Digest(%q) == Digest(%q): %v, want %v", c.raw, lf, got, c.same)
		}
	}
	sum := sha256.Sum256([]byte("a\nb\n"))
	if Digest([]byte("a\r\nb\r\n")) != hex.EncodeToString(sum[:]) {
		t.Error("the digest of a CRLF text is not the SHA-256 of its LF form")
	}
}
