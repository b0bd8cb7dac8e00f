package textcap_test

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tip-project/tip/textcap"
)

func TestCap(t *testing.T) {
	for _, c := range []struct {
		s    string
		n    int
		want string
	}{
		{s: "short", n: 10, want: "short"},
		{s: "exactly", n: 7, want: "exactly"},
		{s: "", n: 0, want: ""},
		{s: "abc", n: 0, want: ""},
		{s: strings.Repeat("a", 100), n: 30, want: strings.Repeat("a", 10) + "… (90 more bytes)"},
		// "é" is two bytes: the cut moves back rather than split it.
		{s: strings.Repeat("é", 50), n: 30, want: strings.Repeat("é", 5) + "… (90 more bytes)"},
		// no room for the marker: the prefix alone, on a rune boundary
		{s: strings.Repeat("é", 50), n: 5, want: "éé"},
		{s: "\xff\xfe\xfd" + strings.Repeat("x", 100), n: 2, want: "\xff\xfe"},
	} {
		got := textcap.Cap(c.s, c.n)
		if got != c.want {
			t.Errorf("Cap(%.20q…, %d) = %q, want %q", c.s, c.n, got, c.want)
		}
		if len(got) > c.n && len(c.s) > c.n {
			t.Errorf("Cap(%.20q…, %d) is %d bytes", c.s, c.n, len(got))
		}
	}
}

func TestErrorKeepsTheChain(t *testing.T) {
	short := fmt.Errorf("open x: %w", fs.ErrNotExist)
	if textcap.Error(short, 100) != short {
		t.Error("a short error was replaced")
	}
	long := fmt.Errorf("open %s: %w", strings.Repeat("x", 10_000), fs.ErrNotExist)
	got := textcap.Error(long, 100)
	if len(got.Error()) > 100 || !strings.HasPrefix(got.Error(), "open xxx") || !errors.Is(got, fs.ErrNotExist) {
		t.Errorf("capped error %q (%d bytes), errors.Is %v", got, len(got.Error()), errors.Is(got, fs.ErrNotExist))
	}
	if textcap.Error(nil, 10) != nil {
		t.Error("nil error became non-nil")
	}
}

// FuzzCap: the result fits, is a prefix of the input plus at most the marker, and
// valid UTF-8 stays valid.
func FuzzCap(f *testing.F) {
	f.Add("hello, world", 5)
	f.Add(strings.Repeat("€", 40), 33)
	f.Add("\xff\x80\x80\x80abc", 3)
	f.Fuzz(func(t *testing.T, s string, n int) {
		n %= 1 << 12
		got := textcap.Cap(s, n)
		if n >= 0 && len(got) > n && len(s) > n {
			t.Fatalf("Cap(%q, %d) = %q, %d bytes", s, n, got, len(got))
		}
		prefix, _, _ := strings.Cut(got, "… (")
		if !strings.HasPrefix(s, prefix) {
			t.Fatalf("Cap(%q, %d) = %q: not a prefix", s, n, got)
		}
		if utf8.ValidString(s) && !utf8.ValidString(got) {
			t.Fatalf("Cap(%q, %d) = %q: invalid UTF-8", s, n, got)
		}
	})
}
