package keys

import (
	"crypto/aes"
	"crypto/cipher"
	"errors"
)

// nonceSize is the size of an AES-GCM nonce, chosen at random per seal.
const nonceSize = 12

// dekAADPrefix separates wrapped data keys from every other use of a KEK.
const dekAADPrefix = "custos-dek-v1"

var errOpen = errors.New("message authentication failed")

// newAEAD returns AES-256-GCM under key.
func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != 32 {
		return nil, errors.New("key is not 32 bytes")
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// seal returns nonce || AES-GCM(plaintext, aad). It is the one place a KEK
// encrypts; callers pass a fresh random nonce, tests a fixed one.
func seal(a cipher.AEAD, nonce, plaintext, aad []byte) []byte {
	out := make([]byte, 0, len(nonce)+len(plaintext)+a.Overhead())
	out = append(out, nonce...)
	return a.Seal(out, nonce, plaintext, aad)
}

// open reverses seal.
func open(a cipher.AEAD, sealed, aad []byte) ([]byte, error) {
	if len(sealed) < nonceSize+a.Overhead() {
		return nil, errOpen
	}
	p, err := a.Open(nil, sealed[:nonceSize], sealed[nonceSize:], aad)
	if err != nil {
		return nil, errOpen
	}
	return p, nil
}

// dekAAD returns the associated data of a wrapped data key:
// "custos-dek-v1" || 0 || the caller's aad.
func dekAAD(aad []byte) []byte {
	b := make([]byte, 0, len(dekAADPrefix)+1+len(aad))
	b = append(b, dekAADPrefix...)
	b = append(b, 0)
	return append(b, aad...)
}
