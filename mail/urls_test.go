package mail

import (
	"slices"
	"strings"
	"testing"
)

func TestExtractURLs(t *testing.T) {
	for _, tc := range []struct {
		text string
		want []string
	}{
		{"Visit http://example.com/a?b=1&c=2 now.", []string{"http://example.com/a?b=1&c=2"}},
		{"Order here: https://shop.example.net/promo/x.php?id=12.", []string{"https://shop.example.net/promo/x.php?id=12"}},
		{"(see https://en.wikipedia.org/wiki/Spam_(food))", []string{"https://en.wikipedia.org/wiki/Spam_(food)"}},
		{"(see https://example.com/x)", []string{"https://example.com/x"}},
		{"<https://example.com/unsub?e=1>, <mailto:u@example.com>", []string{"https://example.com/unsub?e=1"}},
		{"HTTPS://WWW.EXAMPLE.BIZ/?u=amFtZXMz", []string{"https://WWW.EXAMPLE.BIZ/?u=amFtZXMz"}},
		{"go to www.example.org/deal today", []string{"http://www.example.org/deal"}},
		{"defanged hxxp://evil[.]example[.]com/login and hxxps://bad(.)example/x", []string{"http://evil.example.com/login", "https://bad.example/x"}},
		{"h**p://x[dot]example/y hxxp[:]//z.example/", []string{"http://x.example/y", "http://z.example/"}},
		{"详情请访问：http://motek88.com/?u=bWFy\n联系人", []string{"http://motek88.com/?u=bWFy"}},
		{"以下のリンク：https://pinvexpha.org/ja/login/w6nH/。", []string{"https://pinvexpha.org/ja/login/w6nH/"}},
		{"/URI (https://example.com/doc/a/view.php) >> (View: https://example.com/doc/a/view.php) Tj", []string{"https://example.com/doc/a/view.php", "https://example.com/doc/a/view.php"}},
		{`{\field{\*\fldinst{HYPERLINK "https://example.com/d"}}{\fldrslt{\ul https://example.com/d}}}`, []string{"https://example.com/d", "https://example.com/d"}},
		{`var a = "http://example.com/x.exe";`, []string{"http://example.com/x.exe"}},
		{"ftp://files.example.com/pub/a.zip", []string{"ftp://files.example.com/pub/a.zip"}},
		{"http://[2001:db8::1]:8080/x and http://192.0.2.1/y", []string{"http://[2001:db8::1]:8080/x", "http://192.0.2.1/y"}},
		// A host may be an IDN; a path ends at the first non-ASCII character,
		// which in CJK text is where the sentence goes on.
		{"http://пример.рф/путь", []string{"http://пример.рф/"}},
		{"http://example.com.", []string{"http://example.com"}},
		{"xhttp://no.example mailto:a@b.example file:///etc/passwd javascript://x", nil},
		{"the www.-thing and a//b and http:// nothing", nil},
		{"", nil},
	} {
		got := ExtractURLs(tc.text)
		if !slices.Equal(got, tc.want) {
			t.Errorf("ExtractURLs(%q)\n got %q\nwant %q", tc.text, got, tc.want)
		}
	}
}

// ExtractURLs stays linear and bounded on text made of URLs.
func TestExtractURLsBounded(t *testing.T) {
	text := strings.Repeat("http://a.example/x ", 3*maxTextURLs)
	if got := ExtractURLs(text); len(got) != maxTextURLs {
		t.Errorf("%d URLs, want the bound %d", len(got), maxTextURLs)
	}
	long := "http://a.example/" + strings.Repeat("x", 2*maxURLLen) + " http://b.example/"
	if got := ExtractURLs(long); !slices.Equal(got, []string{"http://b.example/"}) {
		t.Errorf("an overlong URL: %q", got)
	}
}
