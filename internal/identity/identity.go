// Package identity turns credentials into principals: bearer JWTs signed
// with Ed25519 (alg EdDSA) by the issuers a deployment configures, and, for
// mutual TLS, client certificates the TLS stack has already verified.
//
// Guarantees of Verify:
//
//   - A principal comes only from a token whose signature verifies under the
//     public key configured for the token's iss claim. The alg header must be
//     EdDSA: "none", HMAC with a public key as secret and every other
//     algorithm are refused before any key is looked at.
//   - The token's aud holds the configured audience; exp is present and not
//     past, nbf and iat are not in the future (each within the leeway), and
//     exp - iat is at most MaxTTL.
//   - Every claim custos uses is checked for shape: sub is 1–128 bytes of
//     printable ASCII, org is one the config allows, loc is two upper-case
//     letters, roles are at most 32 names of [a-z0-9_-]{1,64}, vetted is a
//     bool. Roles are returned sorted and without duplicates.
//   - Input is bounded: tokens over MaxTokenSize bytes are refused unread.
//   - Every failure wraps ErrUnauthenticated and a *custos.Error with code
//     CodeUnauthenticated. Messages say why a token was refused, never what
//     it or its claims held, so they can be logged and shown to the caller.
//
// The package trusts the configured issuer keys and the clock in Config.Now.
// Replayed tokens are valid until they expire, which is why MaxTTL bounds
// their life. A Verifier remembers tokens that passed every check (by the
// SHA-256 of their exact text, at most 16,384 of them) until their exp, so
// that a caller presenting the same token again costs a hash, not a
// signature check; a remembered token is refused once its exp has passed,
// without the leeway its first check allowed.
package identity

import (
	"bytes"
	"cmp"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/custos/custos"
	"github.com/golang-jwt/jwt/v5"
)

// ErrUnauthenticated is wrapped by every error of Verify, BearerToken and
// PrincipalFromCert: the credential does not name a principal.
var ErrUnauthenticated = errors.New("unauthenticated")

// MaxTokenSize is the largest token, in bytes, that Verify reads.
const MaxTokenSize = 8 << 10

// Defaults of Config.
const (
	DefaultLeeway = 30 * time.Second
	DefaultMaxTTL = 24 * time.Hour
)

// Issuer is an issuer of tokens custos accepts.
type Issuer struct {
	Name string            // the iss claim of its tokens
	Key  ed25519.PublicKey // the key its tokens are signed with
}

// Config configures a Verifier.
type Config struct {
	Audience string        // the aud a token must hold
	Issuers  []Issuer      // the issuers whose tokens are accepted
	Orgs     []string      // the org claims accepted
	Leeway   time.Duration // clock skew allowed on exp, nbf and iat, at most 5m; DefaultLeeway when zero
	MaxTTL   time.Duration // longest exp - iat accepted; DefaultMaxTTL when zero
	Now      func() time.Time
}

// Verifier verifies bearer tokens. It is safe for concurrent use.
type Verifier struct {
	issuers map[string]*issuer
	orgs    []string
	maxTTL  time.Duration
	now     func() time.Time

	// verified remembers tokens that passed every check, keyed by the
	// SHA-256 of the exact token text, until their exp: a caller presenting
	// the same token again is not made to pay for another signature check.
	mu       sync.Mutex
	verified map[[sha256.Size]byte]verifiedToken
}

// verifiedCacheSize bounds the tokens remembered as verified.
const verifiedCacheSize = 16384

type verifiedToken struct {
	p   custos.Principal
	exp time.Time
}

type issuer struct {
	key    ed25519.PublicKey
	parser *jwt.Parser
}

// NewVerifier returns a Verifier for c, or an error if c is incomplete or
// inconsistent.
func NewVerifier(c Config) (*Verifier, error) {
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("invalid identity config: %w", err)
	}
	v := &Verifier{
		issuers:  make(map[string]*issuer, len(c.Issuers)),
		orgs:     slices.Clone(c.Orgs),
		maxTTL:   cmp.Or(c.MaxTTL, DefaultMaxTTL),
		now:      c.Now,
		verified: make(map[[sha256.Size]byte]verifiedToken),
	}
	if v.now == nil {
		v.now = time.Now
	}
	for _, is := range c.Issuers {
		v.issuers[is.Name] = &issuer{
			key: slices.Clone(is.Key),
			parser: jwt.NewParser(
				jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
				jwt.WithAudience(c.Audience),
				jwt.WithIssuer(is.Name),
				jwt.WithExpirationRequired(),
				jwt.WithIssuedAt(),
				jwt.WithLeeway(cmp.Or(c.Leeway, DefaultLeeway)),
				jwt.WithTimeFunc(v.now),
				jwt.WithStrictDecoding(),
			),
		}
	}
	return v, nil
}

