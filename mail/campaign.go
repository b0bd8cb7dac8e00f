package mail

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxBodyText bounds the text a campaign key is made of.
const maxBodyText = 64 << 10

// maxSkeleton bounds the MIME outline in the campaign key.
const maxSkeleton = 256

// skel adds to the message's MIME outline: "[alternative t h]" and so on.
func (x *extractor) skel(s string) {
	if len(x.skeleton)+len(s) <= maxSkeleton {
		x.skeleton = append(x.skeleton, s...)
	}
}

func (x *extractor) addBodyText(s string) {
	if x.bodyLen >= maxBodyText {
		return
	}
	if len(s) > maxBodyText-x.bodyLen {
		s = s[:maxBodyText-x.bodyLen]
	}
	x.bodyLen += len(s)
	x.bodyText = append(x.bodyText, s)
}

func (x *extractor) addHTMLText(s string) {
	if len(s) > maxBodyText {
		s = s[:maxBodyText]
	}
	x.htmlText = append(x.htmlText, s)
}

// campaignKey hashes what the mails of one template share: the subject without
// reply prefixes, the MIME outline, and the body text (the plain text, else the
// visible HTML text) with what varies per mail masked — URLs, e-mail addresses,
// numbers and anything with a digit, hex and upper-case tokens, month names,
// given names and the recipient's local part.
func (x *extractor) campaignKey() string {
	texts := x.bodyText
	if len(texts) == 0 {
		texts = x.htmlText
	}
	subject := stripReplyPrefixes(x.f.Subject)
	size := len(subject) + len(x.skeleton) + 2
	for _, t := range texts {
		size += len(t)
	}
	n := normaliser{recipient: recipientTokens(x.f.To), out: slices.Grow(x.key[:0], size+size/8+16)}
	n.text(subject)
	n.out = append(n.out, 0)
	n.out = append(n.out, x.skeleton...)
	n.out = append(n.out, 0)
	for _, t := range texts {
		n.text(t)
	}
	sum := sha256.Sum256(n.out)
	x.key = n.out
	return hex.EncodeToString(sum[:8])
}

// stripReplyPrefixes removes "Re:", "Fwd:" and the like that spammers add to some
// mails of a run.
func stripReplyPrefixes(s string) string {
	for {
		t := strings.TrimSpace(s)
		i := strings.IndexByte(t, ':')
		if i < 0 || i > 4 {
			return t
		}
		switch strings.ToLower(t[:i]) {
		case "re", "fw", "fwd", "aw", "wg", "tr", "sv", "vs", "rv", "réf", "отв":
			s = t[i+1:]
		default:
			return t
		}
	}
}

// recipientTokens are what of the trap address a spammer puts into a mail: the
// address and its local part ("Dear Jsmith", "Hello info").
func recipientTokens(addr string) []string {
	addr = strings.ToLower(addr)
	local, _, _ := strings.Cut(addr, "@")
	if local == "" {
		return nil
	}
	return []string{local, addr}
}

// maskedWords are the words masked as what they are: month names (M) and
// given names (N). Greetings name the recipient ("Dear Mary"), and masking
// every common first name keeps a campaign's own signature from being masked
// only where it happens to match the recipient.
var maskedWords = map[string]byte{}

// maxMaskedWord is the length of the longest of maskedWords.
var maxMaskedWord int

func init() {
	for _, m := range []string{"january", "february", "march", "april", "may", "june", "july", "august",
		"september", "october", "november", "december"} {
		maskedWords[m], maskedWords[m[:3]] = 'M', 'M'
	}
	for _, n := range strings.Fields(`
		aaron adam adrian alan albert alex alexander alexandra alice alicia allan amanda amber amy andrea andrew
		angela anita ann anna anne annie anthony antonio arthur ashley barbara betty beverly bill billy bob bobby
		bonnie brandon brenda brian bruce bryan carl carlos carol caroline carolyn catherine charles charlie
		cheryl chris christian christina christine christopher cindy claire craig cynthia dan daniel danielle
		david deborah debra dennis diana diane donald donna doris dorothy douglas edward elaine elena elizabeth
		emily emma eric erica eugene evelyn frances frank gary george gerald gloria grace gregory hannah harold
		harry heather helen henry howard irina jack jacob jacqueline james jane janet janice jason jean jeff
		jeffrey jennifer jeremy jerry jesse jessica jim jimmy joan joe john johnny jonathan jose joseph joshua
		joyce juan judith judy julia julie justin karen katherine kathleen kathryn kathy katie keith kelly
		kenneth kevin kim kimberly larry laura lauren lawrence linda lisa lori louis louise luis margaret maria
		marie marilyn mario mark martha martin mary matthew megan melissa michael michelle mike nancy natalia
		natalie nathan nicholas nicole olga pamela patricia patrick paul peter philip phillip rachel ralph
		randy raymond rebecca richard rick robert robin roger ronald rose roy russell ruth ryan samantha samuel
		sandra sara sarah scott sean sergey sharon shirley stephanie stephen steve steven susan teresa terry
		thomas tiffany timothy tina todd tom tony tyler victoria vincent virginia walter wayne william`) {
		if maskedWords[n] == 0 {
			maskedWords[n] = 'N'
		}
	}
	for w := range maskedWords {
		maxMaskedWord = max(maxMaskedWord, len(w))
	}
}

