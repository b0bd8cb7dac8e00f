package spam

import (
	"encoding/hex"
	"fmt"
	"strings"
	"unicode/utf8"
)

// The lab cannot use golang.org/x/text, so the charsets its spam is written in are
// small tables: the single-byte Cyrillic charsets in full, and GB2312 and Shift_JIS
// for the characters the lab's copy uses (generated with Python's codecs).

// charsetNames are the MIME names the lab writes, in the case it writes them.
var charsetNames = map[string][]string{
	"us-ascii":     {"us-ascii", "US-ASCII"},
	"utf-8":        {"utf-8", "UTF-8"},
	"iso-8859-1":   {"iso-8859-1", "ISO-8859-1"},
	"koi8-r":       {"koi8-r", "KOI8-R"},
	"windows-1251": {"windows-1251", "Windows-1251"},
	"gb2312":       {"gb2312", "GB2312"},
	"shift_jis":    {"shift_jis", "Shift_JIS"},
}

// encodeCharset converts s into charset, failing on a character the charset (or
// the lab's table of it) lacks.
func encodeCharset(charset, s string) ([]byte, error) {
	cs := strings.ToLower(charset)
	switch cs {
	case "utf-8":
		return []byte(s), nil
	case "us-ascii", "iso-8859-1":
		limit := rune(0x7F)
		if cs == "iso-8859-1" {
			limit = 0xFF
		}
		out := make([]byte, 0, len(s))
		for _, r := range s {
			if r > limit {
				return nil, fmt.Errorf("%q is not in %s", r, charset)
			}
			out = append(out, byte(r))
		}
		return out, nil
	}
	t, ok := tables[cs]
	if !ok {
		return nil, fmt.Errorf("unknown charset %s", charset)
	}
	out := make([]byte, 0, 2*len(s))
	for _, r := range s {
		if r < 0x80 {
			out = append(out, byte(r))
			continue
		}
		b, ok := t.enc[r]
		if !ok {
			return nil, fmt.Errorf("%q is not in %s", r, charset)
		}
		out = append(out, b...)
	}
	return out, nil
}

// mustEncode is encodeCharset for copy that the tests prove encodable.
func mustEncode(charset, s string) []byte {
	b, err := encodeCharset(charset, s)
	if err != nil {
		panic(err)
	}
	return b
}

// decodeCharset converts bytes in charset back to UTF-8; bytes the tables do not
// know become U+FFFD. The tests use it as their CharsetReader.
func decodeCharset(charset string, b []byte) (string, error) {
	cs := strings.ToLower(charset)
	switch cs {
	case "utf-8", "us-ascii":
		return string(b), nil
	case "iso-8859-1":
		var sb strings.Builder
		for _, c := range b {
			sb.WriteRune(rune(c))
		}
		return sb.String(), nil
	}
	t, ok := tables[cs]
	if !ok {
		return "", fmt.Errorf("unknown charset %s", charset)
	}
	var sb strings.Builder
	for i := 0; i < len(b); {
		c := b[i]
		switch {
		case c < 0x80:
			sb.WriteByte(c)
			i++
		case t.single != nil:
			sb.WriteRune(t.single[c-0x80])
			i++
		case i+1 < len(b) && t.lead(c):
			r, ok := t.dec[string(b[i:i+2])]
			if !ok {
				r = utf8.RuneError
			}
			sb.WriteRune(r)
			i += 2
		default:
			sb.WriteRune(utf8.RuneError)
			i++
		}
	}
	return sb.String(), nil
}

type charsetTable struct {
	single []rune // single-byte charsets: the characters of 0x80-0xFF
	enc    map[rune][]byte
	dec    map[string]rune
	lead   func(byte) bool // double-byte charsets: starts a two-byte character
}

var tables = map[string]*charsetTable{
	"koi8-r":       singleByteTable(koi8rHigh),
	"windows-1251": singleByteTable(cp1251High),
	"gb2312":       gb2312Chars,
	"shift_jis":    sjisChars,
}

func init() {
	gb2312Chars.lead = func(c byte) bool { return c >= 0xA1 && c <= 0xF7 }
	sjisChars.lead = func(c byte) bool { return c >= 0x81 && c <= 0x9F || c >= 0xE0 && c <= 0xEF }
}

func singleByteTable(high string) *charsetTable {
	t := &charsetTable{single: []rune(high), enc: map[rune][]byte{}}
	if len(t.single) != 128 {
		panic("single-byte table needs 128 characters")
	}
	for i, r := range t.single {
		if r != utf8.RuneError {
			t.enc[r] = []byte{byte(0x80 + i)}
		}
	}
	return t
}

