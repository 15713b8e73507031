package vault

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/custos/custos"
	"github.com/custos/custos/internal/store/sqlite"
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
// subjects in memory without records or token refs; the keyring's two
// durable writes are included.
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
	for b.Loop() {
		rep, err := Rotate(ctx, st, kr, nil)
		if err != nil || rep.Rewrapped != subjects {
			b.Fatalf("Rotate = %+v, %v", rep, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*subjects), "ns/subject")
}

// BenchmarkRotateTokenRefs reports the cost of a whole rotation divided by
// the subjects (ns/subject) and by the token refs (ns/ref), for subjects
// with one record and two refs: in memory (the vault's and keyring's own
// work) and in SQLite (each rewrap and each reindex a durable transaction
// of its own).
func BenchmarkRotateTokenRefs(b *testing.B) {
	for _, bb := range []struct {
		name     string
		subjects int
		open     func(b *testing.B) custos.Store
	}{
		{"memory", 5000, func(*testing.B) custos.Store { return newMemStore() }},
		{"sqlite", 1000, func(b *testing.B) custos.Store {
			st, err := sqlite.Open(filepath.Join(b.TempDir(), "custos.db"), "sqlite:bench")
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { st.Close() })
			return st
		}},
	} {
		b.Run(bb.name, func(b *testing.B) {
			ctx := context.Background()
			kr := newKeyring(b)
			v := New(kr, "US")
			st := bb.open(b)
			for i := range bb.subjects {
				if err := register(ctx, v, st, fmt.Sprintf("u%05d", i)); err != nil {
					b.Fatal(err)
				}
			}
			refs := bb.subjects * len(audiences)
			for b.Loop() {
				rep, err := Rotate(ctx, st, kr, nil)
				if err != nil || rep.Rewrapped != bb.subjects || rep.Reindexed != refs {
					b.Fatalf("Rotate = %+v, %v", rep, err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*bb.subjects), "ns/subject")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*refs), "ns/ref")
		})
	}
}

// BenchmarkTokenRef is what a write pays per token ref: the index under the
// current KEK (two stats of the keyring file and an HMAC) and the token
// sealed under the data key.
func BenchmarkTokenRef(b *testing.B) {
	ctx := context.Background()
	v := New(newKeyring(b), "US")
	k := newDataKeyFor(b, v, newMemStore(), "u1")
	ref := custos.TokenRef{Audience: "operator", Subject: "u1", Collection: "users", Record: "r1", Field: "email"}
	for b.Loop() {
		kek, index, err := v.IndexToken(ctx, "tk_TMblulyAp2VWVlykVUapDA")
		if err != nil {
			b.Fatal(err)
		}
		ref.KEKID, ref.Index = kek, index
		if ref.Sealed, err = k.SealTokenRef(ref, "tk_TMblulyAp2VWVlykVUapDA"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFindTokenRefs is a detokenization's lookup of one token, in
// memory: the indexes under every KEK held (one here) and the store's
// lookup.
func BenchmarkFindTokenRefs(b *testing.B) {
	ctx := context.Background()
	v := New(newKeyring(b), "US")
	st := newMemStore()
	if err := register(ctx, v, st, "u1"); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if refs, err := v.FindTokenRefs(ctx, st, tokenOf(audiences[0], "u1")); err != nil || len(refs) != 1 {
			b.Fatal(len(refs), err)
		}
	}
}
