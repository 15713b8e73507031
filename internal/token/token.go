// Package token makes the pseudonyms and masks custos releases in place of
// protected values.
//
// A Tokenizer holds one root key and derives from it, with HKDF-SHA256, two
// keys per audience (the party tokens are handed to, such as "operator" or
// "audit"):
//
//	mac = HKDF-SHA256(root, salt nil, info "custos token audience v1" || 0 || "hmac" || 0 || audience, 32 bytes)
//	fpe = HKDF-SHA256(root, salt nil, info "custos token audience v1" || 0 || "ff1" || 0 || audience, 32 bytes)
//
// Token makes "tk_" + base64url (no padding) of the first 16 bytes of
// HMAC-SHA256(mac, "custos-token-v1" || 0 || type || 0 || canonical value),
// except for phone numbers of 6 to ff1.MaxLen digits, whose digits are
// encrypted with FF1 (radix 10, AES-256 key fpe, tweak "phone") in place.
// Pseudonym makes "ps_" + base64url of the first 16 bytes of
// HMAC-SHA256(mac, "custos-pseudonym-v1" || 0 || id).
//
// The package guarantees that:
//
//   - Tokens are deterministic per audience: under one root key, the same
//     audience, type and value give the same token, in every call, process
//     and restart, so an audience can join its own tokens.
//   - Tokens of different audiences cannot be joined without the root key:
//     each audience's keys are independent pseudorandom keys, so relating
//     two audiences' tokens is as hard as breaking HMAC-SHA256 or AES.
//   - The root key never leaves the Tokenizer: no method returns it or a key
//     derived from it, and neither appears in an error or in a formatted
//     Tokenizer.
//   - Masks are lossy: Mask keeps a fixed, small part of a value (the first
//     character, the domain of an email, the last two digits of a phone,
//     the year of a date) and never renders the whole of a value of four or
//     more characters.
//
// It does not guarantee more. Tokens reveal equality within an audience.
// Whoever can have values tokenized for an audience can test guesses
// against that audience's tokens, which for values from a small set (a
// bool, a birth date, a phone number) finds them: such values are guarded by
// who may tokenize, not by the token. Phone tokens are shaped like phone
// numbers and may be someone's real number. Masks use no key: anyone can
// check a guess against a mask.
//
// The root key is trusted to be 32 uniformly random bytes that only the
// custodian holds.
package token

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/custos/custos"
	"github.com/custos/custos/internal/token/ff1"
)

const (
	// RootKeySize is the size of a Tokenizer's root key.
	RootKeySize = 32
	// MaxAudienceLen is the longest audience name, in bytes.
	MaxAudienceLen = 64

	// maxCached bounds how many audiences' keys a Tokenizer keeps (give or
	// take the number of goroutines racing to add one); the keys of further
	// audiences are derived on every call.
	maxCached = 1024

	kdfInfo         = "custos token audience v1"
	tokenDomain     = "custos-token-v1"
	pseudonymDomain = "custos-pseudonym-v1"
	tokenPrefix     = "tk_"
	pseudonymPrefix = "ps_"
	tokenBytes      = 16
)

var errAudience = fmt.Errorf("token: audience must be 1 to %d bytes", MaxAudienceLen)

// Tokenizer makes the tokens and pseudonyms of every audience from one root
// key. It is safe for concurrent use.
type Tokenizer struct {
	root   []byte
	keys   sync.Map // audience → *audienceKeys
	cached atomic.Int64
}

// audienceKeys are the keys of one audience.
type audienceKeys struct {
	mac  []byte
	macs sync.Pool   // *macState under mac
	fpe  *ff1.Cipher // radix 10
}

// New returns a Tokenizer with the given root key, which must be
// RootKeySize bytes. It keeps a copy of root.
func New(root []byte) (*Tokenizer, error) {
	if len(root) != RootKeySize {
		return nil, fmt.Errorf("token: root key is %d bytes, want %d", len(root), RootKeySize)
	}
	return &Tokenizer{root: append([]byte(nil), root...)}, nil
}

// String describes t without its keys.
func (t *Tokenizer) String() string { return "token.Tokenizer{keys redacted}" }

// GoString describes t without its keys.
func (t *Tokenizer) GoString() string { return t.String() }

