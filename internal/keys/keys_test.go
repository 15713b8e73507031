package keys

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/custos/custos"
	"github.com/custos/custos/internal/aead"
	"golang.org/x/mod/sumdb/note"
)

var reason = custos.KeyReason{Action: custos.ActionReadClear, Principal: "alice", Subject: "u1"}

func newKeyring(t testing.TB) (*Local, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keyring.json")
	if err := Create(path, "US"); err != nil {
		t.Fatal(err)
	}
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	return l, path
}

func TestCreateOpen(t *testing.T) {
	l, path := newKeyring(t)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %04o, want 0600", fi.Mode().Perm())
	}
	if l.Jurisdiction() != "US" {
		t.Errorf("jurisdiction %q", l.Jurisdiction())
	}
	if ids := l.KEKs(); len(ids) != 1 || ids[0] != l.Current() || !validKEKID(ids[0]) {
		t.Errorf("KEKs %v, current %q", ids, l.Current())
	}
	tk := l.TokenKey()
	if len(tk) != 32 || bytes.Equal(tk, make([]byte, 32)) {
		t.Fatalf("token key of %d bytes", len(tk))
	}
	tk[0] ^= 1
	if bytes.Equal(tk, l.TokenKey()) {
		t.Error("TokenKey returned the keyring's own slice")
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries after Create, want the keyring only", len(entries))
	}
}

func TestValidKEKID(t *testing.T) {
	for id, want := range map[string]bool{
		"kek-20260102-0a1b2c3d":  true,
		"kek-20260102-0A1B2C3D":  false,
		"kek-2026010a-0a1b2c3d":  false,
		"kek-20260102-0a1b2c3g":  false,
		"kek-20260102_0a1b2c3d":  false,
		"kex-20260102-0a1b2c3d":  false,
		"kek-20260102-0a1b2c3":   false,
		"kek-20260102-0a1b2c3d0": false,
		"":                       false,
	} {
		if validKEKID(id) != want {
			t.Errorf("validKEKID(%q) = %v", id, !want)
		}
	}
}

func TestCreateRefusesOverwrite(t *testing.T) {
	_, path := newKeyring(t)
	before, _ := os.ReadFile(path)
	if err := Create(path, "US"); err == nil {
		t.Fatal("Create overwrote an existing keyring")
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Error("refused Create changed the file")
	}
}

func TestCreateRefusesBadJurisdiction(t *testing.T) {
	for _, j := range []string{"", "us", "USA", "U S", "custos+x"} {
		if err := Create(filepath.Join(t.TempDir(), "k"), j); err == nil {
			t.Errorf("Create accepted jurisdiction %q", j)
		}
	}
}

func TestOpenRefusesLooseMode(t *testing.T) {
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660} {
		_, path := newKeyring(t)
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := Open(path)
		if err == nil || !strings.Contains(err.Error(), "chmod 600 "+path) {
			t.Errorf("mode %04o: Open err = %v, want a chmod hint", mode, err)
		}
	}
}

