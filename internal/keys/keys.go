// Package keys implements the local keyring file, the default
// custos.Keyring of a custodian that runs no external KMS.
//
// A keyring file, created by `custos init`, holds for one jurisdiction the
// key-encryption keys (KEKs) that wrap subjects' data keys, the root key of
// pseudonymous tokens, and the custodian's Ed25519 signing key (for signed
// notes: erasure receipts, log checkpoints). Its format is documented in
// file.go.
//
// Guarantees:
//
//   - Wrap seals under the KEK the file names current when Wrap is called:
//     every Wrap and Unwrap stats the file and rereads it when it changed, so
//     a server sees a rotation made by another process (`custos keys rotate`)
//     at its next call. Unwrap of a KEK it does not know rereads the file once
//     more before it fails with an error wrapping custos.ErrKeyDestroyed.
//   - Once DestroyKEKs returns, no Local reading the same file unwraps a key
//     under a destroyed KEK again.
//   - Every change is written atomically (temporary file, fsync, rename,
//     fsync of the directory): a crash leaves the old file or the new one.
//     Changes are serialised between processes by an advisory lock on
//     PATH.lock, and each starts from the file as it is on disk.
//   - Wrapped keys are AES-256-GCM with a fresh random 96-bit nonce, bound to
//     "custos-dek-v1" || 0 || the caller's aad.
//   - Each KEK has a token index key, HKDF-SHA256 of the KEK with no salt and
//     info "custos token index v1". It is derived when the file is read,
//     never written, used only inside TokenIndex, and goes with its KEK:
//     once DestroyKEKs returns, no Local reading the same file computes an
//     index under a destroyed KEK again. TokenIndex rereads the file as
//     Unwrap does.
//   - Unwrap refuses a request without a reason, and counts released keys by
//     the action of their reason (Unwraps).
//   - Secrets never appear in errors, String methods or fmt output.
//
// What it trusts: the file system. Whoever reads the file holds every key,
// so Open refuses a file that group or others may access. Destroying a KEK
// removes it from the file as it now is; a copy of an older keyring file
// still holds it. Crypto-shredding therefore holds against copies of the
// store, not against copies of the keyring: keep the keyring out of the
// store's backups.
package keys

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/custos/custos"
	"github.com/custos/custos/internal/aead"
)

// Local is a keyring file opened by Open. It implements custos.Keyring and
// is safe for concurrent use.
type Local struct {
	path string
	jur  string

	mu   sync.Mutex // serialises rereads and changes within this process
	ring atomic.Pointer[ring]

	unwraps sync.Map // custos.Action → *atomic.Uint64
}

var _ custos.Keyring = (*Local)(nil)

// Create writes a new keyring for jurisdiction (an ISO 3166-1 alpha-2 code)
// at path: one fresh AES-256 KEK, which is current, a 32-byte token root key
// and an Ed25519 signing key. The file has mode 0600 and is written
// atomically. Create refuses to overwrite an existing file.
func Create(path, jurisdiction string) error {
	if err := validJurisdiction(jurisdiction); err != nil {
		return err
	}
	k, err := newKEK(nil)
	if err != nil {
		return err
	}
	r := &ring{
		jurisdiction: jurisdiction,
		current:      k.id,
		keks:         []*kek{k},
		byID:         map[string]*kek{k.id: k},
		tokenKey:     randomSecret(32),
		seed:         randomSecret(ed25519.SeedSize),
	}
	data, err := r.marshal()
	if err != nil {
		return err
	}
	defer clear(data)
	return writeFile(path, data, true)
}

// Open reads the keyring at path. It refuses a file that group or others
// may access, a malformed file and a file of another version.
func Open(path string) (*Local, error) {
	r, err := load(path)
	if err != nil {
		return nil, err
	}
	l := &Local{path: path, jur: r.jurisdiction}
	l.ring.Store(r)
	return l, nil
}

// Jurisdiction returns the jurisdiction the keyring serves.
func (l *Local) Jurisdiction() string { return l.jur }

// TokenKey returns a copy of the root key of pseudonymous tokens.
func (l *Local) TokenKey() []byte { return slices.Clone(l.ring.Load().tokenKey) }

// Current returns the id of the KEK Wrap uses, as the file says. If the file
// cannot be read, it returns the id last read.
func (l *Local) Current() string {
	if r, err := l.fresh(); err == nil {
		return r.current
	}
	return l.ring.Load().current
}

