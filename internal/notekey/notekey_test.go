package notekey

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadRefusesExposedSecret(t *testing.T) {
	dir := t.TempDir()
	skey, vkey, err := Generate("op.example", "test key")
	if err != nil {
		t.Fatal(err)
	}
	sp, vp := filepath.Join(dir, "k"), filepath.Join(dir, "k.vkey")
	os.WriteFile(sp, []byte(skey+"\n"), 0o640)
	os.WriteFile(vp, []byte(vkey+"\n"), 0o644)
	if _, err := ReadSigner(sp, "test key"); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("ReadSigner of a group-readable key = %v", err)
	}
	os.Chmod(sp, 0o600)
	s, err := ReadSigner(sp, "test key")
	if err != nil {
		t.Fatal(err)
	}
	v, err := ReadVerifier(vp, "test key")
	if err != nil {
		t.Fatal(err)
	}
	if s.KeyHash() != v.KeyHash() || s.Name() != "op.example" {
		t.Fatal("signer and verifier do not match")
	}
	// A verifier key where a signer key is wanted: the error names the file, not the key.
	if _, err := ReadSigner(vp, "test key"); err == nil || strings.Contains(err.Error(), vkey) {
		t.Fatalf("ReadSigner of a verifier key = %v", err)
	}
	os.WriteFile(vp, []byte(strings.Repeat("x", maxFile+1)), 0o644)
	if _, err := ReadVerifier(vp, "test key"); err == nil {
		t.Fatal("ReadVerifier accepted an oversized file")
	}
}
