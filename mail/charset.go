package mail

import (
	"bytes"
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
