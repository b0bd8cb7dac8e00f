package agent

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/tip-project/tip/mail"
)

// cpuTime is the CPU time (user and system) the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkPublisher publishes a lab Maildir of a few thousand mails into an
// empty agent folder (raw mails kept, batches of 1,000): the agent's own work per
// mail (list, read, extract, keep the raw copy, encode, sync). Run it on one
// core: go test -run '^$' -bench Publisher -cpu 1 ./agent/
// bench/agent_test.go does the same with 100,000 mails.
func BenchmarkPublisher(b *testing.B) {
	l := newTrapLab(b, 20_000, 4)
	l.cfg.BatchMaxMails = 1000
	mails := len(present(b, l.maildir))
	ctx := context.Background()
	var elapsed, cpu time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		l.cfg.Dir = filepath.Join(b.TempDir(), "agent")
		_, p := l.open(b)
		b.StartTimer()
		start, cpu0 := time.Now(), cpuTime()
		n, err := p.ScanOnce(ctx)
		elapsed += time.Since(start)
		cpu += cpuTime() - cpu0
		if err != nil || n != mails {
			b.Fatalf("published %d of %d: %v", n, mails, err)
		}
		b.StopTimer()
		os.RemoveAll(l.cfg.Dir)
		b.StartTimer()
	}
	b.ReportMetric(float64(mails*b.N)/elapsed.Seconds(), "mails/s")
	b.ReportMetric(float64(mails*b.N)/cpu.Seconds(), "mails/cpu-s")
	b.ReportMetric(float64(mails), "mails/op")

	// The extraction alone on the same mails, for scale: what the agent adds
	// is the difference.
	b.StopTimer()
	var corpus [][]byte
	for _, sub := range []string{"new", "cur"} {
		names, _ := readNames(filepath.Join(l.maildir, sub))
		for _, n := range names {
			raw, _ := os.ReadFile(filepath.Join(l.maildir, sub, n))
			corpus = append(corpus, raw)
		}
	}
	mcfg := l.cfg.MailConfig()
	cpu0 := cpuTime()
	for _, raw := range corpus {
		mail.Extract(raw, mcfg)
	}
	b.ReportMetric(float64(len(corpus))/(cpuTime()-cpu0).Seconds(), "extract-only-mails/cpu-s")
}
