package vault

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/custos/custos"
	"github.com/custos/custos/internal/keys"
)

var _ RotatingKeyring = (*keys.Local)(nil)

// newKeyringFile creates a keyring and returns its path.
func newKeyringFile(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keyring.json")
	if err := keys.Create(path, "US"); err != nil {
		t.Fatal(err)
	}
	return path
}

func openKeyring(t testing.TB, path string) *keys.Local {
	t.Helper()
	k, err := keys.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newKeyring(t testing.TB) *keys.Local { return openKeyring(t, newKeyringFile(t)) }

func readReason(id string) custos.KeyReason {
	return custos.KeyReason{Action: custos.ActionReadClear, Principal: "alice", Purpose: "support", Subject: id}
}

// newDataKeyFor registers subject id in st and returns its data key.
func newDataKeyFor(t testing.TB, v *Vault, st custos.Store, id string) *DataKey {
	t.Helper()
	ctx := context.Background()
	s, _, err := v.Register(ctx, st, custos.Subject{ID: id, Residency: "US"})
	if err != nil {
		t.Fatal(err)
	}
	k, err := v.Key(ctx, s, readReason(id))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealOpenRoundTrip(t *testing.T) {
	v := New(newKeyring(t), "US")
	k := newDataKeyFor(t, v, newMemStore(), "u1")
	for _, n := range []int{0, 1, 15, 16, 17, 1024, 1 << 16} {
		plain := bytes.Repeat([]byte{'x'}, n)
		sealed, err := k.Seal("users", "r1", plain)
		if err != nil {
			t.Fatal(err)
		}
		if len(sealed) != 1+12+n+16 || sealed[0] != 1 {
			t.Fatalf("sealed %d bytes into %d, first byte %d", n, len(sealed), sealed[0])
		}
		got, err := k.Open("users", "r1", sealed)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("Open of %d bytes: %v", n, err)
		}
		again, _ := k.Seal("users", "r1", plain)
		if bytes.Equal(again, sealed) {
			t.Fatal("two seals are equal: nonce reused")
		}
	}
}

func TestOpenTamper(t *testing.T) {
	v := New(newKeyring(t), "US")
	k := newDataKeyFor(t, v, newMemStore(), "u1")
	sealed, _ := k.Seal("users", "r1", []byte(`{"email":"a@example.com"}`))
	for i := range sealed {
		for _, bit := range []byte{0x01, 0x80} {
			bad := bytes.Clone(sealed)
			bad[i] ^= bit
			if _, err := k.Open("users", "r1", bad); err == nil {
				t.Fatalf("Open succeeded with byte %d changed", i)
			}
		}
	}
	for n := range len(sealed) {
		if _, err := k.Open("users", "r1", sealed[:n]); err == nil {
			t.Fatalf("Open succeeded on the first %d bytes", n)
		}
	}
	if _, err := k.Open("users", "r1", append(bytes.Clone(sealed), 0)); err == nil {
		t.Fatal("Open succeeded with a byte appended")
	}
}

func TestOpenWrongContext(t *testing.T) {
	ctx := context.Background()
	kr := newKeyring(t)
	st := newMemStore()
	v := New(kr, "US")
	k := newDataKeyFor(t, v, st, "u1")
	sealed, _ := k.Seal("users", "r1", []byte("secret"))

	s, _ := st.Subject(ctx, "u1")
	dek, err := kr.Unwrap(ctx, s.Key, keyAAD("US", "u1"), readReason("u1"))
	if err != nil {
		t.Fatal(err)
	}
	sameKey := func(jurisdiction, subject string) *DataKey {
		k, err := newDataKey(dek, jurisdiction, subject)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	if _, err := sameKey("US", "u1").Open("users", "r1", sealed); err != nil {
		t.Fatalf("control: %v", err)
	}
	tests := []struct {
		name               string
		k                  *DataKey
		collection, record string
	}{
		{"collection", k, "posts", "r1"},
		{"record", k, "users", "r2"},
		{"subject", sameKey("US", "u2"), "users", "r1"},
		{"jurisdiction", sameKey("CA", "u1"), "users", "r1"},
		{"boundary", k, "user", "sr1"},
		{"other key", newDataKeyFor(t, v, st, "u2"), "users", "r1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.k.Open(tt.collection, tt.record, sealed); err == nil {
				t.Fatal("Open succeeded")
			}
		})
	}
}

// TestSealFormat opens a sealed value with AES-256-GCM computed here, from
// the format the package documents.
func TestSealFormat(t *testing.T) {
	dek := bytes.Repeat([]byte{3}, 32)
	k, _ := newDataKey(dek, "US", "u1")
	sealed, _ := k.Seal("users", "r1", []byte("hello"))
	b, _ := aes.NewCipher(dek)
	g, _ := cipher.NewGCM(b)
	aad := []byte("custos-record-v1\x00\x01\x02US\x02u1\x05users\x02r1")
	got, err := g.Open(nil, sealed[1:13], sealed[13:], aad)
	if err != nil || string(got) != "hello" {
		t.Fatalf("independent open = %q, %v", got, err)
	}
}

