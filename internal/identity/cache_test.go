package identity

import (
	"crypto/ed25519"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/custos/custos"
)

// TestRememberedTokenExpires checks that a remembered token is refused once
// its exp passes, as a fresh check would refuse it.
func TestRememberedTokenExpires(t *testing.T) {
	key, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	var now atomic.Int64
	now.Store(testNow.Unix())
	v, err := NewVerifier(Config{
		Audience: testAud,
		Issuers:  []Issuer{{Name: testIss, Key: key.Public().(ed25519.PublicKey)}},
		Orgs:     []string{custos.OrgOperator},
		Now:      func() time.Time { return time.Unix(now.Load(), 0) },
	})
	if err != nil {
		t.Fatal(err)
	}
	p := custos.Principal{ID: "svc", Org: custos.OrgOperator, Loc: "US", Roles: []string{"service"}}
	tok, err := Mint(key, testIss, testAud, p, time.Minute, testNow)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 { // the second Verify is answered from memory
		got, err := v.Verify(tok)
		if err != nil || got.ID != "svc" || got.Roles[0] != "service" {
			t.Fatalf("Verify %d = %+v, %v", i, got, err)
		}
		got.Roles[0] = "admin" // a caller changing its copy changes nothing remembered
	}
	if got, _ := v.Verify(tok); got.Roles[0] != "service" {
		t.Fatalf("remembered principal was changed through a returned copy: %v", got.Roles)
	}
	now.Store(testNow.Add(2 * time.Minute).Unix())
	if _, err := v.Verify(tok); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("expired remembered token: %v, want ErrUnauthenticated", err)
	}
	// A token differing in one byte of its signature is not the remembered one.
	now.Store(testNow.Unix())
	forged := []byte(tok)
	i := strings.LastIndexByte(tok, '.') + 10 // inside the signature
	forged[i] = "AB"[b2i(forged[i] == 'A')]
	if _, err := v.Verify(string(forged)); err == nil {
		t.Fatal("a token one byte off the remembered one verified")
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// forget drops every remembered token.
func (v *Verifier) forget() {
	v.mu.Lock()
	clear(v.verified)
	v.mu.Unlock()
}

func TestRememberBounded(t *testing.T) {
	v := &Verifier{now: func() time.Time { return testNow }, verified: map[[32]byte]verifiedToken{}}
	for i := range verifiedCacheSize + 10 {
		var h [32]byte
		h[0], h[1], h[2] = byte(i), byte(i>>8), byte(i>>16)
		v.remember(h, custos.Principal{ID: "x"}, testNow.Add(time.Hour))
	}
	if n := len(v.verified); n > verifiedCacheSize {
		t.Fatalf("remembered %d tokens, bound is %d", n, verifiedCacheSize)
	}
}

func BenchmarkVerifyRemembered(b *testing.B) {
	key, _ := GenerateKey()
	v, err := NewVerifier(Config{Audience: testAud, Issuers: []Issuer{{Name: testIss, Key: key.Public().(ed25519.PublicKey)}}, Orgs: []string{custos.OrgOperator}})
	if err != nil {
		b.Fatal(err)
	}
	tok, _ := Mint(key, testIss, testAud, custos.Principal{ID: "svc", Org: custos.OrgOperator, Loc: "US"}, time.Hour, time.Now())
	for b.Loop() {
		if _, err := v.Verify(tok); err != nil {
			b.Fatal(err)
		}
	}
}
