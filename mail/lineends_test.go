package mail

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// withLineEnds ends the lines of an LF text in ends, taken in turn. A CR is
// never followed by an empty line's LF: that would make one CRLF of two line
// ends.
func withLineEnds(lf []byte, ends ...string) []byte {
	lines := bytes.Split(lf, []byte("\n"))
	var out []byte
	prev := ""
	for i, line := range lines {
		out = append(out, line...)
		if i == len(lines)-1 {
			break // the text's last line, ended or not
		}
		end := ends[i%len(ends)]
		if prev == "\r" && len(line) == 0 && strings.HasPrefix(end, "\n") {
			end = "\r"
		}
		out = append(out, end...)
		prev = end
	}
	return out
}

// toLF reads CRLF and bare CR alike as LF.
func toLF(raw []byte) []byte {
	return bytes.ReplaceAll(bytes.ReplaceAll(raw, []byte("\r\n"), []byte("\n")), []byte("\r"), []byte("\n"))
}

// factsJSON is f as JSON without what depends on the raw bytes themselves.
func factsJSON(t *testing.T, f Facts, attachmentBytes bool) string {
	t.Helper()
	f.SHA256, f.Digest, f.Size = "", "", 0
	f.Attachments = append([]Attachment(nil), f.Attachments...)
	for i := range f.Attachments {
		if !attachmentBytes {
			f.Attachments[i].Size, f.Attachments[i].SHA256 = 0, ""
		}
	}
	b, err := json.MarshalIndent(f, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Mail is read whatever its line ends, as Python's email package reads it
// (email.feedparser splits lines at CRLF, CR and LF alike): every fixture with
// its lines ended in bare CRs, as old Mac clients saved mail, or in a mix of
// CR, LF and CRLF, gives the facts of its LF form but for the hashes of its
// raw bytes, which stay those of the bytes as received.
func TestLineEndsReadAsLF(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.eml"))
	if err != nil || len(files) < 10 {
		t.Fatalf("fixtures: %v, %v", files, err)
	}
	for _, p := range files {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		lf := toLF(raw)
		want := Extract(lf, fixtureConfig)
		for _, v := range []struct {
			name string
			ends []string
			// exact: the decoded bytes of every part are the LF form's. A part
			// sent as it is (7bit, 8bit) keeps its CRLFs, as in a CRLF mail.
			exact bool
		}{
			{"cr", []string{"\r"}, true},
			{"cr+lf", []string{"\r", "\n"}, true},
			{"crlf+cr+lf", []string{"\r\n", "\r", "\n"}, false},
			{"crlf", []string{"\r\n"}, false},
		} {
			t.Run(filepath.Base(p)+"/"+v.name, func(t *testing.T) {
				mixed := withLineEnds(lf, v.ends...)
				got := Extract(mixed, fixtureConfig)
				sum := sha256.Sum256(mixed)
				if got.SHA256 != hex.EncodeToString(sum[:]) || got.Digest != Digest(mixed) || got.Size != int64(len(mixed)) {
					t.Errorf("sha256 %s, digest %s, size %d: not those of the raw bytes", got.SHA256, got.Digest, got.Size)
				}
				if g, w := factsJSON(t, got, v.exact), factsJSON(t, want, v.exact); g != w {
					t.Errorf("facts differ from the LF form's\n got %s\nwant %s", g, w)
				}
			})
		}
	}
}

// A bare-CR mail over the size limit still has its headers read.
func TestBareCRMailOverLimit(t *testing.T) {
	raw := []byte(strings.ReplaceAll("From: Mac User <mac@example.org>\nSubject: big\n\n"+strings.Repeat("x", 300)+"\n", "\n", "\r"))
	f := Extract(raw, Config{Limits: Limits{MaxSize: 100}})
	if f.Subject != "big" || f.From != "mac@example.org" || !hasDefect(f, "message of") {
		t.Errorf("subject %q, from %q, defects %q", f.Subject, f.From, f.Defects)
	}
}

// An attached message whose lines end in bare CRs is read as an LF one, also
// when its encoding hid them from the reading of the mail around it.
func TestBareCRAttachedMessage(t *testing.T) {
	inner := strings.ReplaceAll("From: Inner <in@inner.example>\nContent-Type: text/plain\n\nhttps://inner.example.com/cr\n", "\n", "\r")
	raw := "From: a@example.org\nSubject: fwd\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: message/rfc822\n" +
		"Content-Transfer-Encoding: base64\n\n" + base64.StdEncoding.EncodeToString([]byte(inner)) + "\n--b--\n"
	f := Extract([]byte(raw), Config{})
	if got := urlsOf(f); len(got) != 1 || got[0] != "attachment https://inner.example.com/cr" {
		t.Errorf("urls %q, defects %q", got, f.Defects)
	}
}
