// Package notekey reads and makes the Ed25519 signed-note keys custos uses:
// the log's checkpoint key, witness keys, operators' and reviewers'
// algorithm keys and the governance signers' keys. A key file holds one
// line of note key text. It also counts co-signatures: signature lines
// posted one by one over a note text that others hold.
package notekey

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
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

// MaxSigLine bounds one signature line of a signed note.
const MaxSigLine = 1 << 10

// SignLine returns signer's signature line over text (a signed note's
// text, ending in a newline): the line a co-signer posts to add its
// signature to a note others hold.
func SignLine(text []byte, signer note.Signer) (string, error) {
	msg, err := note.Sign(&note.Note{Text: string(text)}, signer)
	if err != nil {
		return "", fmt.Errorf("couldn't sign: %w", err)
	}
	return string(msg[len(text)+1:]), nil
}

// Signers returns the names of the distinct keys among known whose
// signature lines verify over text, sorted. A line that is not one
// signature line, or a signature by a known key that does not verify, is
// an error; lines by keys not among known count for nothing.
func Signers(text []byte, lines []string, known note.Verifiers) ([]string, error) {
	if len(lines) == 0 {
		return nil, nil
	}
	var msg strings.Builder
	msg.Write(text)
	msg.WriteString("\n")
	for _, l := range lines {
		if err := CheckSigLine(l); err != nil {
			return nil, err
		}
		msg.WriteString(l)
	}
	n, err := note.Open([]byte(msg.String()), known)
	var unknown *note.UnverifiedNoteError
	switch {
	case errors.As(err, &unknown):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("a signature does not verify: %w", err)
	}
	var names []string
	for _, s := range n.Sigs {
		names = append(names, s.Name)
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

// CheckSigLine checks that l is one signed-note signature line.
func CheckSigLine(l string) error {
	if len(l) > MaxSigLine || !strings.HasPrefix(l, "— ") || !strings.HasSuffix(l, "\n") || strings.Count(l, "\n") != 1 {
		return errors.New("a signature must be one signed-note signature line (\"— name signature\")")
	}
	return nil
}
