package mail

import (
	"encoding/base64"
	"strings"
	"testing"
)

// "B" encoded words whose base64 mime.WordDecoder refuses decode as Python's
// email package decodes them, in a Subject and in a display name, with a
// defect. The wanted values are Python 3.11's:
// str(BytesParser(policy=policy.default).parsebytes(b"Subject: " + word + b"\n\n")["Subject"])
// and the display_name of the From address.
func TestEncodedWordPaddingAsPython(t *testing.T) {
	for _, c := range []struct {
		text, want string
		lenient    bool // read leniently, with a defect
	}{
		{"GyRCIVo9RU1XIVsbKEI=", "【重要】", false},
		{"GyRCIVo9RU1XIVsbKEI==", "【重要】", true},
		{"GyRCIVo9RU1XIVsbKEI", "【重要】", true},
		{"GyRCM1pFNyUrITwlSRsoQg", "楽天カード", true},
		{"GyRCM1pFNyUrITwlSRsoQg=", "楽天カード", true},
		{"GyRCM1pFNyUrITwlSRsoQg===", "楽天カード", true},
		{"GyRCJSshPCVJGyhC=", "カード", true},
		{"GyRCJSshPCVJGyhC====", "カード", true},
		// Padding that closes a group ends the text.
		{"GyRCIVo9RU1XIVsbKEI=GyRCJSshPCVJGyhC", "【重要】", true},
		{"GyRCJSshPCVJGyhC!", "カード", true},
		{"GyRCJSsh=PCVJGyhC", "カード", true},
		// Python leaves these as written: one character past whole groups,
		// and a text starting with "=" (its reader ends the word there).
		{"GyRCJSshPCVJGyhCG", "=?ISO-2022-JP?B?GyRCJSshPCVJGyhCG?=", false},
		{"=GyRCJSshPCVJGyhC", "=?ISO-2022-JP?B?=GyRCJSshPCVJGyhC?=", false},
	} {
		word := "=?ISO-2022-JP?B?" + c.text + "?="
		f := Extract([]byte("From: "+word+" <a@b.example>\nSubject: "+word+"\n\n"), Config{})
		if f.Subject != c.want || f.FromName != c.want || f.From != "a@b.example" {
			t.Errorf("%s: subject %q, from %q <%s>, want %q", word, f.Subject, f.FromName, f.From, c.want)
		}
		if got := hasDefect(f, "Subject: malformed base64 in an encoded word") && hasDefect(f, "From: malformed base64"); got != c.lenient {
			t.Errorf("%s: defects %q", word, f.Defects)
		}
	}
	// Folded words of one header are joined as ever; other words are untouched.
	f := Extract([]byte("Subject: Re: =?iso-2022-jp?b?GyRCIVo9RU1XIVsbKEI==?=\n =?ISO-2022-JP?B?GyRCM1pFNyUrITwlSRsoQg?= und =?utf-8?q?Gr=C3=BC=C3=9Fe?=\n\n"), Config{})
	if want := "Re: 【重要】楽天カード und Grüße"; f.Subject != want {
		t.Errorf("subject %q, want %q", f.Subject, want)
	}
}

// wordBase64 gives the bytes of Python 3.11's email._encoded_words.decode_b.
func TestWordBase64(t *testing.T) {
	for _, c := range []struct {
		in, want string
		ok       bool
	}{
		{"", "", true}, {"=", "", true}, {"==", "", true},
		{"QQ", "A", true}, {"QQ=", "A", true}, {"QUI", "AB", true}, {"QUJD", "ABC", true}, {"QUJDRA", "ABCD", true},
		{"QU=JD", "ABC", true}, {"Q=Q=", "A", true}, {"QQ==QUI=", "A", true}, {"Q!Q", "A", true}, {"=QQ", "A", true},
		{"Q", "", false}, {"QUJDR", "", false},
	} {
		got, ok := wordBase64(c.in)
		if ok != c.ok || ok && string(got) != c.want {
			t.Errorf("wordBase64(%q) = %q, %v; want %q, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

// What base64.StdEncoding decodes, wordBase64 decodes alike, and lenientWords
// leaves as it is.
func FuzzWordBase64(f *testing.F) {
	for _, s := range []string{"GyRCIVo9RU1XIVsbKEI==", "GyRCM1pFNyUrITwlSRsoQg", "QQ==QUI=", "Q!Q", "=QQ", "QUJDR", "Zm9v", "Zm9vYg=="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := wordBase64(s)
		if len(got) > len(s)*3/4+2 {
			t.Errorf("%d bytes of %q", len(got), s)
		}
		if std, err := base64.StdEncoding.DecodeString(s); err == nil && !strings.ContainsAny(s, "\r\n") {
			if !ok || string(got) != string(std) {
				t.Errorf("wordBase64(%q) = %q, %v; base64 says %q", s, got, ok, std)
			}
			word := "=?utf-8?B?" + s + "?="
			if out, repaired := lenientWords(word); repaired || out != word {
				t.Errorf("lenientWords(%q) = %q", word, out)
			}
		}
		if ok && !strings.Contains(s, "?") && !strings.HasPrefix(s, "=") {
			out, _ := lenientWords("=?utf-8?B?" + s + "?=")
			if d, err := wordDecoder.Decode(out); err != nil || d != string(got) {
				t.Errorf("%q made %q, which decodes to %q, %v; want %q", s, out, d, err, got)
			}
		}
	})
}
