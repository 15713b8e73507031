package verifier

import (
	"context"
	"testing"
)

// BenchmarkVerify measures a first, full verification of a log of 100,000
// entries served over HTTP from a Tessera POSIX directory, building the
// report on the way; it reports entries/s.
//
//	go test -run '^$' -bench BenchmarkVerify -benchtime 2x ./internal/verifier/
func BenchmarkVerify(b *testing.B) {
	const n = 100_000
	l := newTestLog(b, newKey(b, testOrigin))
	l.add(b, entries(b, 0, n)...)
	for b.Loop() {
		var r Report
		cfg := l.config(nil)
		cfg.Each = r.Add
		res, err := Verify(context.Background(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		if res.Entries != n || r.Entries != n {
			b.Fatalf("verified %d entries", res.Entries)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}
