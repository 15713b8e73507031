package vault

import (
	"bytes"
	"testing"

	"github.com/custos/custos/internal/aead"
)

// FuzzOpen checks that no byte string makes Open panic and that none opens
// but the one Seal returned.
func FuzzOpen(f *testing.F) {
	k, err := newDataKey(bytes.Repeat([]byte{5}, 32), "US", "u1")
	if err != nil {
		f.Fatal(err)
	}
	// A fixed nonce, so that every fuzzing process knows the one genuine
	// value: Seal's would differ between them.
	nonce := bytes.Repeat([]byte{9}, aead.NonceSize)
	sealed := aead.Seal([]byte{sealVersion}, k.aead, nonce, []byte(`{"email":"a@example.com"}`), k.recordAAD("users", "r1"))
	if _, err := k.Open("users", "r1", sealed); err != nil {
		f.Fatal(err)
	}
	f.Add(sealed[:0])
	f.Add(sealed[:1])
	f.Add(sealed[:29])
	for _, i := range []int{0, 1, 13, len(sealed) - 1} {
		bad := bytes.Clone(sealed)
		bad[i] ^= 1
		f.Add(bad)
	}
	f.Add(append(bytes.Clone(sealed), 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		if bytes.Equal(b, sealed) {
			return
		}
		if p, err := k.Open("users", "r1", b); err == nil {
			t.Fatalf("Open accepted forged bytes, opening to %q", p)
		}
	})
}

// FuzzVerifyReceipt checks that no message makes VerifyReceipt panic.
func FuzzVerifyReceipt(f *testing.F) {
	f.Add([]byte("custos erasure receipt v1\njurisdiction US\n\n— x AAAAAAAA\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		VerifyReceipt(b, nopVerifier{})
	})
}

type nopVerifier struct{}

func (nopVerifier) Name() string                { return "x" }
func (nopVerifier) KeyHash() uint32             { return 0 }
func (nopVerifier) Verify(msg, sig []byte) bool { return true }