// ValidAudience returns an error unless audience is a name Token and
// Pseudonym accept: 1 to MaxAudienceLen bytes.
func ValidAudience(audience string) error {
	if audience == "" || len(audience) > MaxAudienceLen {
		return errAudience
	}
	return nil
}

// keysFor returns the keys of audience, deriving them on first use.
func (t *Tokenizer) keysFor(audience string) (*audienceKeys, error) {
	if k, ok := t.keys.Load(audience); ok {
		return k.(*audienceKeys), nil
	}
	if err := ValidAudience(audience); err != nil {
		return nil, err
	}
	k, err := t.derive(audience)
	if err != nil {
		return nil, err
	}
	if t.cached.Load() < maxCached {
		if prev, loaded := t.keys.LoadOrStore(audience, k); loaded {
			return prev.(*audienceKeys), nil
		}
		t.cached.Add(1)
	}
	return k, nil
}

func (t *Tokenizer) derive(audience string) (*audienceKeys, error) {
	mac, err := hkdf.Key(sha256.New, t.root, nil, kdfInfo+"\x00hmac\x00"+audience, 32)
	if err != nil {
		return nil, errors.New("token: couldn't derive audience keys")
	}
	key, err := hkdf.Key(sha256.New, t.root, nil, kdfInfo+"\x00ff1\x00"+audience, 32)
	if err != nil {
		return nil, errors.New("token: couldn't derive audience keys")
	}
	fpe, err := ff1.New(key, 10)
	if err != nil {
		return nil, fmt.Errorf("token: couldn't derive audience keys: %w", err)
	}
	return &audienceKeys{mac: mac, fpe: fpe}, nil
}

// Token returns the deterministic pseudonym of v, a value of type typ, for
// audience. v has the Go type custos.Record documents for typ: string for
// id, string, email, phone, date, timestamp and ip; int64, float64, bool,
// []byte for int, float, bool and bytes.
//
// A phone number with 6 to ff1.MaxLen ASCII digits gets a token of its own
// shape: every digit is replaced by the corresponding digit of the FF1
// encryption of all its digits, and every other byte stays in place, so
// "+1 (555) 010-9999" becomes something like "+4 (812) 337-0021". Every
// other value, other phone numbers included, gets "tk_" and 22 base64url
// characters, computed from a canonical form of v: emails are lower-cased,
// IP addresses written as net/netip writes them (IPv4-mapped IPv6 addresses
// as IPv4), integers in decimal, floats by strconv 'g' with the shortest
// precision, bools as "true" or "false", and the rest as given.
//
// Token returns an error when audience is not valid, when v has the wrong
// Go type for typ, and, as a *custos.Error with code invalid_field, when v
// is not an IP address of type ip or a finite float. Errors hold no part of
// v.
func (t *Tokenizer) Token(audience string, typ custos.FieldType, v any) (string, error) {
	k, err := t.keysFor(audience)
	if err != nil {
		return "", err
	}
	if typ == custos.TypePhone {
		s, ok := v.(string)
		if !ok {
			return "", wrongType(typ, v)
		}
		if tok, ok, err := k.phone(s); ok || err != nil {
			return tok, err
		}
	}
	st := k.macState()
	msg := append(st.msg[:0], tokenDomain+"\x00"...)
	msg = append(msg, typ...)
	msg, err = appendCanonical(append(msg, 0), typ, v)
	if err != nil {
		k.release(st, msg)
		return "", err
	}
	return k.sum(st, tokenPrefix, msg), nil
}

// Pseudonym returns a stable pseudonym of the identifier id, such as a
// subject id, for audience: "ps_" and 22 base64url characters. It differs
// from the Token of the same id for the same audience.
//
// Audiences of pseudonyms are names custos chooses, such as "audit":
// Pseudonym panics if audience is not valid (see ValidAudience).
func (t *Tokenizer) Pseudonym(audience, id string) string {
	k, err := t.keysFor(audience)
	if err != nil {
		panic(err)
	}
	st := k.macState()
	msg := append(st.msg[:0], pseudonymDomain+"\x00"...)
	return k.sum(st, pseudonymPrefix, append(msg, id...))
}

// macState is an HMAC under an audience's key with a buffer for its
// message, kept in a pool between calls.
type macState struct {
	h   hash.Hash
	msg []byte
}

// maxPooledMsg is the largest message buffer returned to the pool.
const maxPooledMsg = 1 << 10

