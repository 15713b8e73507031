package storetest

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"sync"
	"sync/atomic"
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

// BenchPutRecordConcurrent measures PutRecord from 1, 16 and 64 goroutines
// at once, as concurrent write requests make it, in a store that open
// returns new and empty. Every call stores a new record of about 300 bytes
// with six token refs (three tokenized fields for two audiences), as a
// write through custody does, for one of 100 subjects. It reports
// records/s.
func BenchPutRecordConcurrent(b *testing.B, open func(testing.TB) custos.Store) {
	for _, writers := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			s := open(b)
			var subjects []string
			for i := range 100 {
				sid := fmt.Sprintf("subject-%03d", i)
				if _, err := s.CreateSubject(b.Context(), subject(sid)); err != nil {
					b.Fatal(err)
				}
				subjects = append(subjects, sid)
			}
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			for range writers {
				wg.Go(func() {
					for i := int(next.Add(1)) - 1; i < b.N; i = int(next.Add(1)) - 1 {
						r, refs := writeOf(subjects[i%len(subjects)], i)
						if _, err := s.PutRecord(b.Context(), r, refs); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// writeOf returns the i-th record of a write benchmark, of subject sid, and
// its refs, sized as custody makes them: 32-byte indexes and tokens sealed
// with a version byte, a nonce and a tag.
func writeOf(sid string, i int) (custos.SealedRecord, []custos.TokenRef) {
	r := custos.SealedRecord{
		Collection: "profiles",
		ID:         fmt.Sprintf("profile-%08d", i),
		Subject:    sid,
		Clear:      fmt.Appendf(nil, `{"handle":"user-%08d","country":"US","plan":"pro","signup":"2026-03-14","visits":%d}`, i, i%1000),
		Sealed:     bytes.Repeat([]byte{byte(i)}, 190),
		UpdatedAt:  when,
	}
	var refs []custos.TokenRef
	for _, field := range []string{"email", "phone", "name"} {
		for _, aud := range []string{"operator", "monitor"} {
			token := fmt.Sprintf("tok_%s_%s_%08d_abcdefghijklmnop", aud, field, i)
			idx := sha256.Sum256([]byte(token))
			refs = append(refs, custos.TokenRef{
				Index: idx[:], KEKID: "kek-1", Audience: aud,
				Subject: sid, Collection: r.Collection, Record: r.ID, Field: field,
				Sealed: append(bytes.Repeat([]byte{1}, 13), append([]byte(token), make([]byte, 16)...)...),
			})
		}
	}
	return r, refs
}