// KEKs returns the ids of the KEKs the keyring holds, as the file says:
// the current one first, then the others oldest first. If the file cannot
// be read, it returns those last read.
func (l *Local) KEKs() []string {
	r, err := l.fresh()
	if err != nil {
		r = l.ring.Load()
	}
	return r.ids()
}

// ids returns the KEK ids of r, the current one first.
func (r *ring) ids() []string {
	ids := make([]string, 0, len(r.keks))
	ids = append(ids, r.current)
	for _, k := range r.keks {
		if k.id != r.current {
			ids = append(ids, k.id)
		}
	}
	return ids
}

// Wrap seals dek under the current KEK, rereading the file first if it
// changed.
func (l *Local) Wrap(ctx context.Context, dek, aad []byte) (custos.WrappedKey, error) {
	if len(dek) == 0 {
		return custos.WrappedKey{}, errors.New("couldn't wrap key: empty key")
	}
	r, err := l.fresh()
	if err != nil {
		return custos.WrappedKey{}, err
	}
	k := r.byID[r.current]
	nonce := make([]byte, aead.NonceSize)
	rand.Read(nonce)
	return custos.WrappedKey{KEKID: k.id, Ciphertext: aead.Seal(nil, k.aead, nonce, dek, dekAAD(aad))}, nil
}

// Unwrap opens w for reason, which must name a subject. It returns an error
// wrapping custos.ErrKeyDestroyed when w's KEK is not in the file, even
// after a reread.
func (l *Local) Unwrap(ctx context.Context, w custos.WrappedKey, aad []byte, reason custos.KeyReason) ([]byte, error) {
	if reason.Subject == "" {
		return nil, errors.New("couldn't unwrap key: no reason given (KeyReason.Subject is empty)")
	}
	if !validKEKID(w.KEKID) {
		return nil, errors.New("couldn't unwrap key: malformed key-encryption key id")
	}
	k, err := l.kek(w.KEKID)
	if err != nil {
		return nil, fmt.Errorf("couldn't unwrap key under %s: %w", w.KEKID, err)
	}
	dek, err := aead.Open(k.aead, w.Ciphertext, dekAAD(aad))
	if err != nil {
		return nil, fmt.Errorf("couldn't unwrap key under %s: %w", k.id, err)
	}
	l.counter(reason.Action).Add(1)
	return dek, nil
}

// TokenIndex returns HMAC-SHA256 of token under the token index key of the
// KEK kekID, which HKDF-SHA256 derives from the KEK (no salt, info "custos
// token index v1"). It returns an error wrapping custos.ErrKeyDestroyed when
// the KEK is not in the file, even after a reread: destroying a KEK destroys
// its index key.
func (l *Local) TokenIndex(ctx context.Context, kekID string, token []byte) ([]byte, error) {
	if !validKEKID(kekID) {
		return nil, errors.New("couldn't index token: malformed key-encryption key id")
	}
	k, err := l.kek(kekID)
	if err != nil {
		return nil, fmt.Errorf("couldn't index token under %s: %w", kekID, err)
	}
	m := hmac.New(sha256.New, k.index)
	m.Write(token)
	return m.Sum(nil), nil
}

// kek returns the KEK with the given id, rereading the file first if it
// changed, and once more if the KEK is not in it: the file may have changed
// within the resolution of its stamp. It returns an error wrapping
// custos.ErrKeyDestroyed when the KEK is not in the file.
func (l *Local) kek(id string) (*kek, error) {
	r, err := l.fresh()
	if err != nil {
		return nil, err
	}
	if k := r.byID[id]; k != nil {
		return k, nil
	}
	if r, err = l.reload(true); err != nil {
		return nil, err
	}
	if k := r.byID[id]; k != nil {
		return k, nil
	}
	return nil, custos.ErrKeyDestroyed
}

func (l *Local) counter(a custos.Action) *atomic.Uint64 {
	if c, ok := l.unwraps.Load(a); ok {
		return c.(*atomic.Uint64)
	}
	c, _ := l.unwraps.LoadOrStore(a, new(atomic.Uint64))
	return c.(*atomic.Uint64)
}

// Unwraps returns how many keys Unwrap released since Open, by the action
// of their reason ("" for custodial work such as rotation).
func (l *Local) Unwraps() map[custos.Action]uint64 {
	m := make(map[custos.Action]uint64)
	l.unwraps.Range(func(a, c any) bool {
		m[a.(custos.Action)] = c.(*atomic.Uint64).Load()
		return true
	})
	return m
}