// macState returns an HMAC state under k.mac from the pool.
func (k *audienceKeys) macState() *macState {
	if st, ok := k.macs.Get().(*macState); ok {
		return st
	}
	return &macState{h: hmac.New(sha256.New, k.mac)}
}

// release returns st to the pool with msg, its buffer, wiped: values are
// not left behind in the pool.
func (k *audienceKeys) release(st *macState, msg []byte) {
	clear(msg)
	if cap(msg) <= maxPooledMsg {
		st.msg = msg
		k.macs.Put(st)
	}
}

// sum returns prefix and the base64url of the first tokenBytes of
// HMAC-SHA256(k.mac, msg), and releases st.
func (k *audienceKeys) sum(st *macState, prefix string, msg []byte) string {
	var mac [sha256.Size]byte
	st.h.Write(msg)
	st.h.Sum(mac[:0])
	st.h.Reset()
	k.release(st, msg)
	var out [len(tokenPrefix) + 22]byte
	copy(out[:], prefix)
	base64.RawURLEncoding.Encode(out[len(prefix):], mac[:tokenBytes])
	return string(out[:])
}

// phone returns the FF1 token of the phone number s, or ok false when s has
// too few or too many digits for FF1.
func (k *audienceKeys) phone(s string) (tok string, ok bool, err error) {
	digits := make([]uint16, 0, len(s))
	for i := 0; i < len(s); i++ {
		if isDigit(s[i]) {
			digits = append(digits, uint16(s[i]-'0'))
		}
	}
	if len(digits) < k.fpe.MinLen() || len(digits) > ff1.MaxLen {
		return "", false, nil
	}
	enc, err := k.fpe.Encrypt([]byte(custos.TypePhone), digits)
	if err != nil {
		return "", false, fmt.Errorf("token: couldn't encrypt phone number: %w", err)
	}
	out := []byte(s)
	for i := range out {
		if isDigit(out[i]) {
			out[i], enc = '0'+byte(enc[0]), enc[1:]
		}
	}
	return string(out), true, nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// appendCanonical appends to msg the form of v that Token authenticates.
func appendCanonical(msg []byte, typ custos.FieldType, v any) ([]byte, error) {
	switch typ {
	case custos.TypeID, custos.TypeString, custos.TypePhone, custos.TypeDate, custos.TypeTimestamp:
		if s, ok := v.(string); ok {
			return append(msg, s...), nil
		}
	case custos.TypeEmail:
		if s, ok := v.(string); ok {
			return appendLower(msg, s), nil
		}
	case custos.TypeIP:
		if s, ok := v.(string); ok {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return msg, custos.Errorf(custos.CodeInvalidField, "value is not an IP address")
			}
			return a.Unmap().AppendTo(msg), nil
		}
	case custos.TypeInt:
		if n, ok := v.(int64); ok {
			return strconv.AppendInt(msg, n, 10), nil
		}
	case custos.TypeFloat:
		if f, ok := v.(float64); ok {
			if math.IsNaN(f) || math.IsInf(f, 0) {
				return msg, custos.Errorf(custos.CodeInvalidField, "value is not a finite number")
			}
			return strconv.AppendFloat(msg, f, 'g', -1, 64), nil
		}
	case custos.TypeBool:
		if b, ok := v.(bool); ok {
			return strconv.AppendBool(msg, b), nil
		}
	case custos.TypeBytes:
		if b, ok := v.([]byte); ok {
			return append(msg, b...), nil
		}
	default:
		return msg, unknownType(typ)
	}
	return msg, wrongType(typ, v)
}

// appendLower appends s lower-cased as strings.ToLower does, without
// allocating when s is ASCII.
func appendLower(msg []byte, s string) []byte {
	start := len(msg)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			return append(msg[:start], strings.ToLower(s)...)
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		msg = append(msg, c)
	}
	return msg
}

// goTypes names the Go type of each field type's values.
var goTypes = map[custos.FieldType]string{
	custos.TypeInt:   "int64",
	custos.TypeFloat: "float64",
	custos.TypeBool:  "bool",
	custos.TypeBytes: "[]byte",
}

func wrongType(typ custos.FieldType, v any) error {
	want, ok := goTypes[typ]
	if !ok {
		want = "string"
	}
	return fmt.Errorf("token: %s value is a %T, want %s", typ, v, want)
}

func unknownType(typ custos.FieldType) error {
	return fmt.Errorf("token: unknown field type %q", typ)
}