func TestKeyBoundToSubject(t *testing.T) {
	ctx := context.Background()
	v := New(newKeyring(t), "US")
	w, err := v.NewKey(ctx, "u1")
	if err != nil {
		t.Fatal(err)
	}
	s := custos.StoredSubject{Subject: custos.Subject{ID: "u1", Residency: "US"}, Key: w}
	if _, err := v.Key(ctx, s, readReason("u1")); err != nil {
		t.Fatalf("control: %v", err)
	}
	s.ID = "u2"
	if _, err := v.Key(ctx, s, readReason("u2")); err == nil {
		t.Fatal("a key wrapped for u1 unwrapped as u2's")
	}
	other := New(v.k, "CA")
	s = custos.StoredSubject{Subject: custos.Subject{ID: "u1", Residency: "CA"}, Key: w}
	if _, err := other.Key(ctx, s, readReason("u1")); err == nil {
		t.Fatal("a key wrapped for US unwrapped for CA")
	}
}

func TestKeyChecksReasonAndResidency(t *testing.T) {
	ctx := context.Background()
	v := New(newKeyring(t), "US")
	w, _ := v.NewKey(ctx, "u1")
	s := custos.StoredSubject{Subject: custos.Subject{ID: "u1", Residency: "US"}, Key: w}
	if _, err := v.Key(ctx, s, custos.KeyReason{Action: custos.ActionReadClear, Principal: "alice"}); err == nil {
		t.Error("Key without a subject in its reason succeeded")
	}
	if _, err := v.Key(ctx, s, readReason("u2")); err == nil {
		t.Error("Key with a reason naming another subject succeeded")
	}
	s.Residency = "CA"
	_, err := v.Key(ctx, s, readReason("u1"))
	if custos.ErrorCode(err) != custos.CodeWrongJurisdiction {
		t.Errorf("Key of a CA subject in a US vault: %v", err)
	}
}

func TestRegister(t *testing.T) {
	ctx := context.Background()
	v := New(newKeyring(t), "US")
	st := newMemStore()
	s1, created, err := v.Register(ctx, st, custos.Subject{ID: "u1", Residency: "US"})
	if err != nil || !created {
		t.Fatalf("Register = %v, %v", created, err)
	}
	s2, created, err := v.Register(ctx, st, custos.Subject{ID: "u1", Residency: "US"})
	if err != nil || created || !sameKey(s1.Key, s2.Key) {
		t.Fatalf("second Register = %v, %v; same key %v", created, err, sameKey(s1.Key, s2.Key))
	}
	if _, _, err := v.Register(ctx, st, custos.Subject{ID: "u3", Residency: "CA"}); custos.ErrorCode(err) != custos.CodeWrongJurisdiction {
		t.Errorf("Register of a CA subject: %v", err)
	}
}

// rotatingStore starts a rotation in another process while a subject is
// being stored: after its key was wrapped, before it is stored.
type rotatingStore struct {
	*memStore
	other *keys.Local
}

func (r rotatingStore) CreateSubject(ctx context.Context, s custos.StoredSubject) (bool, error) {
	if _, err := r.other.AddKEK(ctx); err != nil {
		return false, err
	}
	return r.memStore.CreateSubject(ctx, s)
}

func TestRegisterDuringRotation(t *testing.T) {
	ctx := context.Background()
	path := newKeyringFile(t)
	kr, other := openKeyring(t, path), openKeyring(t, path)
	old := kr.Current()
	st := newMemStore()
	v := New(kr, "US")
	s, _, err := v.Register(ctx, rotatingStore{st, other}, custos.Subject{ID: "u1", Residency: "US"})
	if err != nil {
		t.Fatal(err)
	}
	stored, _ := st.Subject(ctx, "u1")
	if stored.Key.KEKID == old || stored.Key.KEKID != other.Current() || !sameKey(stored.Key, s.Key) {
		t.Fatalf("subject stored under %s; old %s, current %s", stored.Key.KEKID, old, other.Current())
	}
	if _, err := v.Key(ctx, stored, readReason("u1")); err != nil {
		t.Fatal(err)
	}
}

func TestDataKeyPrintsNothing(t *testing.T) {
	dek := bytes.Repeat([]byte{0xab}, 32)
	k, _ := newDataKey(dek, "US", "subject-42")
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%d", "%q"} {
		for _, v := range []any{k, *k} {
			out := fmt.Sprintf(verb, v)
			if strings.Contains(out, "subject-42") || strings.Contains(out, "abab") || strings.Contains(out, "171 171") || strings.Contains(out, "0xab") {
				t.Errorf("fmt %s of %T = %s", verb, v, out)
			}
		}
	}
}

func TestKeyDestroyedIsReported(t *testing.T) {
	ctx := context.Background()
	kr := newKeyring(t)
	v := New(kr, "US")
	w, _ := v.NewKey(ctx, "u1")
	id, _ := kr.AddKEK(ctx)
	kr.DestroyKEKs(ctx, id)
	s := custos.StoredSubject{Subject: custos.Subject{ID: "u1", Residency: "US"}, Key: w}
	if _, err := v.Key(ctx, s, readReason("u1")); !errors.Is(err, custos.ErrKeyDestroyed) {
		t.Fatalf("Key under a destroyed KEK: %v", err)
	}
}
