package custos

import "context"

// KeyReason says why a data key is unwrapped. Every unwrap carries one, so a
// key service can log it or refuse it, as Key Access Justifications do.
type KeyReason struct {
	Action    Action  // the action the key is needed for; "" for custodial work such as rotation
	Principal string  // the id of the principal on whose behalf the key is unwrapped
	Purpose   Purpose // the stated purpose of the request
	Subject   string  // the subject whose key it is
}

// Keyring holds a jurisdiction's key-encryption keys (KEKs). It wraps
// subjects' data keys under the current KEK and unwraps them under whichever
// KEK wrapped them, as long as that KEK has not been destroyed.
//
// Implementations are safe for concurrent use. A KEK never leaves the
// Keyring, nor does any key derived from it; a data key leaves it only as
// the return value of Unwrap. aad binds a wrapped key to its subject:
// unwrapping with another aad fails.
//
// Each KEK has a token index key, derived from it and destroyed with it,
// under which TokenIndex hashes tokens: a token ref indexed under a KEK
// since destroyed can no longer be matched to a token.
type Keyring interface {
	// Wrap seals dek under the current KEK.
	Wrap(ctx context.Context, dek, aad []byte) (WrappedKey, error)

	// Unwrap opens w for the given reason. It returns an error wrapping
	// ErrKeyDestroyed when w's KEK is no longer held.
	Unwrap(ctx context.Context, w WrappedKey, aad []byte, reason KeyReason) ([]byte, error)

	// Current returns the id of the KEK Wrap uses.
	Current() string

	// KEKs returns the ids of the KEKs held, the current one first.
	KEKs() []string

	// TokenIndex returns HMAC-SHA256 of token under the token index key of
	// the KEK kekID: the key HKDF-SHA256 derives from the KEK with info
	// "custos token index v1". It is deterministic per KEK. It returns an
	// error wrapping ErrKeyDestroyed when the KEK is no longer held.
	TokenIndex(ctx context.Context, kekID string, token []byte) ([]byte, error)
}
