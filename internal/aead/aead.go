// Package aead is the one authenticated encryption of custos: AES-256-GCM
// with a 96-bit nonce written before the ciphertext. The keyring wraps data
// keys with it and the vault seals records with it.
//
// Guarantees: Open returns plaintext only when the ciphertext, its nonce and
// the associated data are exactly what Seal produced under the same key;
// every failure is ErrOpen, whatever its cause. Callers must pass a fresh
// random nonce to Seal for each message (a fixed one only in tests of
// published vectors): a nonce used twice under one key breaks GCM.
package aead

import (
	"crypto/aes"
	"crypto/cipher"
	"errors"
)

// KeySize is the size of a key: AES-256.
const KeySize = 32

// NonceSize is the size of the nonce written before each ciphertext.
const NonceSize = 12

// ErrOpen is returned by Open for any ciphertext that does not authenticate.
var ErrOpen = errors.New("message authentication failed")

// New returns AES-256-GCM under key, which must be KeySize bytes.
func New(key []byte) (cipher.AEAD, error) {
	if len(key) != KeySize {
		return nil, errors.New("key is not 32 bytes")
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// Seal appends nonce || AES-GCM(plaintext, aad) to dst and returns it.
func Seal(dst []byte, a cipher.AEAD, nonce, plaintext, aad []byte) []byte {
	dst = append(dst, nonce...)
	return a.Seal(dst, nonce, plaintext, aad)
}

// Open reverses Seal.
func Open(a cipher.AEAD, sealed, aad []byte) ([]byte, error) {
	if len(sealed) < NonceSize+a.Overhead() {
		return nil, ErrOpen
	}
	p, err := a.Open(nil, sealed[:NonceSize], sealed[NonceSize:], aad)
	if err != nil {
		return nil, ErrOpen
	}
	return p, nil
}