func (c *Config) check() error {
	switch {
	case c.Audience == "":
		return errors.New("no audience")
	case len(c.Issuers) == 0:
		return errors.New("no issuers")
	case len(c.Orgs) == 0:
		return errors.New("no orgs")
	case c.Leeway < 0 || c.Leeway > 5*time.Minute:
		return errors.New("leeway must be between 0 and 5m")
	case c.MaxTTL < 0:
		return errors.New("negative max TTL")
	}
	seen := map[string]bool{}
	for _, is := range c.Issuers {
		switch {
		case is.Name == "":
			return errors.New("issuer without a name")
		case seen[is.Name]:
			return fmt.Errorf("issuer %q listed twice", is.Name)
		case len(is.Key) != ed25519.PublicKeySize:
			return fmt.Errorf("issuer %q: want an Ed25519 public key", is.Name)
		}
		seen[is.Name] = true
	}
	for _, o := range c.Orgs {
		if o == "" {
			return errors.New("empty org")
		}
	}
	return nil
}

// claims are the claims of a custos token.
type claims struct {
	jwt.RegisteredClaims
	Org    string   `json:"org"`
	Loc    string   `json:"loc"`
	Roles  []string `json:"roles,omitempty"`
	Vetted bool     `json:"vetted,omitempty"`
}

// Verify returns the principal of a valid token. Every failure returns an
// error wrapping ErrUnauthenticated; see the package documentation.
func (v *Verifier) Verify(token string) (custos.Principal, error) {
	switch {
	case token == "":
		return custos.Principal{}, unauthenticated("missing token")
	case len(token) > MaxTokenSize:
		return custos.Principal{}, unauthenticated("token larger than %d bytes", MaxTokenSize)
	}
	h := sha256.Sum256([]byte(token))
	if p, ok := v.remembered(h); ok {
		return p, nil
	}
	name, err := peekIssuer(token)
	if err != nil {
		return custos.Principal{}, err
	}
	is, ok := v.issuers[name]
	if !ok {
		return custos.Principal{}, unauthenticated("unknown issuer")
	}
	var c claims
	_, err = is.parser.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		if t.Method != jwt.SigningMethodEdDSA {
			return nil, errors.New("unexpected signing method")
		}
		if _, ok := t.Header["crit"]; ok {
			return nil, errors.New("critical header extensions are not supported")
		}
		return is.key, nil
	})
	if err != nil {
		return custos.Principal{}, parseError(err, &c)
	}
	if err := v.checkLifetime(&c); err != nil {
		return custos.Principal{}, err
	}
	p, err := checkPrincipal(custos.Principal{
		ID: c.Subject, Issuer: c.Issuer, Org: c.Org, Loc: c.Loc, Roles: c.Roles, Vetted: c.Vetted,
	}, v.orgs)
	if err != nil {
		return custos.Principal{}, err
	}
	v.remember(h, p, c.ExpiresAt.Time)
	return p, nil
}

// peekIssuer returns the iss claim of a token before it is verified, to
// choose the key to verify it with. Nothing else of the token is trusted.
func peekIssuer(token string) (string, error) {
	_, rest, _ := strings.Cut(token, ".")
	payload, _, ok := strings.Cut(rest, ".")
	if !ok {
		return "", unauthenticated("malformed token")
	}
	b, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return "", unauthenticated("malformed token")
	}
	var c struct {
		Iss *string `json:"iss"`
	}
	if err := json.NewDecoder(bytes.NewReader(b)).Decode(&c); err != nil {
		return "", unauthenticated("malformed token")
	}
	if c.Iss == nil {
		return "", unauthenticated("missing iss claim")
	}
	return *c.Iss, nil
}