func doubleByteTable(chars, hexBytes string) *charsetTable {
	t := &charsetTable{enc: map[rune][]byte{}, dec: map[string]rune{}}
	raw, err := hex.DecodeString(hexBytes)
	if err != nil || len(raw) != 2*utf8.RuneCountInString(chars) {
		panic("double-byte table: characters and bytes disagree")
	}
	i := 0
	for _, r := range chars {
		t.enc[r] = raw[i : i+2]
		t.dec[string(raw[i:i+2])] = r
		i += 2
	}
	return t
}

// koi8rHigh lists the characters of bytes 0x80-0xFF.
const koi8rHigh = "─│┌┐└┘├┤┬┴┼▀▄█▌▐░▒▓⌠■∙√≈≤≥\u00a0⌡°²·÷═║╒ё╓╔╕╖╗╘╙╚╛╜╝╞╟╠╡Ё╢╣╤╥╦╧╨╩╪╫╬©юабцдефгхийклмнопярстужвьызшэщчъЮАБЦДЕФГХИЙКЛМНОПЯРСТУЖВЬЫЗШЭЩЧЪ"

// cp1251High lists the characters of bytes 0x80-0xFF.
const cp1251High = "ЂЃ‚ѓ„…†‡€‰Љ‹ЊЌЋЏђ‘’“”•–—�™љ›њќћџ\u00a0ЎўЈ¤Ґ¦§Ё©Є«¬\u00ad®Ї°±Ііґµ¶·ё№є»јЅѕїАБВГДЕЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯабвгдежзийклмнопрстуфхцчшщъыьэюя"

var gb2312Chars = doubleByteTable(
	"、。【】あいうおかがきくごさざしすせただ"+
		"っつてでとなにのはまもらりれをアイウカク"+
		"グサスセタトポマリロン一下不专业人付代以"+
		"优位作停先公内出击利务升发口可司各合名后"+
		"咨地好客常年广座开快急您情惠排推提服本来"+
		"查欢款止正点王理用电看知票税站管系经络网"+
		"联行要规访诚询详请谢迎速邀部重问验！，２"+
		"４："+
		"",
	"a1a2a1a3a1bea1bfa4a2a4a4a4a6a4aaa4aba4aca4ada4afa4b4a4b5a4b6a4b7a4b9a4bba4bfa4c0"+
		"a4c3a4c4a4c6a4c7a4c8a4caa4cba4cea4cfa4dea4e2a4e9a4eaa4eca4f2a5a2a5a4a5a6a5aba5af"+
		"a5b0a5b5a5b9a5bba5bfa5c8a5dda5dea5eaa5eda5f3d2bbcfc2b2bbd7a8d2b5c8cbb8b6b4fad2d4"+
		"d3c5cebbd7f7cda3cfc8b9abc4dab3f6bbf7c0fbcef1c9fdb7a2bfdabfc9cbbeb8f7bacfc3fbbaf3"+
		"d7c9b5d8bac3bfcdb3a3c4eab9e3d7f9bfaabfecbcb1c4fac7e9bbddc5c5cdc6cce1b7feb1bec0b4"+
		"b2e9bbb6bfeed6b9d5fdb5e3cdf5c0edd3c3b5e7bfb4d6aac6b1cbb0d5beb9dccfb5beadc2e7cdf8"+
		"c1aad0d0d2aab9e6b7c3b3cfd1afcfeac7ebd0bbd3adcbd9d1fbb2bfd6d8cecad1e9a3a1a3aca3b2"+
		"a3b4a3ba"+
		"")

var sjisChars = doubleByteTable(
	"、。【】あいうおかがきくごさざしすせただ"+
		"っつてでとなにのはまもらりれをアイウカク"+
		"グサスセタトポマリロンー一下不人付代以位"+
		"作停先公内出利升口可司各合名后咨地場好客"+
		"審常年广座快急情惠排推提時服本来検様款止"+
		"正点王理用看知確票税站管系緊网行要認迎速"+
		"邀部重間願！，２４："+
		"",
	"814181428179817a82a082a282a482a882a982aa82ab82ad82b282b382b482b582b782b982bd82be"+
		"82c182c282c482c582c682c882c982cc82cd82dc82e082e782e882ea82f0834183438345834a834e"+
		"834f83548358835a835e8367837c837d838a838d8393815b88ea89ba9573906c957491e388c888ca"+
		"8dec92e290e68cf693e08f6f97988fa18cfb89c28e698a658d8796bc8d4099fc926e8fea8d448b71"+
		"90528fed944e9bf68dc089f58b7d8fee9ca89472908492f18e9e959e967b97888c9f976c8abc8e7e"+
		"90b3935f89a4979d97708ac5926d8a6d955b90c5e28b8ac78c6e8bd9e3a48d73977694468c7d91ac"+
		"e7b195948f648ad48ae881498143825182538146"+
		"")
