package storetest

import (
	"fmt"
	"testing"

	"github.com/custos/custos"
)

// BenchPutRecord measures PutRecord of a 1 KiB sealed record with two token
// refs, replacing one of 1000 records of 100 subjects.
func BenchPutRecord(b *testing.B, s custos.Store) {
	records := seed(b, s)
	i := 0
	for b.Loop() {
		r := records[i%len(records)]
		refs := []custos.TokenRef{ref(fmt.Sprint("t", i), "operator", r, "email"), ref("p"+r.ID, "monitor", r, "phone")}
		if _, err := s.PutRecord(b.Context(), r, refs); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchRecord measures Record of one of 1000 records of 1 KiB.
func BenchRecord(b *testing.B, s custos.Store) {
	records := seed(b, s)
	i := 0
	for b.Loop() {
		r := records[i%len(records)]
		if _, err := s.Record(b.Context(), r.Collection, r.ID); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchRecordParallel measures Record as BenchRecord does, from
// GOMAXPROCS goroutines at once.
func BenchRecordParallel(b *testing.B, s custos.Store) {
	records := seed(b, s)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			r := records[i%len(records)]
			if _, err := s.Record(b.Context(), r.Collection, r.ID); err != nil {
				b.Error(err)
				return
			}
			i += 7
		}
	})
}

func seed(b *testing.B, s custos.Store) []custos.SealedRecord {
	b.Helper()
	var records []custos.SealedRecord
	for i := range 100 {
		sid := fmt.Sprintf("subject-%03d", i)
		if _, err := s.CreateSubject(b.Context(), subject(sid)); err != nil {
			b.Fatal(err)
		}
		for j := range 10 {
			r := record("profiles", fmt.Sprintf("%s-%d", sid, j), sid)
			r.Sealed = make([]byte, 1024)
			if _, err := s.PutRecord(b.Context(), r, nil); err != nil {
				b.Fatal(err)
			}
			records = append(records, r)
		}
	}
	return records
}
