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

var months = map[string]time.Month{"jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6,
	"jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12}

// zoneNames are RFC 5322's obsolete zones; an unknown alphabetic zone means
// an unknown offset (-0000), read as UTC.
var zoneNames = map[string]int{"ut": 0, "utc": 0, "gmt": 0, "z": 0, "est": -5, "edt": -4, "cst": -6, "cdt": -5,
	"mst": -7, "mdt": -6, "pst": -8, "pdt": -7}

func fastDate(s string) (time.Time, bool) {
	if i := strings.IndexByte(s, '('); i >= 0 { // a trailing comment: "(UTC)"
		s = s[:i]
	}
	f := strings.Fields(s)
	if len(f) > 0 && !isDigit(f[0][0]) { // "Tue," or "Tue"
		f = f[1:]
	}
	if len(f) == 4 && strings.Count(f[3], ":") >= 1 { // no zone
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
	mon, ok := months[strings.ToLower(f[1][:3])]
	if !ok {
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
	hms := strings.Split(f[3], ":")
	if len(hms) < 2 || len(hms) > 3 {
		return time.Time{}, false
	}
	hour, ok1 := atoi(hms[0], 1, 2)
	minute, ok2 := atoi(hms[1], 2, 2)
	sec, ok3 := 0, true
	if len(hms) == 3 {
		sec, ok3 = atoi(hms[2], 2, 2)
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
	return zoneNames[strings.ToLower(z)] * 3600, len(z) > 0 && len(z) <= 5
}

func daysIn(m time.Month, year int) int {
	return time.Date(year, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
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
