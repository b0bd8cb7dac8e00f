package mail

import (
	"net/mail"
	"strings"
	"time"
)

// parseDate reads an RFC 5322 date as mail software writes it ("Tue,  1 Sep 2026
// 00:21:32 +0000 (UTC)", "1 Sep 2026 00:21:32 GMT", two-digit years, obsolete
// zone names). The common forms take a fast path; anything else goes to
// net/mail. Out-of-range fields (hour 26, minute 64, zone +8328) do not parse.
func parseDate(s string) (time.Time, bool) {
	if t, ok := fastDate(s); ok {
		return t, true
	}
	if t, err := mail.ParseDate(s); err == nil {
		return t, true
	}
	return time.Time{}, false
}

// zoneNames are RFC 5322's obsolete zones; an unknown alphabetic zone means
// an unknown offset (-0000), read as UTC.
var zoneNames = map[string]int{"ut": 0, "utc": 0, "gmt": 0, "z": 0, "est": -5, "edt": -4, "cst": -6, "cdt": -5,
	"mst": -7, "mdt": -6, "pst": -8, "pdt": -7}

func fastDate(s string) (time.Time, bool) {
	if i := strings.IndexByte(s, '('); i >= 0 { // a trailing comment: "(UTC)"
		s = s[:i]
	}
	var buf [6]string
	f, ok := dateFields(s, buf[:0])
	if !ok {
		return time.Time{}, false
	}
	if len(f) > 0 && !isDigit(f[0][0]) { // "Tue," or "Tue"
		f = f[1:]
	}
	if len(f) == 4 && strings.IndexByte(f[3], ':') >= 0 { // no zone
		f = append(f, "-0000")
	}
	if len(f) != 5 {
		return time.Time{}, false
	}
	day, ok := atoi(f[0], 1, 2)
	if !ok {
		return time.Time{}, false
	}
	if len(f[1]) < 3 {
		return time.Time{}, false
	}
	mon := monthOf(f[1][:3])
	if mon == 0 {
		return time.Time{}, false
	}
	year, ok := atoi(f[2], 2, 4)
	if !ok || len(f[2]) == 3 {
		return time.Time{}, false
	}
	if len(f[2]) == 2 { // RFC 5322 4.3: 00-49 are 2000-2049
		if year < 50 {
			year += 2000
		} else {
			year += 1900
		}
	}
	// hh:mm or hh:mm:ss
	hms := f[3]
	c1 := strings.IndexByte(hms, ':')
	if c1 < 0 {
		return time.Time{}, false
	}
	hh, mm, ss := hms[:c1], hms[c1+1:], ""
	hasSec := false
	if c2 := strings.IndexByte(mm, ':'); c2 >= 0 {
		mm, ss, hasSec = mm[:c2], mm[c2+1:], true
		if strings.IndexByte(ss, ':') >= 0 {
			return time.Time{}, false
		}
	}
	hour, ok1 := atoi(hh, 1, 2)
	minute, ok2 := atoi(mm, 2, 2)
	sec, ok3 := 0, true
	if hasSec {
		sec, ok3 = atoi(ss, 2, 2)
	}
	if !ok1 || !ok2 || !ok3 || hour > 23 || minute > 59 || sec > 60 {
		return time.Time{}, false
	}
	if day > daysIn(mon, year) {
		return time.Time{}, false
	}
	offset, ok := zoneOffset(f[4])
	if !ok {
		return time.Time{}, false
	}
	if sec == 60 {
		sec = 59
	}
	return time.Date(year, mon, day, hour, minute, sec, 0, zone(offset)), true
}

// dateFields splits s at white space as strings.Fields does, into at most
// cap(f) fields; ok is false when there are more.
func dateFields(s string, f []string) ([]string, bool) {
	if !isASCII(s) {
		all := strings.Fields(s)
		return all, len(all) <= cap(f)
	}
	for i := 0; i < len(s); {
		for i < len(s) && asciiSpace(s[i]) {
			i++
		}
		if i == len(s) {
			break
		}
		j := i
		for j < len(s) && !asciiSpace(s[j]) {
			j++
		}
		if len(f) == cap(f) {
			return f, false
		}
		f = append(f, s[i:j])
		i = j
	}
	return f, true
}

func asciiSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

// monthOf reads a three-letter month name in any case; 0 if it is none.
func monthOf(m string) time.Month {
	var b [3]byte
	for i := range b {
		b[i] = m[i] | 0x20 // a month name is letters: other bytes match none either way
	}
	switch string(b[:]) {
	case "jan":
		return time.January
	case "feb":
		return time.February
	case "mar":
		return time.March
	case "apr":
		return time.April
	case "may":
		return time.May
	case "jun":
		return time.June
	case "jul":
		return time.July
	case "aug":
		return time.August
	case "sep":
		return time.September
	case "oct":
		return time.October
	case "nov":
		return time.November
	case "dec":
		return time.December
	}
	return 0
}

// zones are the fixed zones of whole quarter hours from -14:00 to +14:00,
// made once: mail carries a few dates each.
var zones = func() []*time.Location {
	z := make([]*time.Location, 113)
	for i := range z {
		z[i] = time.FixedZone("", (i-56)*900)
	}
	return z
}()

func zone(offset int) *time.Location {
	if offset%900 == 0 && offset >= -56*900 && offset <= 56*900 {
		return zones[offset/900+56]
	}
	return time.FixedZone("", offset)
}

// zoneOffset reads "+hhmm", "-hhmm" or a zone name, in seconds east of UTC.
func zoneOffset(z string) (int, bool) {
	if len(z) == 5 && (z[0] == '+' || z[0] == '-') {
		hh, ok1 := atoi(z[1:3], 2, 2)
		mm, ok2 := atoi(z[3:5], 2, 2)
		if !ok1 || !ok2 || hh > 23 || mm > 59 {
			return 0, false
		}
		off := hh*3600 + mm*60
		if z[0] == '-' {
			off = -off
		}
		return off, true
	}
	for i := 0; i < len(z); i++ {
		if c := z[i] | 0x20; c < 'a' || c > 'z' {
			return 0, false
		}
	}
	if len(z) == 0 || len(z) > 5 {
		return 0, false
	}
	var b [5]byte
	for i := 0; i < len(z); i++ {
		b[i] = z[i] | 0x20
	}
	return zoneNames[string(b[:len(z)])] * 3600, true
}

var monthDays = [13]int{0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}

func daysIn(m time.Month, year int) int {
	if m == time.February && year%4 == 0 && (year%100 != 0 || year%400 == 0) {
		return 29
	}
	return monthDays[m]
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// atoi reads a decimal of minLen to maxLen digits.
func atoi(s string, minLen, maxLen int) (int, bool) {
	if len(s) < minLen || len(s) > maxLen {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, true
}
