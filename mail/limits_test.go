package mail

import (
	"archive/zip"
	"bytes"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

const plainHead = "From: a@example.com\nTo: b@example.com\nSubject: s\nDate: Tue, 1 Sep 2026 10:00:00 +0000\n"

func hasDefect(f Facts, prefix string) bool {
	return slices.ContainsFunc(f.Defects, func(d string) bool { return strings.HasPrefix(d, prefix) })
}

// zipOf packs entries (name, content) into a zip archive.
func zipOf(t testing.TB, entries ...[2]string) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		w, err := zw.Create(e[0])
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(e[1]))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func withAttachment(name string, data []byte) []byte {
	return []byte(plainHead + "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nhi\n--b\n" +
		"Content-Type: application/zip; name=\"" + name + "\"\nContent-Transfer-Encoding: base64\n\n" +
		base64.StdEncoding.EncodeToString(data) + "\n--b--\n")
}

// Hostile mails cost bounded time and memory, and every bound that cut
// something says so.
func TestLimits(t *testing.T) {
	small := Limits{MaxSize: 1 << 20, MaxDepth: 5, MaxParts: 20, MaxDecoded: 1 << 20, MaxHeaders: 50,
		MaxHeaderLen: 1024, MaxURLs: 10, MaxArchiveEntries: 3}
	var nested strings.Builder
	nested.WriteString(plainHead)
	for i := range 200 {
		fmt.Fprintf(&nested, "Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n", i, i)
	}
	nested.WriteString("Content-Type: text/plain\n\nhttp://deep.example.com/\n")
	var many strings.Builder
	many.WriteString(plainHead + "Content-Type: multipart/mixed; boundary=b\n\n")
	for i := range 1000 {
		fmt.Fprintf(&many, "--b\nContent-Type: text/plain\n\nhttp://p%d.example.com/\n", i)
	}
	var headers strings.Builder
	for i := range 5000 {
		fmt.Fprintf(&headers, "Received: from h%d ([81.2.69.%d]) by x.example; Tue, 1 Sep 2026 10:00:00 +0000\n", i, i%250)
	}
	headers.WriteString(plainHead + "\nbody\n")
	var urls strings.Builder
	urls.WriteString(plainHead + "\n")
	for i := range 5000 {
		fmt.Fprintf(&urls, "http://u%d.example.com/ ", i)
	}
	var entries [][2]string
	for i := range 50 {
		entries = append(entries, [2]string{fmt.Sprintf("f%d.txt", i), fmt.Sprintf("http://z%d.example.com/", i)})
	}
	bomb := zipOf(t, [2]string{"bomb.txt", strings.Repeat("A", 8<<20)})
	big := append([]byte(plainHead+"\n"), bytes.Repeat([]byte("http://big.example.com/ "), 50000)...)
	var partHeaders strings.Builder
	partHeaders.WriteString(plainHead + "Content-Type: multipart/mixed; boundary=b\n\n--b\n")
	for range 200000 {
		partHeaders.WriteString("X:y\n")
	}
	partHeaders.WriteString("\nbody\n--b--\n")

	for _, tc := range []struct {
		name   string
		raw    []byte
		defect string
		check  func(t *testing.T, f Facts)
	}{
		{"nesting", []byte(nested.String()), "MIME nesting deeper than 5", nil},
		{"parts", []byte(many.String()), "more than 20 MIME parts", nil},
		{"header fields", []byte(headers.String()), "more than 50 header fields", func(t *testing.T, f Facts) {
			if len(f.Hops) != 50 {
				t.Errorf("%d hops", len(f.Hops))
			}
		}},
		{"part header fields", []byte(partHeaders.String()), "more than 50 header fields", nil},
		{"header length", []byte("Subject: " + strings.Repeat("x", 100000) + "\n" + plainHead + "\nbody\n"), "header field Subject longer than 1024 bytes", func(t *testing.T, f Facts) {
			if len(f.Subject) > 1024 {
				t.Errorf("subject of %d bytes", len(f.Subject))
			}
		}},
		{"URLs", []byte(urls.String()), "more than 10 distinct URLs", func(t *testing.T, f Facts) {
			if len(f.URLs) != 10 {
				t.Errorf("%d URLs", len(f.URLs))
			}
		}},
		{"zip entries", withAttachment("a.zip", zipOf(t, entries...)), `attachment "a.zip": more than 3 zip entries`, func(t *testing.T, f Facts) {
			if len(f.Attachments) != 1 || len(f.Attachments[0].Entries) != 3 || len(f.URLs) != 3 {
				t.Errorf("attachments %+v, %d URLs", f.Attachments, len(f.URLs))
			}
		}},
		{"zip bomb", withAttachment("bomb.zip", bomb), "more than 1048576 decoded bytes", nil},
		{"size", big, fmt.Sprintf("message of %d bytes is over the 1048576-byte limit", len(big)), func(t *testing.T, f Facts) {
			if f.Subject != "s" || f.Size != int64(len(big)) || len(f.URLs) != 0 {
				t.Errorf("subject %q, size %d, %d URLs", f.Subject, f.Size, len(f.URLs))
			}
		}},
		{"Received nesting", []byte("Received: " + strings.Repeat("(;", 30000) + "\n" + plainHead + "\nx\n"), "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			f := Extract(tc.raw, Config{Limits: small})
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("took %v", d)
			}
			if tc.defect != "" && !hasDefect(f, tc.defect) {
				t.Errorf("defects %q, want %q", f.Defects, tc.defect)
			}
			if tc.check != nil {
				tc.check(t, f)
			}
			checkInvariants(t, f, small)
		})
	}
}

