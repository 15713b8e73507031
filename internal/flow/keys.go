package flow

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
)

// MaxCursor caps the length of a cursor a client may send.
const MaxCursor = 512

// ErrCursor is returned by OpenCursor for a cursor that is not one Cursor
// made for the same flow under the same key.
var ErrCursor = errors.New("invalid cursor")

// Keys seals cursors and decides sampling. Both keys are derived from the
// deployment's token root key and never leave this type.
type Keys struct {
	cursor cipher.AEAD
	sample []byte
}

// NewKeys derives the keys of flows from root, the deployment's token root
// key (at least 32 bytes).
func NewKeys(root []byte) (*Keys, error) {
	if len(root) < 32 {
		return nil, errors.New("couldn't derive flow keys: root key shorter than 32 bytes")
	}
	ck, err := hkdf.Key(sha256.New, root, nil, "custos flow cursor v1", 32)
	if err != nil {
		return nil, fmt.Errorf("couldn't derive flow keys: %w", err)
	}
	sk, err := hkdf.Key(sha256.New, root, nil, "custos flow sample v1", 32)
	if err != nil {
		return nil, fmt.Errorf("couldn't derive flow keys: %w", err)
	}
	block, err := aes.NewCipher(ck)
	if err != nil {
		return nil, fmt.Errorf("couldn't derive flow keys: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("couldn't derive flow keys: %w", err)
	}
	return &Keys{cursor: aead, sample: sk}, nil
}

func (k *Keys) String() string { return "flow.Keys{redacted}" }

func cursorAAD(flow string) []byte { return []byte("custos flow cursor v1\x00" + flow) }

// Cursor returns the cursor that resumes an export of flow after the
// record id last: base64url (no padding) of a random nonce and last sealed
// under the cursor key, bound to flow. The empty cursor starts at the
// beginning.
func (k *Keys) Cursor(flow, last string) string {
	nonce := make([]byte, k.cursor.NonceSize(), k.cursor.NonceSize()+len(last)+k.cursor.Overhead())
	rand.Read(nonce)
	return base64.RawURLEncoding.EncodeToString(k.cursor.Seal(nonce, nonce, []byte(last), cursorAAD(flow)))
}

// OpenCursor returns the record id a cursor of flow resumes after; "" for
// the empty cursor. It returns ErrCursor for anything else.
func (k *Keys) OpenCursor(flow, c string) (string, error) {
	if c == "" {
		return "", nil
	}
	if len(c) > MaxCursor {
		return "", ErrCursor
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) < k.cursor.NonceSize()+k.cursor.Overhead() {
		return "", ErrCursor
	}
	n := k.cursor.NonceSize()
	last, err := k.cursor.Open(nil, b[:n], b[n:], cursorAAD(flow))
	if err != nil {
		return "", ErrCursor
	}
	return string(last), nil
}

// Sampled reports whether the record id of flow is kept as a sample at
// rate: whether HMAC-SHA256 under the sample key of flow and id, read as
// a fraction of 2^64, is below rate. The same record of the same flow is
// always sampled or never.
func (k *Keys) Sampled(flow, id string, rate float64) bool {
	if rate <= 0 {
		return false
	}
	if rate >= 1 {
		return true
	}
	m := hmac.New(sha256.New, k.sample)
	m.Write([]byte(flow))
	m.Write([]byte{0})
	m.Write([]byte(id))
	x := binary.BigEndian.Uint64(m.Sum(nil))
	return float64(x) < rate*(1<<64)
}
