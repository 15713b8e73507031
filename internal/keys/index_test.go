package keys

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/custos/custos"
)

func TestTokenIndex(t *testing.T) {
	ctx := context.Background()
	l, path := newKeyring(t)
	k1 := l.Current()
	tok := []byte("tk_0123456789abcdefghijkl")

	a, err := l.TokenIndex(ctx, k1, tok)
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != sha256.Size {
		t.Fatalf("index of %d bytes, want %d", len(a), sha256.Size)
	}
	if b, _ := l.TokenIndex(ctx, k1, tok); !bytes.Equal(a, b) {
		t.Error("TokenIndex is not deterministic")
	}
	if b, _ := l.TokenIndex(ctx, k1, []byte("tk_0123456789abcdefghijkm")); bytes.Equal(a, b) {
		t.Error("two tokens have the same index")
	}
	// Another process sees the same index: it is derived from the file.
	other, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := other.TokenIndex(ctx, k1, tok); err != nil || !bytes.Equal(a, b) {
		t.Errorf("another instance: %x, %v; want %x", b, err, a)
	}

	k2, err := l.AddKEK(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, err := l.TokenIndex(ctx, k2, tok)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a, b) {
		t.Error("two KEKs give the same index")
	}
	if again, err := l.TokenIndex(ctx, k1, tok); err != nil || !bytes.Equal(a, again) {
		t.Errorf("old KEK's index changed before its destruction: %x, %v", again, err)
	}

	if _, err := l.DestroyKEKs(ctx, k2); err != nil {
		t.Fatal(err)
	}
	for name, kr := range map[string]*Local{"destroyer": l, "other instance": other} {
		if _, err := kr.TokenIndex(ctx, k1, tok); !errors.Is(err, custos.ErrKeyDestroyed) {
			t.Errorf("%s: index under a destroyed KEK: %v, want ErrKeyDestroyed", name, err)
		}
		if got, err := kr.TokenIndex(ctx, k2, tok); err != nil || !bytes.Equal(got, b) {
			t.Errorf("%s: index under the kept KEK: %x, %v", name, got, err)
		}
	}
	reopened, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reopened.TokenIndex(ctx, k1, tok); !errors.Is(err, custos.ErrKeyDestroyed) {
		t.Errorf("reopened: index under a destroyed KEK: %v, want ErrKeyDestroyed", err)
	}

	if _, err := l.TokenIndex(ctx, "not-a-kek", tok); err == nil || errors.Is(err, custos.ErrKeyDestroyed) {
		t.Errorf("malformed KEK id: %v, want another error than ErrKeyDestroyed", err)
	}
}

// TestTokenIndexKnownAnswer checks TokenIndex against HKDF-SHA256 (RFC
// 5869) and HMAC-SHA256 computed apart from the package, and against
// values computed with another implementation (Python's hmac and hashlib).
func TestTokenIndexKnownAnswer(t *testing.T) {
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i)
	}
	const id = "kek-20260102-0a1b2c3d"
	f := fileV1{
		Version:      fileVersion,
		Jurisdiction: "US",
		Current:      id,
		KEKs:         []fileKEK{{ID: id, Key: key}},
		TokenKey:     bytes.Repeat([]byte{0xaa}, 32),
		SigningKey:   bytes.Repeat([]byte{0xbb}, 32),
	}
	path := filepath.Join(t.TempDir(), "keyring.json")
	if err := os.WriteFile(path, jsonMarshal(t, f), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}

	// HKDF-Extract with no salt (a hash-length string of zeros), then one
	// block of HKDF-Expand.
	hmacSHA256 := func(k, m []byte) []byte {
		h := hmac.New(sha256.New, k)
		h.Write(m)
		return h.Sum(nil)
	}
	prk := hmacSHA256(make([]byte, sha256.Size), key)
	indexKey := hmacSHA256(prk, append([]byte("custos token index v1"), 1))
	if got := hex.EncodeToString(indexKey); got != "df24ed13c027922cdd12d4db615b7bb785231d2801aa4462bba114b3fe58148a" {
		t.Fatalf("independent HKDF = %s", got)
	}

	for _, tt := range []struct{ token, want string }{
		{"tk_AAAAAAAAAAAAAAAAAAAAAA", "788db4b5624e776f46bae499c4451822a5eae918518d909547c7d032ce8134a9"},
		{"+1 202 555 0101", "e838b99a9e534baeedf46beba53d5c8ba2269b7148048255b8aa1eea1d041594"},
		{"", "347c6f6ea4afe29cacfbb60f66f3c76122653f84532817997747eaf3e759f1ad"},
	} {
		got, err := l.TokenIndex(context.Background(), id, []byte(tt.token))
		if err != nil {
			t.Fatal(err)
		}
		if hex.EncodeToString(got) != tt.want {
			t.Errorf("TokenIndex(%q) = %x, want %s", tt.token, got, tt.want)
		}
		if !bytes.Equal(got, hmacSHA256(indexKey, []byte(tt.token))) {
			t.Errorf("TokenIndex(%q) differs from HMAC-SHA256 under the independent HKDF", tt.token)
		}
	}
}

func TestKEKsCurrentFirst(t *testing.T) {
	ctx := context.Background()
	l, _ := newKeyring(t)
	k1 := l.Current()
	k2, _ := l.AddKEK(ctx)
	k3, _ := l.AddKEK(ctx)
	if got, want := l.KEKs(), []string{k3, k1, k2}; !slices.Equal(got, want) {
		t.Errorf("KEKs() = %v, want %v", got, want)
	}
}

// TestTokenIndexRereadsOnUnknownKEK covers a change the file's stamp
// missed, as TestUnwrapRereadsOnUnknownKEK does for Unwrap.
func TestTokenIndexRereadsOnUnknownKEK(t *testing.T) {
	ctx := context.Background()
	server, cli, id := missedKEK(t)
	want, _ := cli.TokenIndex(ctx, id, []byte("tk_abc"))
	if got, err := server.TokenIndex(ctx, id, []byte("tk_abc")); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("TokenIndex under a KEK added unnoticed: %x, %v", got, err)
	}
}

// TestIndexKeyNotInFile checks that the token index key is derived, never
// written: the file holds the KEK and nothing computed from it.
func TestIndexKeyNotInFile(t *testing.T) {
	l, path := newKeyring(t)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	k := l.ring.Load().byID[l.Current()]
	if len(k.index) != 32 || bytes.Equal(k.index, k.key) {
		t.Fatal("the index key is not a key of its own")
	}
	for _, enc := range []string{hex.EncodeToString(k.index), base64.StdEncoding.EncodeToString(k.index)} {
		if bytes.Contains(data, []byte(enc)) {
			t.Error("the index key is in the keyring file")
		}
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%x", "%s"} {
		if out := fmt.Sprintf(verb, k); strings.Contains(out, hex.EncodeToString(k.index[:4])) {
			t.Errorf("fmt %s of a KEK shows its index key: %s", verb, out)
		}
	}
}
