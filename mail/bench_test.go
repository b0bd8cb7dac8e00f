package mail

import "testing"

// BenchmarkExtract runs Extract over lab mails (three seeds, six lab days) and
// reports mails per second of wall time and, as the machine may be busy with
// other work, per second of the process's CPU time (GC included).
func BenchmarkExtract(b *testing.B) {
	mails := labSample(b)
	var size int64
	for _, m := range mails {
		size += int64(len(m.Raw))
	}
	b.SetBytes(size / int64(len(mails)))
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		m := mails[i%len(mails)]
		Extract(m.Raw, m.cfg)
	}
	cpu := cpuTime() - cpu0
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "mails/s")
	if cpu > 0 {
		b.ReportMetric(float64(b.N)/cpu.Seconds(), "mails/cpu-s")
	}
}
