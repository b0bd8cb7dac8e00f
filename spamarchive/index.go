package spamarchive

import (
	"fmt"
	"io"
	"net/url"
	"regexp"
	"sort"
	"strings"

	"golang.org/x/net/html"
)

// Archive is one archive an index lists.
type Archive struct {
	Name   string `json:"name"`   // "2026-09.7z"
	URL    string `json:"url"`    // absolute
	Period string `json:"period"` // "2026-09" for a month, "2026" for a year
	Format Format `json:"format"`
}

// Monthly says whether the archive covers one month.
func (a Archive) Monthly() bool { return len(a.Period) == 7 }

var archiveName = regexp.MustCompile(`^(\d{4})(-(0[1-9]|1[0-2]))?\.(7z|zip|tar\.gz|tgz)$`)

// maxIndex bounds what an index page may cost.
const maxIndex = 4 << 20

// ParseIndex reads a directory listing and returns the archives it links to,
// resolved against base, oldest period first. Links that are not archives (the
// parent directory, sort links, sidecars, icons) are ignored. A year is listed
// only when no month of it is: archives that publish a month's mail both monthly
// and in the yearly roll-up would otherwise be read twice.
func ParseIndex(r io.Reader, base *url.URL) ([]Archive, error) {
	z := html.NewTokenizer(io.LimitReader(r, maxIndex))
	seen := map[string]bool{}
	var out []Archive
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			if err := z.Err(); err != io.EOF {
				return nil, fmt.Errorf("archive index: %w", err)
			}
			break
		}
		if tt != html.StartTagToken && tt != html.SelfClosingTagToken {
			continue
		}
		name, hasAttr := z.TagName()
		if string(name) != "a" || !hasAttr {
			continue
		}
		for {
			key, val, more := z.TagAttr()
			if string(key) == "href" {
				if a, ok := archiveLink(string(val), base); ok && !seen[a.URL] {
					seen[a.URL] = true
					out = append(out, a)
				}
			}
			if !more {
				break
			}
		}
	}
	months := map[string]bool{}
	for _, a := range out {
		if a.Monthly() {
			months[a.Period[:4]] = true
		}
	}
	kept := out[:0]
	for _, a := range out {
		if a.Monthly() || !months[a.Period] {
			kept = append(kept, a)
		}
	}
	sort.SliceStable(kept, func(i, j int) bool { return kept[i].Period < kept[j].Period })
	return kept, nil
}

func archiveLink(href string, base *url.URL) (Archive, bool) {
	u, err := url.Parse(strings.TrimSpace(href))
	if err != nil || u.RawQuery != "" {
		return Archive{}, false
	}
	file := u.Path
	if i := strings.LastIndexByte(file, '/'); i >= 0 {
		file = file[i+1:]
	}
	m := archiveName.FindStringSubmatch(file)
	if m == nil {
		return Archive{}, false
	}
	abs := u
	if base != nil {
		abs = base.ResolveReference(u)
	}
	if abs.Scheme != "http" && abs.Scheme != "https" {
		return Archive{}, false
	}
	format := Format(m[4])
	if format == "tgz" {
		format = TarGz
	}
	return Archive{Name: file, URL: abs.String(), Period: m[1] + m[2], Format: format}, true
}
