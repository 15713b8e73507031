package auditlog

import (
	"github.com/custos/custos/internal/notekey"
	"golang.org/x/mod/sumdb/note"
)

// GenerateKey returns a new Ed25519 checkpoint key for the log named origin,
// as note signer key text (secret) and verifier key text (public).
func GenerateKey(origin string) (skey, vkey string, err error) {
	return notekey.Generate(origin, "audit log key")
}

// ReadSigner reads the note signer key in the file at path. It refuses a
// file that group or others may access, and never puts key text in an error.
func ReadSigner(path string) (note.Signer, error) {
	return notekey.ReadSigner(path, "audit log key")
}

// ReadVerifier reads the note verifier key in the file at path.
func ReadVerifier(path string) (note.Verifier, error) {
	return notekey.ReadVerifier(path, "audit log verifier key")
}