// normaliser writes a text with its per-mail parts masked.
type normaliser struct {
	out       []byte
	recipient []string
}

func (n *normaliser) text(s string) {
	last := 0
	scanURLs(s, func(_, _ string, start, end int) bool {
		if start >= last {
			n.words(s[last:start])
			n.out = append(n.out, " U"...)
			last = end
		}
		return true
	})
	n.words(s[last:])
}

// asciiWord marks the ASCII bytes a word is made of: letters, digits and "_".
var asciiWord = func() (t [utf8.RuneSelf]bool) {
	for c := range utf8.RuneSelf {
		t[c] = isWordRune(rune(c))
	}
	return t
}()

// asciiWordOn marks the ASCII bytes a word runs on through: its own, and "@",
// "." and "-".
var asciiWordOn = func() (t [utf8.RuneSelf]bool) {
	t = asciiWord
	t['@'], t['.'], t['-'] = true, true, true
	return t
}()

// words writes each word of s, masked when it varies per mail.
func (n *normaliser) words(s string) {
	i := 0
	for i < len(s) {
		// Skip to a word.
		if c := s[i]; c < utf8.RuneSelf {
			if !asciiWord[c] {
				i++
				continue
			}
		} else if r, size := utf8.DecodeRuneInString(s[i:]); !isWordRune(r) {
			i += size
			continue
		}
		// A word runs on through letters, digits, "_", and the "@", "." and
		// "-" inside addresses, dates and compound words.
		j := i
		for j < len(s) {
			if c := s[j]; c < utf8.RuneSelf {
				if !asciiWordOn[c] {
					break
				}
				j++
				continue
			}
			r, size := utf8.DecodeRuneInString(s[j:])
			if !isWordRune(r) {
				break
			}
			j += size
		}
		a, b := i, j
		for a < b && wordTrim(s[a]) {
			a++
		}
		for b > a && wordTrim(s[b-1]) {
			b--
		}
		i = j
		if a == b {
			continue
		}
		n.out = append(n.out, ' ')
		n.mask(s[a:b])
	}
}

// wordTrim: what a word does not end in.
func wordTrim(c byte) bool { return c == '.' || c == '-' || c == '@' }

func isWordRune(r rune) bool {
	if r < utf8.RuneSelf {
		return r == '_' || r|0x20 >= 'a' && r|0x20 <= 'z' || r >= '0' && r <= '9'
	}
	return unicode.IsLetter(r) || unicode.IsDigit(r)
}

// mask writes w lower-cased, or the mask of what it is.
func (n *normaliser) mask(w string) {
	hexLike, upper, ascii := len(w) >= 8, len(w) >= 6, true
	for i := 0; i < len(w); i++ {
		c := w[i]
		if c == '@' {
			n.out = append(n.out, 'E')
			return
		}
		if c >= '0' && c <= '9' {
			if strings.IndexByte(w[i:], '@') >= 0 {
				n.out = append(n.out, 'E')
			} else {
				n.out = append(n.out, '#')
			}
			return
		}
		if !(c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			hexLike = false
		}
		if !(c >= 'A' && c <= 'Z') {
			upper = false
		}
		if c >= utf8.RuneSelf {
			ascii = false
		}
	}
	if hexLike || upper {
		n.out = append(n.out, '#')
		return
	}
	// The word is written lower-cased, then replaced by its mask if it has one.
	start := len(n.out)
	if ascii {
		for i := 0; i < len(w); i++ {
			c := w[i]
			if c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
			n.out = append(n.out, c)
		}
		if len(w) <= maxMaskedWord {
			if m := maskedWords[string(n.out[start:])]; m != 0 {
				n.out = append(n.out[:start], m)
				return
			}
		}
	} else {
		// As strings.ToLower: rune by rune (a word is valid UTF-8).
		for _, r := range w {
			n.out = utf8.AppendRune(n.out, unicode.ToLower(r))
		}
	}
	for _, r := range n.recipient {
		if strings.EqualFold(w, r) {
			n.out = append(n.out[:start], 'N')
			return
		}
	}
}
