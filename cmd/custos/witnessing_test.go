package main

import (
	"bytes"
	"crypto/rand"
	"testing"

	"github.com/custos/custos/internal/witness"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// TestVerifyCosignatures checks that only cosignatures that verify with the
// configured witness key are kept, and that a bad one is an error.
func TestVerifyCosignatures(t *testing.T) {
	lskey, _, err := note.GenerateKey(rand.Reader, "custos/test")
	if err != nil {
		t.Fatal(err)
	}
	ls, err := note.NewSigner(lskey)
	if err != nil {
		t.Fatal(err)
	}
	const text = "custos/test\n3\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"
	cp, err := note.Sign(&note.Note{Text: text}, ls)
	if err != nil {
		t.Fatal(err)
	}
	cosigner := func(name string) ([]byte, note.Verifier) {
		skey, vkey, err := witness.GenerateKey(name)
		if err != nil {
			t.Fatal(err)
		}
		s, err := fnote.NewSignerForCosignatureV1(skey)
		if err != nil {
			t.Fatal(err)
		}
		v, err := fnote.NewVerifierForCosignatureV1(vkey)
		if err != nil {
			t.Fatal(err)
		}
		signed, err := note.Sign(&note.Note{Text: text}, s)
		if err != nil {
			t.Fatal(err)
		}
		return signed[len(text)+1:], v
	}
	good, v := cosigner("witness.test")
	other, otherV := cosigner("other.test")

	got, err := verifyCosignatures(cp, [][]byte{other, good}, v)
	if err != nil || len(got) != 1 || !bytes.Equal(got[0], good) {
		t.Fatalf("verifyCosignatures = %q, %v; want only the witness's line", got, err)
	}
	if _, err := verifyCosignatures(cp, [][]byte{good}, otherV); err == nil {
		t.Error("a cosignature by another witness was kept")
	}
	bad := bytes.Clone(good)
	bad[len(bad)-3] ^= 1 // inside the base64 signature
	if _, err := verifyCosignatures(cp, [][]byte{bad}, v); err == nil {
		t.Error("a corrupted cosignature was kept")
	}
	other2, _ := cosigner("witness.test") // same name, another key
	if _, err := verifyCosignatures(cp, [][]byte{other2}, v); err == nil {
		t.Error("a cosignature by another key of the same name was kept")
	}
}