func TestOddMessages(t *testing.T) {
	for _, tc := range []struct {
		name, raw string
		defects   []string
	}{
		{"empty", "", []string{"empty message"}},
		{"headers only", plainHead, []string{"no Received header: no sender"}},
		{"mbox From_ line first", "From a@b Tue Sep  1 00:00:00 2026\n" + plainHead + "\nx\n", []string{"no Received header: no sender"}},
		{"no header", "\nbody only\n", []string{"no header fields", "no Received header: no sender", "missing From header", "missing Date header"}},
		{"garbage", "\x00\x01\x02 not a mail \xff\xfe", []string{"header line without a colon: the body is taken to start there",
			"no header fields", "no Received header: no sender", "missing From header", "missing Date header"}},
		{"a line without a colon ends the header", "From: a@b.c\nDate: Tue, 1 Sep 2026 10:00:00 +0000\nthis is the body\nSubject: not a header\n",
			[]string{"header line without a colon: the body is taken to start there", "no Received header: no sender"}},
		{"orphan continuation", " folded\n" + plainHead + "\nx\n", []string{"header continuation line without a field", "no Received header: no sender"}},
		{"unknown charset and encoding", plainHead + "Content-Type: text/plain; charset=x-klingon\nContent-Transfer-Encoding: x-uuencode\n\nhi\n",
			[]string{"no Received header: no sender", `unknown Content-Transfer-Encoding "x-uuencode" in the text/plain body: read as is`,
				`text/plain body: charset "x-klingon": htmlindex: invalid encoding name (read as UTF-8)`}},
		{"malformed Content-Type", plainHead + "Content-Type: text/html; charset=utf-8; foo\n\n<a href=\"http://x.example.com/\">x</a>\n",
			[]string{"no Received header: no sender", `malformed Content-Type "text/html; charset=utf-8; foo": read leniently`}},
		{"multipart with no parts", plainHead + "Content-Type: multipart/mixed; boundary=q\n\njust text http://np.example.com/\n",
			[]string{"no Received header: no sender", `multipart/mixed with boundary "q" has no parts`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := Extract([]byte(tc.raw), Config{})
			if !slices.Equal(f.Defects, tc.defects) {
				t.Errorf("defects\n got %q\nwant %q", f.Defects, tc.defects)
			}
			checkInvariants(t, f, DefaultLimits())
		})
	}
}

// Inputs made to hit a parser's worst case still cost time linear in their
// size (each runs in well under a second at the default limits).
func TestWorstCases(t *testing.T) {
	const n = 60000
	for _, tc := range []struct{ name, raw string }{
		{"unclosed brackets in Received", "Received: from " + strings.Repeat("[", n) + "\n" + plainHead + "\nx\n"},
		{"nested comments in Received", "Received: " + strings.Repeat("(", n) + strings.Repeat(")", n) + "\n" + plainHead + "\nx\n"},
		{"encoded-word starts", "Subject: " + strings.Repeat("=?", n) + "?=\n" + plainHead + "\nx\n"},
		{"encoded words", "Subject: " + strings.Repeat("=?koi8-r?B?8NLJ?= ", n/20) + "\n" + plainHead + "\nx\n"},
		{"closing parentheses after a URL", plainHead + "\nhttp://a.example/" + strings.Repeat(")", 4000) + strings.Repeat(" http://b.example/)", n/20) + "\n"},
		{"schemes without hosts", plainHead + "\n" + strings.Repeat("http://", n) + "\n"},
		{"slashes", plainHead + "\n" + strings.Repeat("/", 10*n) + "\n"},
		{"defangs", plainHead + "\nhxxp://a" + strings.Repeat("[.]", n) + "\n"},
		{"boundary prefixes", plainHead + "Content-Type: multipart/mixed; boundary=bb\n\n" + strings.Repeat("--bbx\n", n) + "--bb--\n"},
		{"dashes", plainHead + "Content-Type: multipart/mixed; boundary=x\n\n" + strings.Repeat("--\n", n) + "\n"},
		{"HTML attributes", plainHead + "Content-Type: text/html\n\n<a " + strings.Repeat(`href="http://h.example/" `, n/10) + ">x</a>\n"},
		{"long address", "From: " + strings.Repeat("a", n) + "@" + strings.Repeat("b.", n/2) + "c\n" + plainHead + "\nx\n"},
		{"long display name", "From: " + strings.Repeat("\"a\" ", n/4) + "<a@b.c>\n" + plainHead + "\nx\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			f := Extract([]byte(tc.raw), Config{})
			if d := time.Since(start); d > time.Second {
				t.Errorf("took %v", d)
			}
			checkInvariants(t, f, DefaultLimits())
		})
	}
}

// Defects quote what the mail says (boundaries, attachment and entry names) and
// go to PostgreSQL with every mail: each is cut to maxDefectLen, so a spammer's
// 60 KB names cost a few hundred bytes a defect.
func TestDefectsAreBounded(t *testing.T) {
	long := strings.Repeat("x", 60_000)
	mails := [][]byte{
		[]byte(plainHead + "Content-Type: multipart/mixed; boundary=\"" + long + "\"\n\n--" + long + "\nContent-Type: text/plain\n\nhi\n"),
		withAttachment(long+".zip", []byte("PK\x03\x04 not a zip")),
	}
	for i, want := range []string{"missing closing MIME boundary \"xxx", "attachment \"xxx"} {
		f := Extract(mails[i], Config{})
		for _, d := range f.Defects {
			if len(d) > maxDefectLen {
				t.Errorf("a defect of %d bytes, want at most %d: %.80s…", len(d), maxDefectLen, d)
			}
		}
		if !hasDefect(f, want) {
			t.Errorf("no defect %s…: %.300q", want, f.Defects)
		}
	}
}
