package mail

import (
	"crypto/sha256"
	"encoding/hex"
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
	n := normaliser{recipient: recipientTokens(x.f.To)}
	n.text(stripReplyPrefixes(x.f.Subject))
	n.sb.WriteString("\x00")
	n.sb.Write(x.skeleton)
	n.sb.WriteString("\x00")
	texts := x.bodyText
	if len(texts) == 0 {
		texts = x.htmlText
	}
	for _, t := range texts {
		n.text(t)
	}
	sum := sha256.Sum256([]byte(n.sb.String()))
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

var monthNames = map[string]bool{}

// givenNames are common first names: greetings name the recipient ("Dear
// Mary"), and masking every such name keeps a campaign's own signature from
// being masked only where it happens to match the recipient.
var givenNames = map[string]bool{}

func init() {
	for _, m := range []string{"january", "february", "march", "april", "may", "june", "july", "august",
		"september", "october", "november", "december"} {
		monthNames[m], monthNames[m[:3]] = true, true
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
		givenNames[n] = true
	}
}

// normaliser writes a text with its per-mail parts masked.
type normaliser struct {
	sb        strings.Builder
	recipient []string
	buf       []byte
}

func (n *normaliser) text(s string) {
	last := 0
	scanURLs(s, func(_ string, start, end int) bool {
		if start >= last {
			n.words(s[last:start])
			n.sb.WriteString(" U")
			last = end
		}
		return true
	})
	n.words(s[last:])
}

// words writes each word of s, masked when it varies per mail.
func (n *normaliser) words(s string) {
	i := 0
	for i < len(s) {
		// Skip to a word.
		r, size := rune(s[i]), 1
		if r >= utf8.RuneSelf {
			r, size = utf8.DecodeRuneInString(s[i:])
		}
		if !isWordRune(r) {
			i += size
			continue
		}
		// A word runs on through letters, digits, "_", and the "@", "." and
		// "-" inside addresses, dates and compound words.
		j := i
		for j < len(s) {
			r, size := rune(s[j]), 1
			if r >= utf8.RuneSelf {
				r, size = utf8.DecodeRuneInString(s[j:])
			}
			if !isWordRune(r) && r != '@' && r != '.' && r != '-' {
				break
			}
			j += size
		}
		w := strings.Trim(s[i:j], ".-@")
		i = j
		if w == "" {
			continue
		}
		n.sb.WriteByte(' ')
		n.mask(w)
	}
}

func isWordRune(r rune) bool {
	if r < utf8.RuneSelf {
		return r == '_' || r|0x20 >= 'a' && r|0x20 <= 'z' || r >= '0' && r <= '9'
	}
	return unicode.IsLetter(r) || unicode.IsDigit(r)
}

// mask writes w lower-cased, or the mask of what it is.
func (n *normaliser) mask(w string) {
	if strings.IndexByte(w, '@') >= 0 {
		n.sb.WriteByte('E')
		return
	}
	hexLike, upper, ascii := len(w) >= 8, len(w) >= 6, true
	for i := 0; i < len(w); i++ {
		c := w[i]
		if c >= '0' && c <= '9' {
			n.sb.WriteByte('#')
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
		n.sb.WriteByte('#')
		return
	}
	var lw string
	if ascii {
		n.buf = append(n.buf[:0], w...)
		for i, c := range n.buf {
			if c >= 'A' && c <= 'Z' {
				n.buf[i] = c + 'a' - 'A'
			}
		}
		if monthNames[string(n.buf)] {
			n.sb.WriteByte('M')
			return
		}
		if givenNames[string(n.buf)] {
			n.sb.WriteByte('N')
			return
		}
	} else {
		lw = strings.ToLower(w)
	}
	for _, r := range n.recipient {
		if strings.EqualFold(w, r) {
			n.sb.WriteByte('N')
			return
		}
	}
	if ascii {
		n.sb.Write(n.buf)
	} else {
		n.sb.WriteString(lw)
	}
}
