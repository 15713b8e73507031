package identity

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/custos/custos"
	"github.com/golang-jwt/jwt/v5"
)

// GenerateKey returns a new Ed25519 signing key for an issuer.
func GenerateKey() (ed25519.PrivateKey, error) {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("couldn't generate key: %w", err)
	}
	return k, nil
}

// Mint returns a token for p, issued by iss for audience aud, valid from now
// for ttl, signed with key. It is for the development issuer and for tests;
// in production an identity provider issues tokens.
//
// Mint refuses a principal Verify would refuse for its shape (sub, loc,
// roles), so that what it signs verifies. The token's jti is random.
func Mint(key ed25519.PrivateKey, iss, aud string, p custos.Principal, ttl time.Duration, now time.Time) (string, error) {
	switch {
	case len(key) != ed25519.PrivateKeySize:
		return "", errors.New("couldn't mint token: want an Ed25519 private key")
	case iss == "" || aud == "":
		return "", errors.New("couldn't mint token: empty issuer or audience")
	case ttl <= 0:
		return "", errors.New("couldn't mint token: ttl must be positive")
	}
	p, err := checkPrincipal(p, nil)
	if err != nil {
		return "", fmt.Errorf("couldn't mint token: %w", err)
	}
	var jti [16]byte
	rand.Read(jti[:])
	c := claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    iss,
			Subject:   p.ID,
			Audience:  jwt.ClaimStrings{aud},
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
			ID:        hex.EncodeToString(jti[:]),
		},
		Org:    p.Org,
		Loc:    p.Loc,
		Roles:  p.Roles,
		Vetted: p.Vetted,
	}
	t, err := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c).SignedString(key)
	if err != nil {
		return "", fmt.Errorf("couldn't mint token: %w", err)
	}
	return t, nil
}