func TestOpenRefusesMalformed(t *testing.T) {
	_, path := newKeyring(t)
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	edit := func(f func(m map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(good, &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		return jsonMarshal(t, m)
	}
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "malformed"},
		{"garbage", []byte("not json at all"), "malformed"},
		{"truncated", good[:len(good)/2], "malformed"},
		{"trailing", append(bytes.Clone(good), "{}"...), "malformed"},
		{"version 2", edit(func(m map[string]any) { m["version"] = 2 }), "version 2"},
		{"no version", edit(func(m map[string]any) { delete(m, "version") }), "version 0"},
		{"unknown field", edit(func(m map[string]any) { m["extra"] = true }), "malformed"},
		{"no current", edit(func(m map[string]any) { m["current"] = "kek-20260101-00000000" }), "current"},
		{"no keks", edit(func(m map[string]any) { m["keks"] = []any{} }), "no key-encryption key"},
		{"short kek", edit(func(m map[string]any) {
			m["keks"].([]any)[0].(map[string]any)["key"] = base64.StdEncoding.EncodeToString(make([]byte, 16))
		}), "32 bytes"},
		{"bad kek id", edit(func(m map[string]any) { m["keks"].([]any)[0].(map[string]any)["id"] = "x" }), "malformed key-encryption key id"},
		{"short token key", edit(func(m map[string]any) { m["token_key"] = "AAAA" }), "token key"},
		{"short seed", edit(func(m map[string]any) { m["signing_key"] = "AAAA" }), "signing key"},
		{"bad jurisdiction", edit(func(m map[string]any) { m["jurisdiction"] = "usa" }), "jurisdiction"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "keyring.json")
			if err := os.WriteFile(p, tt.data, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Open(p)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Open err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestWrapUnwrap(t *testing.T) {
	ctx := context.Background()
	l, _ := newKeyring(t)
	dek := bytes.Repeat([]byte{7}, 32)
	w, err := l.Wrap(ctx, dek, []byte("US/u1"))
	if err != nil {
		t.Fatal(err)
	}
	if w.KEKID != l.Current() || len(w.Ciphertext) != aead.NonceSize+32+16 {
		t.Fatalf("wrapped under %s, %d bytes", w.KEKID, len(w.Ciphertext))
	}
	got, err := l.Unwrap(ctx, w, []byte("US/u1"), reason)
	if err != nil || !bytes.Equal(got, dek) {
		t.Fatalf("Unwrap = %x, %v", got, err)
	}
	w2, _ := l.Wrap(ctx, dek, []byte("US/u1"))
	if bytes.Equal(w.Ciphertext, w2.Ciphertext) {
		t.Error("two wraps of one key are equal: nonce reused")
	}
	if _, err := l.Unwrap(ctx, w, []byte("US/u2"), reason); err == nil {
		t.Error("Unwrap succeeded with another aad")
	}
	for i := range w.Ciphertext {
		bad := custos.WrappedKey{KEKID: w.KEKID, Ciphertext: bytes.Clone(w.Ciphertext)}
		bad.Ciphertext[i] ^= 0x80
		if _, err := l.Unwrap(ctx, bad, []byte("US/u1"), reason); err == nil {
			t.Fatalf("Unwrap succeeded with byte %d changed", i)
		}
	}
	if _, err := l.Unwrap(ctx, custos.WrappedKey{KEKID: w.KEKID, Ciphertext: w.Ciphertext[:27]}, []byte("US/u1"), reason); err == nil {
		t.Error("Unwrap succeeded on a truncated key")
	}
}

// TestWrapFormat checks the wrapped key against AES-256-GCM computed here,
// independently of seal: nonce || GCM(dek, "custos-dek-v1" || 0 || aad).
func TestWrapFormat(t *testing.T) {
	ctx := context.Background()
	l, _ := newKeyring(t)
	dek := bytes.Repeat([]byte{9}, 32)
	w, err := l.Wrap(ctx, dek, []byte("aad"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := aes.NewCipher(l.ring.Load().byID[w.KEKID].key)
	g, _ := cipher.NewGCM(b)
	got, err := g.Open(nil, w.Ciphertext[:12], w.Ciphertext[12:], []byte("custos-dek-v1\x00aad"))
	if err != nil || !bytes.Equal(got, dek) {
		t.Fatalf("independent GCM open = %x, %v", got, err)
	}
}

func TestUnwrapRequiresReason(t *testing.T) {
	ctx := context.Background()
	l, _ := newKeyring(t)
	w, _ := l.Wrap(ctx, make([]byte, 32), nil)
	if _, err := l.Unwrap(ctx, w, nil, custos.KeyReason{Action: custos.ActionReadClear, Principal: "alice"}); err == nil {
		t.Fatal("Unwrap without a subject in its reason succeeded")
	}
	if n := l.Unwraps()[custos.ActionReadClear]; n != 0 {
		t.Errorf("refused unwrap counted: %d", n)
	}
}

func TestUnwrapsCounted(t *testing.T) {
	ctx := context.Background()
	l, _ := newKeyring(t)
	w, _ := l.Wrap(ctx, make([]byte, 32), nil)
	for range 3 {
		l.Unwrap(ctx, w, nil, reason)
	}
	l.Unwrap(ctx, w, nil, custos.KeyReason{Principal: "custos-rotation", Subject: "u1"})
	l.Unwrap(ctx, w, []byte("wrong"), reason)
	got := l.Unwraps()
	if got[custos.ActionReadClear] != 3 || got[""] != 1 || len(got) != 2 {
		t.Errorf("Unwraps() = %v", got)
	}
}

func TestUnknownKEKIsDestroyed(t *testing.T) {
	ctx := context.Background()
	l, _ := newKeyring(t)
	w, _ := l.Wrap(ctx, make([]byte, 32), nil)
	id, err := l.AddKEK(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if l.Current() != id || len(l.KEKs()) != 2 {
		t.Fatalf("after AddKEK: current %s, KEKs %v", l.Current(), l.KEKs())
	}
	if _, err := l.Unwrap(ctx, w, nil, reason); err != nil {
		t.Fatalf("old key no longer opens before destruction: %v", err)
	}
	destroyed, err := l.DestroyKEKs(ctx, id)
	if err != nil || len(destroyed) != 1 || destroyed[0] != w.KEKID {
		t.Fatalf("DestroyKEKs = %v, %v", destroyed, err)
	}
	_, err = l.Unwrap(ctx, w, nil, reason)
	if !errors.Is(err, custos.ErrKeyDestroyed) {
		t.Fatalf("Unwrap under a destroyed KEK: %v, want ErrKeyDestroyed", err)
	}
	// A reopened keyring has forgotten it too: it is gone from the file.
	l2, err := Open(l.path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l2.Unwrap(ctx, w, nil, reason); !errors.Is(err, custos.ErrKeyDestroyed) {
		t.Fatalf("reopened: %v, want ErrKeyDestroyed", err)
	}
	if data, _ := os.ReadFile(l.path); bytes.Contains(data, []byte(w.KEKID)) {
		t.Error("destroyed KEK id still in the file")
	}
}

func TestDestroyKeepsOnlyCurrent(t *testing.T) {
	ctx := context.Background()
	l, _ := newKeyring(t)
	old := l.Current()
	if _, err := l.AddKEK(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := l.DestroyKEKs(ctx, old); err == nil {
		t.Fatal("DestroyKEKs kept a KEK that is not current")
	}
	if len(l.KEKs()) != 2 {
		t.Errorf("refused DestroyKEKs changed the keyring: %v", l.KEKs())
	}
}

// TestTwoInstances is a server and `custos keys rotate` sharing one file.
func TestTwoInstances(t *testing.T) {
	ctx := context.Background()
	server, path := newKeyring(t)
	cli, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	wOld, _ := server.Wrap(ctx, make([]byte, 32), nil)
	id, err := cli.AddKEK(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w, err := server.Wrap(ctx, make([]byte, 32), nil)
	if err != nil || w.KEKID != id {
		t.Fatalf("server wraps under %s after rotation to %s (%v)", w.KEKID, id, err)
	}
	wNew, _ := cli.Wrap(ctx, bytes.Repeat([]byte{1}, 32), nil)
	if got, err := server.Unwrap(ctx, wNew, nil, reason); err != nil || got[0] != 1 {
		t.Fatalf("server can't unwrap a key under the new KEK: %v", err)
	}
	if _, err := cli.DestroyKEKs(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := server.Unwrap(ctx, wOld, nil, reason); !errors.Is(err, custos.ErrKeyDestroyed) {
		t.Fatalf("server still unwraps under a KEK destroyed by another process: %v", err)
	}
	if got := server.KEKs(); len(got) != 1 || got[0] != id {
		t.Errorf("server KEKs %v", got)
	}
}

// missedKEK returns a server and another instance of its keyring, cli,
// which added the KEK id in a change the server's reading missed: the
// server believes its reading is up to date, as when the change fell
// within the resolution of the file's stamp.
func missedKEK(t testing.TB) (server, cli *Local, id string) {
	t.Helper()
	server, path := newKeyring(t)
	cli, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if id, err = cli.AddKEK(context.Background()); err != nil {
		t.Fatal(err)
	}
	stale := *server.ring.Load()
	if stale.fi, err = os.Stat(path); err != nil {
		t.Fatal(err)
	}
	server.ring.Store(&stale)
	return server, cli, id
}

// TestUnwrapRereadsOnUnknownKEK covers a change the file's stamp missed.
func TestUnwrapRereadsOnUnknownKEK(t *testing.T) {
	ctx := context.Background()
	server, cli, _ := missedKEK(t)
	w, _ := cli.Wrap(ctx, make([]byte, 32), nil)
	if _, err := server.Unwrap(ctx, w, nil, reason); err != nil {
		t.Fatalf("Unwrap of a key under a KEK added unnoticed: %v", err)
	}
}

// TestConcurrentAddKEK checks that changes from two instances are not lost.
func TestConcurrentAddKEK(t *testing.T) {
	ctx := context.Background()
	a, path := newKeyring(t)
	b, _ := Open(path)
	var wg sync.WaitGroup
	for _, l := range []*Local{a, b, a, b} {
		wg.Go(func() {
			for range 5 {
				if _, err := l.AddKEK(ctx); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	c, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(c.KEKs()); n != 21 {
		t.Errorf("%d KEKs after 20 concurrent additions, want 21", n)
	}
}

func TestConcurrentWrapDuringRotation(t *testing.T) {
	ctx := context.Background()
	server, path := newKeyring(t)
	cli, _ := Open(path)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				w, err := server.Wrap(ctx, make([]byte, 32), nil)
				if err != nil {
					t.Error(err)
					return
				}
				_, err = server.Unwrap(ctx, w, nil, reason)
				if err != nil && !errors.Is(err, custos.ErrKeyDestroyed) {
					t.Error(err)
					return
				}
			}
		})
	}
	for range 5 {
		id, err := cli.AddKEK(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cli.DestroyKEKs(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
}

func TestSigner(t *testing.T) {
	l, _ := newKeyring(t)
	s, err := l.Signer("custos-US-custodian")
	if err != nil {
		t.Fatal(err)
	}
	msg, err := note.Sign(&note.Note{Text: "hello\n"}, s)
	if err != nil {
		t.Fatal(err)
	}
	vkey, err := l.VerifierKey("custos-US-custodian")
	if err != nil || !strings.HasPrefix(vkey, "custos-US-custodian+") {
		t.Fatalf("VerifierKey = %q, %v", vkey, err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := note.Open(msg, note.VerifierList(v)); err != nil || n.Text != "hello\n" {
		t.Fatalf("note.Open = %v, %v", n, err)
	}
	if _, err := l.Signer("has space"); err == nil {
		t.Error("Signer accepted an invalid key name")
	}
	other, _ := newKeyring(t)
	ov, _ := other.Verifier("custos-US-custodian")
	if _, err := note.Open(msg, note.VerifierList(ov)); err == nil {
		t.Error("another keyring's verifier accepted the note")
	}
}

// TestNoSecretsPrinted formats everything that holds a secret with every
// common verb and looks for the secrets in the output.
func TestNoSecretsPrinted(t *testing.T) {
	ctx := context.Background()
	l, _ := newKeyring(t)
	r := l.ring.Load()
	var secrets [][]byte
	secrets = append(secrets, r.tokenKey, r.seed)
	for _, k := range r.keks {
		secrets = append(secrets, k.key)
	}
	s, _ := l.Signer("custos-US-custodian")
	_, unwrapErr := l.Unwrap(ctx, custos.WrappedKey{KEKID: "kek-20000101-00000000"}, nil, reason)
	values := []any{l, s, r.tokenKey, r.keks[0], r, unwrapErr}
	for _, v := range values {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%q", "%d"} {
			out := fmt.Sprintf(verb, v)
			for _, sec := range secrets {
				for _, enc := range []string{hex.EncodeToString(sec), strings.ToUpper(hex.EncodeToString(sec)), base64.StdEncoding.EncodeToString(sec), fmt.Sprint([]byte(sec)), string(sec)} {
					if strings.Contains(out, enc) {
						t.Errorf("fmt %s of %T shows a secret", verb, v)
					}
				}
			}
		}
	}
}
