package mail

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime"
	"strings"
	"sync"

	"github.com/emersion/go-message/charset"
	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/htmlindex"
	"golang.org/x/text/encoding/ianaindex"
	"golang.org/x/text/transform"
)

// wordDecoder decodes RFC 2047 encoded-words in every charset go-message knows.
// A word is decoded at once into a bytes.Reader: mime copies the reader it gets
// with io.Copy, which would take a 32 KiB buffer for each word otherwise.
var wordDecoder = &mime.WordDecoder{CharsetReader: func(cs string, r io.Reader) (io.Reader, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	b, err := convertCharset(data, cs)
	if err != nil {
		return nil, err
	}
	return bytes.NewReader(b), nil
}}

// lenientWords rewrites the base64 of each "B" encoded word of v that
// mime.WordDecoder refuses but Python's email package reads (missing or excess
// "=" padding, characters outside the alphabet; common in Japanese spam) to its
// canonical form, so that the word decodes as Python decodes it. Words are
// found as mime.WordDecoder.DecodeHeader finds them. repaired is false, and v
// returned itself, when no word needed it.
func lenientWords(v string) (out string, repaired bool) {
	var sb strings.Builder
	done := 0 // v[:done] is in sb
	for rest := 0; ; {
		start := strings.Index(v[rest:], "=?")
		if start < 0 {
			break
		}
		cur := rest + start + len("=?")
		i := strings.IndexByte(v[cur:], '?')
		if i < 0 {
			break
		}
		cur += i + 1
		if len(v) < cur+len("Q??=") || v[cur+1] != '?' {
			break
		}
		enc := v[cur]
		cur += 2
		j := strings.Index(v[cur:], "?=")
		if j < 0 {
			break
		}
		text := v[cur : cur+j]
		rest = cur + j + len("?=")
		// Python's reader ends a word at its first "?=", so a text that starts
		// with "=" is no word to it.
		if enc != 'B' && enc != 'b' || canonicalBase64(text) || strings.HasPrefix(text, "=") {
			continue
		}
		data, ok := wordBase64(text)
		if !ok {
			continue
		}
		sb.WriteString(v[done:cur])
		sb.WriteString(base64.StdEncoding.EncodeToString(data))
		done, repaired = cur+j, true
	}
	if !repaired {
		return v, false
	}
	sb.WriteString(v[done:])
	return sb.String(), true
}

// canonicalBase64 reports base64 that base64.StdEncoding decodes: whole groups
// of the alphabet, "=" only as the padding of the last.
func canonicalBase64(s string) bool {
	n := len(s)
	if n%4 != 0 {
		return false
	}
	for i := 0; i < n; i++ {
		c := s[i]
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '+', c == '/':
		case c == '=' && (i == n-1 || i == n-2 && s[n-1] == '='):
		default:
			return false
		}
	}
	return true
}

// wordBase64 decodes the base64 of a "B" encoded word as Python's email
// package does (email._encoded_words.decode_b, which reads the text with
// binascii.a2b_base64 after padding it): characters outside the alphabet are
// skipped, "=" where no group is open is ignored, missing padding is supplied,
// and the padding that closes a group ends the text. ok is false only for a
// text with one character past its whole groups, which no base64 encoder
// writes and Python does not decode either.
func wordBase64(s string) (out []byte, ok bool) {
	out = make([]byte, 0, len(s)*3/4+2)
	var quad, pads int
	var left byte
	// The two "=" after the text are the padding Python supplies when the
	// text alone does not decode.
	for i := 0; i < len(s)+2; i++ {
		c := byte('=')
		if i < len(s) {
			c = s[i]
		}
		if c == '=' {
			if quad >= 2 {
				pads++
				if quad+pads >= 4 {
					return out, true
				}
			}
			continue
		}
		v := base64Value(c)
		if v > 63 {
			continue
		}
		pads = 0
		switch quad {
		case 0:
			left = v
		case 1:
			out = append(out, left<<2|v>>4)
			left = v & 0x0f
		case 2:
			out = append(out, left<<4|v>>2)
			left = v & 0x03
		case 3:
			out = append(out, left<<6|v)
		}
		quad = (quad + 1) % 4
	}
	return out, quad == 0
}

// base64Value is the value of a base64 character, or 0xff.
func base64Value(c byte) byte {
	switch {
	case c >= 'A' && c <= 'Z':
		return c - 'A'
	case c >= 'a' && c <= 'z':
		return c - 'a' + 26
	case c >= '0' && c <= '9':
		return c - '0' + 52
	case c == '+':
		return 62
	case c == '/':
		return 63
	}
	return 0xff
}

// decodeCharset converts data in charset cs to UTF-8 with go-message's charset
// tables; data said to be UTF-8 or ASCII is taken as it is.
func decodeCharset(data []byte, cs string) ([]byte, error) {
	if isUTF8Label(cs) {
		return data, nil
	}
	return convertCharset(data, cs)
}

// convertCharset converts data as go-message's charset reader does: through the
// charset's decoder directly when go-message resolves the name to it (a reader
// would cost two 4 KiB buffers a call), else through go-message itself.
func convertCharset(data []byte, cs string) ([]byte, error) {
	if enc := charsetEncoding(cs); enc != nil {
		if out, _, err := transform.Bytes(enc.NewDecoder(), data); err == nil {
			return out, nil
		}
	}
	r, err := charset.Reader(cs, bytes.NewReader(data))
	if err != nil {
		return data, err
	}
	return io.ReadAll(r)
}

// charsets caches the encoding of each charset name seen (false: go-message's
// own reader decides), up to maxCharsetNames names: hostile mail can name any,
// and names past those go to go-message's reader.
var charsets sync.Map

const maxCharsetNames = 512

var charsetNames struct {
	sync.Mutex
	n int
}

// charsetEncoding is the encoding go-message uses for cs, or nil when it is
// unknown or go-message reads it otherwise.
func charsetEncoding(cs string) encoding.Encoding {
	if e, ok := charsets.Load(cs); ok {
		enc, _ := e.(encoding.Encoding)
		return enc
	}
	charsetNames.Lock()
	full := charsetNames.n >= maxCharsetNames
	if !full {
		charsetNames.n++
	}
	charsetNames.Unlock()
	if full {
		return nil // go-message's reader, as for any name it does not know
	}
	enc := resolveCharset(cs)
	if enc != nil {
		charsets.Store(cs, enc)
	} else {
		charsets.Store(cs, false)
	}
	return enc
}

// resolveCharset looks cs up as go-message does, and keeps the result only
// when it decodes a probe of every byte value exactly as go-message's reader
// does (go-message overrides a few names).
func resolveCharset(cs string) encoding.Encoding {
	name := strings.ToLower(cs)
	enc, err := ianaindex.MIME.Encoding(name)
	if enc == nil {
		enc, err = ianaindex.MIME.Encoding("cs" + name)
	}
	if enc == nil {
		enc, err = htmlindex.Get(name)
	}
	if err != nil || enc == nil {
		return nil
	}
	probe := make([]byte, 0, 3*256)
	for i := range 256 {
		probe = append(probe, byte(i), 'a', byte(255-i))
	}
	want, err := charset.Reader(cs, bytes.NewReader(probe))
	if err != nil {
		return nil
	}
	w, err := io.ReadAll(want)
	if err != nil {
		return nil
	}
	got, _, err := transform.Bytes(enc.NewDecoder(), probe)
	if err != nil || !bytes.Equal(got, w) {
		return nil
	}
	return enc
}
