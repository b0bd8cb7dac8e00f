package trap

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tip-project/tip/lab/world"
)

var epoch = world.DefaultStart // 2026-09-01T00:00:00Z

// fakeSource receives one spam every interval from epoch on: simple RFC 822 mails
// whose bytes depend only on their index.
type fakeSource struct {
	epoch    time.Time
	interval time.Duration
}

func newFakeSource() fakeSource { return fakeSource{epoch: epoch, interval: 97 * time.Minute} }

func (s fakeSource) Between(from, to time.Time) []Mail {
	if from.Before(s.epoch) {
		from = s.epoch
	}
	k := int64((from.Sub(s.epoch) + s.interval - 1) / s.interval)
	var out []Mail
	for ; ; k++ {
		t := s.epoch.Add(time.Duration(k) * s.interval).Add(time.Duration(k%1000) * time.Microsecond)
		if !t.Before(to) {
			return out
		}
		if t.Before(from) {
			continue
		}
		out = append(out, s.mail(k, t))
	}
}

func (s fakeSource) mail(k int64, t time.Time) Mail {
	raw := fmt.Sprintf("Return-Path: <bounce%d@spam.example>\n"+
		"Received: from bot%d.example ([203.0.113.%d]) by mx.trap.example with SMTP id %d; %s\n"+
		"From: \"Offer %d\" <offer%d@spam.example>\n"+
		"To: trap@trap.example\n"+
		"Subject: Cheap watches no. %d\n"+
		"Date: %s\n"+
		"Message-ID: <%d@spam.example>\n"+
		"\n"+
		"Visit http://flux%d.example/ now!\n\xff binary byte kept as is\n",
		k, k, k%250+1, k, t.Format(time.RFC1123Z), k, k, k, t.Format(time.RFC1123Z), k, k%7)
	return Mail{Name: fmt.Sprintf("%d.%d_%d.txt", t.Unix(), 1000+k, k%20), Time: t, Raw: []byte(raw)}
}

// publicDir is a temporary folder others can search, as Dovecot's users need.
func publicDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, p := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
