package vault

import (
	"context"
	"testing"

	"github.com/custos/custos"
)

func benchKey(b *testing.B) *DataKey {
	b.Helper()
	v := New(newKeyring(b), "US")
	return newDataKeyFor(b, v, newMemStore(), "u1")
}

func BenchmarkSeal1KiB(b *testing.B) {
	k := benchKey(b)
	plain := make([]byte, 1024)
	b.SetBytes(int64(len(plain)))
	for b.Loop() {
		if _, err := k.Seal("users", "r1", plain); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen1KiB(b *testing.B) {
	k := benchKey(b)
	plain := make([]byte, 1024)
	sealed, _ := k.Seal("users", "r1", plain)
	b.SetBytes(int64(len(plain)))
	for b.Loop() {
		if _, err := k.Open("users", "r1", sealed); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNewKey includes the keyring's stat of its file.
func BenchmarkNewKey(b *testing.B) {
	ctx := context.Background()
	v := New(newKeyring(b), "US")
	for b.Loop() {
		if _, err := v.NewKey(ctx, "u1"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkKeyUnwrap is Vault.Key: the keyring's stat, the unwrap and the
// data key's AES-GCM setup.
func BenchmarkKeyUnwrap(b *testing.B) {
	ctx := context.Background()
	v := New(newKeyring(b), "US")
	w, _ := v.NewKey(ctx, "u1")
	s := custos.StoredSubject{Subject: custos.Subject{ID: "u1", Residency: "US"}, Key: w}
	reason := readReason("u1")
	for b.Loop() {
		if _, err := v.Key(ctx, s, reason); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRotate reports the cost of a rotation per subject, over 5000
// subjects in memory; the keyring's two durable writes are included.
func BenchmarkRotate(b *testing.B) {
	const subjects = 5000
	ctx := context.Background()
	kr := newKeyring(b)
	v := New(kr, "US")
	st := newMemStore()
	for i := range subjects {
		id := string(rune('a'+i%26)) + string(rune('a'+i/26%26)) + string(rune('a'+i/676))
		if _, _, err := v.Register(ctx, st, custos.Subject{ID: id, Residency: "US"}); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for b.Loop() {
		rep, err := Rotate(ctx, st, kr, nil)
		if err != nil || rep.Rewrapped != subjects {
			b.Fatalf("Rotate = %+v, %v", rep, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*subjects), "ns/subject")
}
