package identity

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/custos/custos"
)

func pemOf(t testing.TB, k ed25519.PublicKey) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	key, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	priv, pub := filepath.Join(dir, "issuer.key"), filepath.Join(dir, "issuer.pub")
	if err := WritePrivateKey(priv, key); err != nil {
		t.Fatal(err)
	}
	if err := WritePublicKey(pub, key.Public().(ed25519.PublicKey)); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{priv: 0o600, pub: 0o644} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		// The umask may narrow the public key's mode, never widen either.
		if got := fi.Mode().Perm(); got&^want != 0 || (path == priv && got != want) {
			t.Errorf("%s has mode %04o, want %04o", path, got, want)
		}
	}
	k2, err := ReadPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	if !key.Equal(k2) {
		t.Error("private key read back differs")
	}
	p2, err := ReadPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	if !p2.Equal(key.Public()) {
		t.Error("public key read back differs")
	}

	if err := WritePrivateKey(priv, key); err == nil {
		t.Error("WritePrivateKey overwrote a key")
	}
	if err := WritePublicKey(pub, key.Public().(ed25519.PublicKey)); err == nil {
		t.Error("WritePublicKey overwrote a key")
	}
	if k, err := ReadPrivateKey(priv); err != nil || !key.Equal(k) {
		t.Error("a refused overwrite changed the key")
	}

	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o620} {
		if err := os.Chmod(priv, mode); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadPrivateKey(priv); err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("ReadPrivateKey of a %04o file: %v, want a refusal", mode, err)
		}
	}
	os.Chmod(priv, 0o400)
	if _, err := ReadPrivateKey(priv); err != nil {
		t.Errorf("ReadPrivateKey of a 0400 file: %v", err)
	}
}

func TestReadKeyRefuses(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecPriv, _ := x509.MarshalPKCS8PrivateKey(ec)
	ecPub, _ := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	key, _ := GenerateKey()
	pubPEM := pemOf(t, key.Public().(ed25519.PublicKey))
	privDER, _ := x509.MarshalPKCS8PrivateKey(key)
	privPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}))

	for name, data := range map[string]string{
		"empty":          "",
		"garbage":        "not a key",
		"public as priv": pubPEM,
		"ecdsa":          string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecPriv})),
		"trailing":       privPEM + "junk",
		"two blocks":     privPEM + privPEM,
		"huge":           privPEM + strings.Repeat("\n", maxKeyFile),
	} {
		if _, err := ReadPrivateKey(write(name+".key", data)); err == nil {
			t.Errorf("ReadPrivateKey accepted %s", name)
		}
	}
	for name, data := range map[string]string{
		"garbage":        "not a key",
		"private as pub": privPEM,
		"ecdsa":          string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: ecPub})),
	} {
		if _, err := ReadPublicKey(write(name+".pub", data)); err == nil {
			t.Errorf("ReadPublicKey accepted %s", name)
		}
	}
	if _, err := ReadPrivateKey(dir); err == nil {
		t.Error("ReadPrivateKey accepted a directory")
	}
}

func TestPrincipalFromCert(t *testing.T) {
	orgs := []string{"custodian", "monitor"}
	cert := func(cn string, o, c, ou []string) *x509.Certificate {
		return &x509.Certificate{
			Subject: pkix.Name{CommonName: cn, Organization: o, Country: c, OrganizationalUnit: ou},
			Issuer:  pkix.Name{CommonName: "custodian client CA"},
		}
	}
	p, err := PrincipalFromCert(cert(testSub, []string{"monitor"}, []string{"US"}, []string{"audit", "vetted", "audit"}), orgs)
	if err != nil {
		t.Fatal(err)
	}
	want := custos.Principal{ID: testSub, Issuer: "x509:custodian client CA", Org: "monitor", Loc: "US", Roles: []string{"audit"}, Vetted: true}
	if p.Key() != want.Key() {
		t.Errorf("PrincipalFromCert = %+v, want %+v", p, want)
	}
	for name, c := range map[string]*x509.Certificate{
		"nil":        nil,
		"no cn":      cert("", []string{"monitor"}, []string{"US"}, nil),
		"other org":  cert(testSub, []string{"operator"}, []string{"US"}, nil),
		"two orgs":   cert(testSub, []string{"monitor", "custodian"}, []string{"US"}, nil),
		"no country": cert(testSub, []string{"monitor"}, nil, nil),
		"bad role":   cert(testSub, []string{"monitor"}, []string{"US"}, []string{"Audit Team"}),
	} {
		_, err := PrincipalFromCert(c, orgs)
		if !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("%s: %v, want ErrUnauthenticated", name, err)
		} else if strings.Contains(err.Error(), testSub) {
			t.Errorf("%s: error shows the subject: %v", name, err)
		}
	}
}
