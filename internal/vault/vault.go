// Package vault seals protected fields under per-subject data keys and
// manages those keys: it makes them, unwraps them for a stated reason,
// rotates the key-encryption keys (KEKs) that wrap them, indexes and seals
// the token refs that let tokens be detokenized, and signs receipts of
// erasure.
//
// Guarantees:
//
//   - Each subject has its own random 256-bit data key, stored only wrapped
//     by the Keyring, bound to the jurisdiction and the subject's id: a
//     wrapped key moved to another subject does not unwrap.
//   - Sealed fields are AES-256-GCM with a fresh random 96-bit nonce per
//     seal, bound to the jurisdiction, subject, collection and record id:
//     sealed bytes changed in any way, or moved to another record, do not
//     open. The format is 0x01 || nonce || ciphertext || tag.
//   - Token refs hold no token: IndexToken and TokenIndexes index a token by
//     HMAC-SHA256 under a key the Keyring derives from a KEK and never
//     releases, and SealTokenRef seals the token under the subject's data
//     key as 0x01 || nonce || ciphertext || tag, bound to the jurisdiction,
//     subject, audience, collection, record and field (associated data
//     "custos-token-ref-v1", apart from that of sealed fields).
//   - Erasure is crypto-shredding: deleting a subject deletes its wrapped key
//     and its token refs, and Rotate then indexes every remaining ref again
//     and destroys every KEK but a new one, so that the copies of the wrapped
//     key left in backups and replicas no longer unwrap, and the copies of
//     the refs no longer match any token.
//   - No data key is ever returned but inside a DataKey, which prints
//     nothing secret.
//
// What it trusts: the Keyring to hold the KEKs and to refuse what it must
// (custos.Keyring), and the Store to be linearizable (custos.Store). The
// Store sees ciphertext only.
package vault

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/custos/custos"
	"github.com/custos/custos/internal/aead"
)

// Vault makes and unwraps the data keys of one jurisdiction's subjects. It
// is safe for concurrent use.
type Vault struct {
	k            custos.Keyring
	jurisdiction string
}

// New returns a Vault whose data keys k wraps, for subjects of jurisdiction.
func New(k custos.Keyring, jurisdiction string) *Vault {
	return &Vault{k: k, jurisdiction: jurisdiction}
}

// NewKey makes a fresh 32-byte data key for the subject with the given id
// and returns it wrapped under the Keyring's current KEK.
func (v *Vault) NewKey(ctx context.Context, subject string) (custos.WrappedKey, error) {
	if subject == "" {
		return custos.WrappedKey{}, errors.New("couldn't make data key: empty subject id")
	}
	dek := make([]byte, 32)
	rand.Read(dek)
	defer clear(dek)
	w, err := v.k.Wrap(ctx, dek, keyAAD(v.jurisdiction, subject))
	if err != nil {
		return custos.WrappedKey{}, fmt.Errorf("couldn't wrap data key: %w", err)
	}
	return w, nil
}

// Key unwraps s's data key for reason, which must name s. It returns an
// error wrapping custos.ErrKeyDestroyed when the KEK that wrapped the key is
// destroyed. That happens to a live subject read just before a rotation
// rewrapped its key and destroyed the old KEK: read the subject again and
// retry once before concluding anything.
func (v *Vault) Key(ctx context.Context, s custos.StoredSubject, reason custos.KeyReason) (*DataKey, error) {
	if s.Residency != v.jurisdiction {
		return nil, custos.Errorf(custos.CodeWrongJurisdiction, "subject resides in another jurisdiction")
	}
	if reason.Subject != s.ID {
		return nil, errors.New("couldn't unwrap data key: the reason names another subject")
	}
	dek, err := v.k.Unwrap(ctx, s.Key, keyAAD(v.jurisdiction, s.ID), reason)
	if err != nil {
		return nil, fmt.Errorf("couldn't unwrap data key: %w", err)
	}
	defer clear(dek)
	return newDataKey(dek, v.jurisdiction, s.ID)
}

// DataKey is a subject's unwrapped data key. It seals and opens that
// subject's protected fields, is safe for concurrent use, and prints
// nothing secret.
type DataKey struct {
	aead         cipher.AEAD
	jurisdiction string
	subject      string
}

func newDataKey(dek []byte, jurisdiction, subject string) (*DataKey, error) {
	if len(dek) != 32 {
		return nil, errors.New("couldn't use data key: not 32 bytes")
	}
	a, err := aead.New(dek)
	if err != nil {
		return nil, fmt.Errorf("couldn't use data key: %w", err)
	}
	return &DataKey{aead: a, jurisdiction: jurisdiction, subject: subject}, nil
}

// sealVersion is the first byte of every sealed value.
const sealVersion = 1

// Seal encrypts plaintext, the protected fields of the given record, as
// 0x01 || nonce || ciphertext || tag.
func (k *DataKey) Seal(collection, record string, plaintext []byte) ([]byte, error) {
	return k.seal(sealVersion, plaintext, k.recordAAD(collection, record)), nil
}

// Open decrypts what Seal returned for the same collection and record. Any
// change to sealed, or another collection, record, subject or jurisdiction,
// makes it fail.
func (k *DataKey) Open(collection, record string, sealed []byte) ([]byte, error) {
	return k.open("sealed fields", sealVersion, sealed, k.recordAAD(collection, record))
}

// seal returns version || nonce || ciphertext || tag: plaintext sealed
// under k with aad and a fresh random nonce.
func (k *DataKey) seal(version byte, plaintext, aad []byte) []byte {
	nonce := make([]byte, aead.NonceSize)
	rand.Read(nonce)
	out := make([]byte, 1, 1+aead.NonceSize+len(plaintext)+k.aead.Overhead())
	out[0] = version
	return aead.Seal(out, k.aead, nonce, plaintext, aad)
}

// open reverses seal. what names the sealed value in errors.
func (k *DataKey) open(what string, version byte, sealed, aad []byte) ([]byte, error) {
	if len(sealed) < 1 || sealed[0] != version {
		return nil, fmt.Errorf("couldn't open %s: unknown format", what)
	}
	p, err := aead.Open(k.aead, sealed[1:], aad)
	if err != nil {
		return nil, fmt.Errorf("couldn't open %s: %w", what, err)
	}
	return p, nil
}

// String hides the key and whose it is.
func (k DataKey) String() string { return "vault.DataKey{REDACTED}" }

// GoString is String.
func (k DataKey) GoString() string { return k.String() }

// Format prints String whatever the verb.
func (k DataKey) Format(f fmt.State, verb rune) { f.Write([]byte(k.String())) }

// recordAAD is "custos-record-v1" || 0 || version || the jurisdiction,
// subject, collection and record, each length-prefixed.
func (k *DataKey) recordAAD(collection, record string) []byte {
	b := make([]byte, 0, 32+len(k.jurisdiction)+len(k.subject)+len(collection)+len(record))
	b = append(b, "custos-record-v1\x00"...)
	b = append(b, sealVersion)
	return appendFields(b, k.jurisdiction, k.subject, collection, record)
}

// keyAAD is the aad a subject's data key is wrapped with: the jurisdiction
// and the subject id, each length-prefixed. The Keyring adds its own domain.
func keyAAD(jurisdiction, subject string) []byte {
	return appendFields(nil, jurisdiction, subject)
}

func appendFields(b []byte, fields ...string) []byte {
	for _, f := range fields {
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	return b
}
