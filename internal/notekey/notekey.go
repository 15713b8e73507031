// Package notekey reads and makes the Ed25519 signed-note keys custos uses:
// the log's checkpoint key, witness keys, and operators' and reviewers'
// algorithm keys. A key file holds one line of note key text.
package notekey

import (
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// maxFile bounds a key file: note keys are under 200 bytes.
const maxFile = 4 << 10

// Generate returns a new key pair named name as signer key text (secret)
// and verifier key text (public). what names the key in errors.
func Generate(name, what string) (skey, vkey string, err error) {
	skey, vkey, err = note.GenerateKey(rand.Reader, name)
	if err != nil {
		return "", "", fmt.Errorf("couldn't generate %s: %w", what, err)
	}
	return skey, vkey, nil
}

// Read returns the key text in the file at path. A secret key's file must
// be accessible by its owner only. Errors name the file and what it is
// (such as "audit log key"), never the key.
func Read(path, what string, secret bool) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("couldn't open %s: %w", what, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("couldn't stat %s: %w", what, err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s %s is not a regular file", what, path)
	}
	if secret && fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%s %s is accessible by group or others (mode %v): chmod 600 it", what, path, fi.Mode().Perm())
	}
	b, err := io.ReadAll(io.LimitReader(f, maxFile+1))
	if err != nil {
		return "", fmt.Errorf("couldn't read %s: %w", what, err)
	}
	if len(b) > maxFile {
		return "", fmt.Errorf("%s %s is larger than %d bytes", what, path, maxFile)
	}
	return strings.TrimSpace(string(b)), nil
}

// ReadSigner reads a note signer key.
func ReadSigner(path, what string) (note.Signer, error) {
	text, err := Read(path, what, true)
	if err != nil {
		return nil, err
	}
	s, err := note.NewSigner(text)
	if err != nil {
		return nil, fmt.Errorf("%s %s is not a note signer key", what, path)
	}
	return s, nil
}

// ReadVerifier reads a note verifier key.
func ReadVerifier(path, what string) (note.Verifier, error) {
	text, err := Read(path, what, false)
	if err != nil {
		return nil, err
	}
	v, err := note.NewVerifier(text)
	if err != nil {
		return nil, fmt.Errorf("%s %s is malformed: %w", what, path, err)
	}
	return v, nil
}
