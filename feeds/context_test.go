package feeds_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tip-project/tip/feeds"
)

// TestContextFromFixtures: the formats that say when an entry was listed, and
// what it is, give it per entry, from the lab's fixtures (the real formats'
// layouts).
func TestContextFromFixtures(t *testing.T) {
	for _, tc := range []struct {
		file, format string
		want         func(feeds.Indicator) bool
		what         string
	}{
		{"lab-feodo-ipblocklist-csv.feodo-csv", "feodo-csv", func(i feeds.Indicator) bool {
			return !i.Listed.IsZero() && i.Port != "" && i.Malware != ""
		}, "listed, port and malware"},
		{"lab-feodo-ipblocklist-json.feodo-json", "feodo-json", func(i feeds.Indicator) bool {
			return !i.Listed.IsZero() && i.Port != "" && i.Malware != ""
		}, "listed, port and malware"},
		{"lab-urlhaus-csv-recent.urlhaus-csv", "urlhaus-csv", func(i feeds.Indicator) bool {
			return !i.Listed.IsZero() && i.Category != "" && !strings.ContainsAny(i.Category, "_ ") && strings.HasPrefix(i.Ref, "https://")
		}, "listed, category and reference"},
		{"lab-sslbl-sslblacklist.sslbl-csv", "sslbl-csv", func(i feeds.Indicator) bool {
			return !i.Listed.IsZero() && i.Malware != ""
		}, "listed and malware"},
		{"lab-phishtank-online-valid.phishtank-csv", "phishtank-csv", func(i feeds.Indicator) bool {
			return !i.Listed.IsZero() && i.Ref != "" && i.Malware != ""
		}, "listed, id and target"},
	} {
		t.Run(tc.format, func(t *testing.T) {
			f, err := os.Open("testdata/" + tc.file)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			n, bad := 0, 0
			_, err = feeds.Parse(tc.format, f, feeds.Options{}, func(ind feeds.Indicator) error {
				n++
				if !tc.want(ind) || ind.Listed.Location() != time.UTC || ind.Listed.After(time.Now()) {
					if bad++; bad <= 3 {
						t.Errorf("%+v: want %s (in UTC, in the past)", ind, tc.what)
					}
				}
				return nil
			})
			if err != nil || n == 0 {
				t.Fatalf("parse: %d indicators, %v", n, err)
			}
		})
	}
}

// TestContextIsBounded: a feed's context field is hostile input; what is kept
// of it is bounded, and a nonsense date is no date, not a bad entry.
func TestContextIsBounded(t *testing.T) {
	long := strings.Repeat("x", 10000)
	body := "first_seen_utc,dst_ip,dst_port,c2_status,last_online,malware\n" +
		"not-a-date,45.10.0.7,443,online,," + long + "\n" +
		"2999-01-01 00:00:00,45.10.0.8,443,online,,Emotet\n"
	var got []feeds.Indicator
	st, err := feeds.Parse("feodo-csv", strings.NewReader(body), feeds.Options{}, func(ind feeds.Indicator) error {
		got = append(got, ind)
		return nil
	})
	if err != nil || st.Bad != 0 || len(got) != 2 {
		t.Fatalf("got %d indicators, %d bad, %v; want 2, 0", len(got), st.Bad, err)
	}
	if len(got[0].Malware) > 256 || !got[0].Listed.IsZero() || !got[1].Listed.IsZero() {
		t.Errorf("malware %d bytes, listed %v and %v: want at most 256 bytes and no times", len(got[0].Malware), got[0].Listed, got[1].Listed)
	}
}
