package identity

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/custos/custos/internal/safefile"
)

const maxKeyFile = 64 << 10

// WritePrivateKey writes k to a new file at path as a PEM "PRIVATE KEY"
// (PKCS #8), readable by its owner only. It refuses to overwrite a file.
func WritePrivateKey(path string, k ed25519.PrivateKey) error {
	if len(k) != ed25519.PrivateKeySize {
		return errors.New("couldn't write private key: want an Ed25519 private key")
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return fmt.Errorf("couldn't write private key: %w", err)
	}
	return writeNew(path, &pem.Block{Type: "PRIVATE KEY", Bytes: der}, 0o600)
}

// WritePublicKey writes k to a new file at path as a PEM "PUBLIC KEY"
// (PKIX), readable by all. It refuses to overwrite a file: a public key is
// what tokens are trusted by, and replacing one is never a side effect.
func WritePublicKey(path string, k ed25519.PublicKey) error {
	if len(k) != ed25519.PublicKeySize {
		return errors.New("couldn't write public key: want an Ed25519 public key")
	}
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		return fmt.Errorf("couldn't write public key: %w", err)
	}
	return writeNew(path, &pem.Block{Type: "PUBLIC KEY", Bytes: der}, 0o644)
}

func writeNew(path string, b *pem.Block, mode os.FileMode) error {
	if err := safefile.Create(path, pem.EncodeToMemory(b), mode); err != nil {
		return fmt.Errorf("couldn't write key file %s: %w", path, err)
	}
	return nil
}

// ReadPrivateKey reads an Ed25519 private key written by WritePrivateKey. It
// refuses a file that its group or others may read or write.
func ReadPrivateKey(path string) (ed25519.PrivateKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("couldn't open private key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("couldn't open private key: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("private key %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("private key %s has mode %04o: others may read it; run chmod 600 %s", path, perm, path)
	}
	der, err := readPEM(f, path, "PRIVATE KEY")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("couldn't parse private key %s: %w", path, err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("private key %s is not an Ed25519 key", path)
	}
	return ek, nil
}

// ReadPublicKey reads an Ed25519 public key written by WritePublicKey.
func ReadPublicKey(path string) (ed25519.PublicKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("couldn't open public key: %w", err)
	}
	defer f.Close()
	der, err := readPEM(f, path, "PUBLIC KEY")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("couldn't parse public key %s: %w", path, err)
	}
	ek, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("public key %s is not an Ed25519 key", path)
	}
	return ek, nil
}

// readPEM reads the one PEM block of type typ that r holds.
func readPEM(r io.Reader, path, typ string) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("couldn't read key file %s: %w", path, err)
	}
	if len(data) > maxKeyFile {
		return nil, fmt.Errorf("key file %s is larger than %d bytes", path, maxKeyFile)
	}
	b, rest := pem.Decode(data)
	if b == nil || b.Type != typ || len(b.Headers) != 0 {
		return nil, fmt.Errorf("key file %s: want one PEM block of type %q", path, typ)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("key file %s: unexpected data after the PEM block", path)
	}
	return b.Bytes, nil
}