// parseError maps an error of the JWT parser to a message that names the
// failed check and nothing of the token.
func parseError(err error, c *claims) error {
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok && te.Field != "" {
		// Field is a claim name of the claims type and Type a Go type:
		// neither comes from the token.
		name := te.Field[strings.LastIndexByte(te.Field, '.')+1:]
		return unauthenticated("bad %s claim: want %s", name, te.Type)
	}
	if errors.Is(err, jwt.ErrTokenRequiredClaimMissing) {
		// Claims are validated after the signature: c is what the issuer
		// signed.
		switch {
		case c.ExpiresAt == nil:
			return unauthenticated("missing exp claim")
		case len(c.Audience) == 0:
			return unauthenticated("missing aud claim")
		}
	}
	for _, m := range []struct {
		err error
		msg string
	}{
		{jwt.ErrTokenSignatureInvalid, "bad signature or algorithm"},
		{jwt.ErrTokenExpired, "token expired"},
		{jwt.ErrTokenNotValidYet, "token not valid yet"},
		{jwt.ErrTokenUsedBeforeIssued, "token issued in the future"},
		{jwt.ErrTokenInvalidAudience, "wrong audience"},
		{jwt.ErrTokenInvalidIssuer, "unknown issuer"},
		{jwt.ErrTokenRequiredClaimMissing, "missing required claim"},
		{jwt.ErrTokenMalformed, "malformed token"},
		{jwt.ErrTokenUnverifiable, "unverifiable token: bad algorithm or header"},
	} {
		if errors.Is(err, m.err) {
			return unauthenticated("%s", m.msg)
		}
	}
	return unauthenticated("invalid token")
}

func (v *Verifier) checkLifetime(c *claims) error {
	switch {
	case c.IssuedAt == nil:
		return unauthenticated("missing iat claim")
	case c.ExpiresAt.Sub(c.IssuedAt.Time) > v.maxTTL:
		return unauthenticated("token lifetime exceeds %v", v.maxTTL)
	case !c.ExpiresAt.After(c.IssuedAt.Time):
		return unauthenticated("token expires before it was issued")
	}
	return nil
}

// checkPrincipal checks the shape of p's attributes and, unless orgs is
// nil, that its org is one of orgs. It returns p with its roles sorted and
// without duplicates.
func checkPrincipal(p custos.Principal, orgs []string) (custos.Principal, error) {
	switch {
	case !validSub(p.ID):
		return custos.Principal{}, unauthenticated("bad sub claim")
	case orgs != nil && !slices.Contains(orgs, p.Org):
		return custos.Principal{}, unauthenticated("org claim not allowed")
	case p.Org == "" || len(p.Org) > 64:
		return custos.Principal{}, unauthenticated("bad org claim")
	case !validLoc(p.Loc):
		return custos.Principal{}, unauthenticated("bad loc claim: want two upper-case letters")
	case len(p.Roles) > MaxRoles:
		return custos.Principal{}, unauthenticated("more than %d roles", MaxRoles)
	}
	for _, r := range p.Roles {
		if !validRole(r) {
			return custos.Principal{}, unauthenticated("bad roles claim: want names of [a-z0-9_-]{1,64}")
		}
	}
	p.Roles = slices.Compact(slices.Sorted(slices.Values(p.Roles)))
	return p, nil
}

// MaxRoles is the most roles a principal may hold.
const MaxRoles = 32

func validSub(s string) bool {
	if len(s) < 1 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func validLoc(s string) bool {
	return len(s) == 2 && 'A' <= s[0] && s[0] <= 'Z' && 'A' <= s[1] && s[1] <= 'Z'
}

func validRole(s string) bool {
	if len(s) < 1 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

// authError is the error of a refused credential. It wraps
// ErrUnauthenticated and a *custos.Error, so that callers can branch on the
// former and the API edge can show the latter.
type authError struct{ reason string }

func unauthenticated(format string, args ...any) error {
	return &authError{reason: fmt.Sprintf(format, args...)}
}

func (e *authError) Error() string { return "unauthenticated: " + e.reason }

func (e *authError) Unwrap() []error {
	return []error{ErrUnauthenticated, custos.Errorf(custos.CodeUnauthenticated, "%s", e.reason)}
}

// remembered returns the principal of a token verified before, while it has
// not expired. Expiry is checked without leeway: a remembered token never
// outlives what its first verification allowed.
func (v *Verifier) remembered(h [sha256.Size]byte) (custos.Principal, bool) {
	v.mu.Lock()
	t, ok := v.verified[h]
	v.mu.Unlock()
	if !ok || !v.now().Before(t.exp) {
		return custos.Principal{}, false
	}
	p := t.p
	p.Roles = slices.Clone(t.p.Roles)
	return p, true
}

func (v *Verifier) remember(h [sha256.Size]byte, p custos.Principal, exp time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.verified) >= verifiedCacheSize {
		now := v.now()
		for k, t := range v.verified {
			if !now.Before(t.exp) {
				delete(v.verified, k)
			}
		}
		// Still full: forget an arbitrary half rather than grow.
		for k := range v.verified {
			if len(v.verified) < verifiedCacheSize/2 {
				break
			}
			delete(v.verified, k)
		}
	}
	p.Roles = slices.Clone(p.Roles)
	v.verified[h] = verifiedToken{p: p, exp: exp}
}
