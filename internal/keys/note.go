package keys

import (
	"crypto/ed25519"
	"fmt"

	"golang.org/x/mod/sumdb/note"
)

// Signer returns a signer of C2SP signed notes under the custodian's
// Ed25519 key, with the given key name, such as "custos-US-custodian".
func (l *Local) Signer(name string) (note.Signer, error) {
	v, err := l.Verifier(name)
	if err != nil {
		return nil, err
	}
	return &signer{name: name, hash: v.KeyHash(), key: ed25519.NewKeyFromSeed(l.ring.Load().seed)}, nil
}

// Verifier returns the verifier of notes signed by Signer(name).
func (l *Local) Verifier(name string) (note.Verifier, error) {
	v, _, err := l.verifier(name)
	return v, err
}

// VerifierKey returns the verifier key of Signer(name) in the note format
// (name+hash+key), for publishing.
func (l *Local) VerifierKey(name string) (string, error) {
	_, vkey, err := l.verifier(name)
	return vkey, err
}

// verifier returns the verifier of Signer(name) and its key. Parsing the
// key checks name, which NewEd25519VerifierKey does not.
func (l *Local) verifier(name string) (note.Verifier, string, error) {
	pub := ed25519.NewKeyFromSeed(l.ring.Load().seed).Public().(ed25519.PublicKey)
	vkey, err := note.NewEd25519VerifierKey(name, pub)
	if err != nil {
		return nil, "", fmt.Errorf("couldn't make verifier key %q: %w", name, err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, "", fmt.Errorf("couldn't make verifier key %q: %w", name, err)
	}
	return v, vkey, nil
}

// signer signs notes with an Ed25519 key. It never prints its key.
type signer struct {
	name string
	hash uint32
	key  ed25519.PrivateKey
}

func (s *signer) Name() string                    { return s.name }
func (s *signer) KeyHash() uint32                 { return s.hash }
func (s *signer) Sign(msg []byte) ([]byte, error) { return ed25519.Sign(s.key, msg), nil }
func (s *signer) String() string                  { return fmt.Sprintf("keys.signer{%s+%08x}", s.name, s.hash) }
func (s *signer) GoString() string                { return s.String() }