// fresh returns the keyring as the file now is, rereading it if its stamp
// changed since it was last read.
func (l *Local) fresh() (*ring, error) {
	r := l.ring.Load()
	fi, err := statFile(l.path)
	if err != nil {
		return nil, err
	}
	if sameFile(r.fi, fi) {
		return r, nil
	}
	return l.reload(false)
}

// reload rereads the file: always when force is set, otherwise only if no
// other goroutine did so meanwhile.
func (l *Local) reload(force bool) (*ring, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !force {
		r := l.ring.Load()
		if fi, err := statFile(l.path); err == nil && sameFile(r.fi, fi) {
			return r, nil
		}
	}
	r, err := load(l.path)
	if err != nil {
		return nil, err
	}
	if r.jurisdiction != l.jur {
		return nil, fmt.Errorf("keyring %s now serves %s, not %s", l.path, r.jurisdiction, l.jur)
	}
	l.ring.Store(r)
	return r, nil
}

// AddKEK adds a fresh KEK to the keyring and makes it current. The change
// is durable when AddKEK returns.
func (l *Local) AddKEK(ctx context.Context) (id string, err error) {
	err = l.update(ctx, func(r *ring) error {
		k, err := newKEK(r.byID)
		if err != nil {
			return err
		}
		r.keks = append(r.keks, k)
		r.byID[k.id] = k
		r.current = k.id
		id = k.id
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("couldn't add key-encryption key: %w", err)
	}
	return id, nil
}

// DestroyKEKs removes every KEK but keep, which must be current, and
// returns the ids removed. Keys wrapped under them can no longer be
// unwrapped. The change is durable when DestroyKEKs returns.
func (l *Local) DestroyKEKs(ctx context.Context, keep string) (destroyed []string, err error) {
	err = l.update(ctx, func(r *ring) error {
		if r.current != keep {
			return fmt.Errorf("%s is not the current key-encryption key", keep)
		}
		k := r.byID[keep]
		for _, d := range r.keks {
			if d != k {
				destroyed = append(destroyed, d.id)
			}
		}
		r.keks = []*kek{k}
		r.byID = map[string]*kek{keep: k}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("couldn't destroy key-encryption keys: %w", err)
	}
	return destroyed, nil
}

// update applies change to the keyring as it is on disk and writes the
// result, holding the keyring's lock so that no other process changes it
// meanwhile.
func (l *Local) update(ctx context.Context, change func(*ring) error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	unlock, err := lockFile(ctx, l.path+".lock")
	if err != nil {
		return err
	}
	defer unlock()
	r, err := load(l.path)
	if err != nil {
		return err
	}
	if r.jurisdiction != l.jur {
		return fmt.Errorf("keyring %s now serves %s, not %s", l.path, r.jurisdiction, l.jur)
	}
	if err := change(r); err != nil {
		return err
	}
	data, err := r.marshal()
	if err != nil {
		return err
	}
	defer clear(data)
	if err := writeFile(l.path, data, false); err != nil {
		return err
	}
	// Read back what was written, so that the stamp matches the file.
	r, err = load(l.path)
	if err != nil {
		return err
	}
	l.ring.Store(r)
	return nil
}

// String describes the keyring by path, jurisdiction and KEK ids only.
func (l *Local) String() string {
	r := l.ring.Load()
	return fmt.Sprintf("keys.Local{path=%s jurisdiction=%s current=%s keks=%v}", l.path, l.jur, r.current, r.ids())
}

// GoString is String, so that %#v shows no secret either.
func (l *Local) GoString() string { return l.String() }

// newKEK returns a fresh KEK whose id is not in taken.
func newKEK(taken map[string]*kek) (*kek, error) {
	now := time.Now().UTC().Truncate(time.Second)
	var id string
	for {
		var b [4]byte
		rand.Read(b[:])
		id = "kek-" + now.Format("20060102") + "-" + hex.EncodeToString(b[:])
		if taken[id] == nil {
			break
		}
	}
	return makeKEK(id, now, randomSecret(32))
}

func randomSecret(n int) secret {
	b := make(secret, n)
	rand.Read(b)
	return b
}

// secret holds key material. It prints as REDACTED whatever the verb.
type secret []byte

func (secret) Format(f fmt.State, verb rune) { f.Write([]byte("REDACTED")) }
func (secret) String() string                { return "REDACTED" }
func (secret) GoString() string              { return "REDACTED" }
