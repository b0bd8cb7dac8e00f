package feeds

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The large feed is a blocklist.de-style list of LargeLines IPv4 addresses. It is
// never built in memory: each request streams it from a generator keyed by the
// lab day, so its ETag and Last-Modified are known without generating a line.

func (s *Server) largeLines() int { return s.opts.LargeLines }

// labDay numbers whole lab days since the epoch (negative before it).
func (s *Server) labDay(t time.Time) int64 {
	d := t.Sub(s.w.Start)
	n := int64(d / day)
	if d < 0 && d%day != 0 {
		n--
	}
	return n
}

func (s *Server) largeKey(dayN int64) uint32 {
	return s.w.Rand(fmt.Sprintf("feeds/large/%d", dayN)).Uint32()
}

func (s *Server) largeDoc(at time.Time) string {
	d := s.labDay(at)
	return fmt.Sprintf("%d IPv4 addresses, one a line: for j = 0, 1, 2, ... the address fmix32(j XOR k) "+
		"(murmur3's finaliser, a bijection, so no address repeats), skipping reserved space "+
		"(0/8, 10/8, 127/8, 100.64/10, 169.254/16, 172.16/12, 192.168/16, 224/3); "+
		"k = World.Rand(\"feeds/large/<lab day>\").Uint32() = %d for lab day %d. "+
		"The list changes at every lab midnight.", s.opts.LargeLines, s.largeKey(d), d)
}

// fmix32 is murmur3's 32-bit finaliser: a bijection on uint32 that scatters
// consecutive inputs.
func fmix32(x uint32) uint32 {
	x ^= x >> 16
	x *= 0x85ebca6b
	x ^= x >> 13
	x *= 0xc2b2ae35
	x ^= x >> 16
	return x
}

func reservedV4(a uint32) bool {
	switch o := a >> 24; {
	case o == 0, o == 10, o == 127, o >= 224:
		return true
	case a>>22 == 100<<2|1: // 100.64.0.0/10
		return true
	case a>>16 == 169<<8|254, a>>16 == 192<<8|168: // 169.254/16, 192.168/16
		return true
	case a>>20 == 172<<4|1: // 172.16.0.0/12
		return true
	}
	return false
}

func appendIPv4(b []byte, a uint32) []byte {
	b = strconv.AppendUint(b, uint64(a>>24), 10)
	b = append(b, '.')
	b = strconv.AppendUint(b, uint64(a>>16&0xff), 10)
	b = append(b, '.')
	b = strconv.AppendUint(b, uint64(a>>8&0xff), 10)
	b = append(b, '.')
	return strconv.AppendUint(b, uint64(a&0xff), 10)
}

func (s *Server) serveLarge(w http.ResponseWriter, r *http.Request, now time.Time) {
	d := s.labDay(now)
	n := s.opts.LargeLines
	tag := fmt.Sprintf(`"large-%x-%d-%d"`, s.w.Seed, d, n)
	mod := s.w.Start.Add(time.Duration(d) * day)
	h := w.Header()
	h.Set("Content-Type", textPlain)
	h.Set("ETag", tag)
	h.Set("Last-Modified", mod.UTC().Format(http.TimeFormat))
	if notModified(r, tag, mod) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if r.Method == http.MethodHead {
		return
	}
	key := s.largeKey(d)
	bw := bufio.NewWriterSize(w, 64<<10)
	line := make([]byte, 0, 16)
	for j, sent := uint32(0), 0; sent < n; j++ {
		a := fmix32(j ^ key)
		if reservedV4(a) {
			continue
		}
		line = append(appendIPv4(line[:0], a), '\n')
		if _, err := bw.Write(line); err != nil {
			return // the client went away
		}
		sent++
	}
	_ = bw.Flush()
}

// notModified applies the conditional-GET rules of RFC 9110 for a streamed body:
// If-None-Match wins over If-Modified-Since.
func notModified(r *http.Request, etag string, mod time.Time) bool {
	if inm := r.Header.Get("If-None-Match"); inm != "" {
		for _, t := range strings.Split(inm, ",") {
			if t = strings.TrimSpace(t); t == "*" || strings.TrimPrefix(t, "W/") == etag {
				return true
			}
		}
		return false
	}
	ims, err := http.ParseTime(r.Header.Get("If-Modified-Since"))
	return err == nil && !mod.Truncate(time.Second).After(ims)
}
