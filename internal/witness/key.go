package witness

import (
	"crypto/rand"
	"fmt"

	"github.com/custos/custos/internal/notekey"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// GenerateKey makes a witness key pair named name (a schema-less URL, such
// as "monitor.example/witness") in note key text form.
//
// skey is a signed-note Ed25519 signer key (algorithm 0x01); ReadSigner
// turns it into a cosignature/v1 signer. vkey is the cosignature/v1 verifier
// key that the log and its verifiers configure, encoded as tlog-cosignature
// allows:
//
//	Ed25519 public keys MAY be encoded as vkeys with signature type 0x04 and
//	the 32-byte Ed25519 cosigner public key as the public key material.
//
// so its key ID is the cosignature one:
//
//	SHA-256(<name> || "\n" || 0x04 || 32-byte Ed25519 cosigner public key)[:4]
func GenerateKey(name string) (skey, vkey string, err error) {
	skey, ed25519vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		return "", "", fmt.Errorf("couldn't generate witness key: %w", err)
	}
	vkey, err = fnote.VKeyToCosignatureV1(ed25519vkey)
	if err != nil {
		return "", "", fmt.Errorf("couldn't encode witness verifier key: %w", err)
	}
	return skey, vkey, nil
}

// ReadSigner reads a signer key written from GenerateKey's skey and returns
// a cosignature/v1 signer: each signature it makes is timestamped with the
// system clock. It refuses a file that its group or others may read or
// write. Errors never include the key.
func ReadSigner(path string) (note.Signer, error) {
	text, err := notekey.Read(path, "witness key", true)
	if err != nil {
		return nil, err
	}
	s, err := fnote.NewSignerForCosignatureV1(text)
	if err != nil {
		return nil, fmt.Errorf("witness key %s is not an Ed25519 note signer key", path)
	}
	return s, nil
}
