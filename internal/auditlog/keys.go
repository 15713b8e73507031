package auditlog

import (
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// GenerateKey returns a new Ed25519 checkpoint key for the log named origin,
// as note signer key text (secret) and verifier key text (public).
func GenerateKey(origin string) (skey, vkey string, err error) {
	skey, vkey, err = note.GenerateKey(rand.Reader, origin)
	if err != nil {
		return "", "", fmt.Errorf("couldn't generate audit log key: %w", err)
	}
	return skey, vkey, nil
}

// maxKeyFile bounds a key file: note keys are under 200 bytes.
const maxKeyFile = 4 << 10

// ReadSigner reads the note signer key in the file at path. It refuses a
// file that group or others may access, and never puts key text in an error.
func ReadSigner(path string) (note.Signer, error) {
	text, err := readKeyFile(path, true)
	if err != nil {
		return nil, err
	}
	s, err := note.NewSigner(text)
	if err != nil {
		return nil, fmt.Errorf("audit log key %s is not a note signer key", path)
	}
	return s, nil
}

// ReadVerifier reads the note verifier key in the file at path.
func ReadVerifier(path string) (note.Verifier, error) {
	text, err := readKeyFile(path, false)
	if err != nil {
		return nil, err
	}
	v, err := note.NewVerifier(text)
	if err != nil {
		return nil, fmt.Errorf("audit log verifier key %s is malformed: %w", path, err)
	}
	return v, nil
}

func readKeyFile(path string, secret bool) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("couldn't open audit log key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("couldn't stat audit log key: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("audit log key %s is not a regular file", path)
	}
	if secret && fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("audit log key %s is accessible by group or others (mode %v): chmod 600 it", path, fi.Mode().Perm())
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return "", fmt.Errorf("couldn't read audit log key: %w", err)
	}
	if len(b) > maxKeyFile {
		return "", fmt.Errorf("audit log key %s is larger than %d bytes", path, maxKeyFile)
	}
	return strings.TrimSpace(string(b)), nil
}
