package witness

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

func TestGenerateKey(t *testing.T) {
	skey, vkey, err := GenerateKey("monitor.example/witness")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(skey, "PRIVATE+KEY+monitor.example/witness+") || !strings.HasPrefix(vkey, "monitor.example/witness+") {
		t.Fatalf("keys not named: %q", vkey)
	}
	// tlog-cosignature: "Ed25519 public keys MAY be encoded as vkeys with
	// signature type 0x04"; base64 of a 0x04 first byte starts with "B".
	if key := strings.SplitN(vkey, "+", 3)[2]; !strings.HasPrefix(key, "B") {
		t.Fatalf("vkey %q is not of signature type 0x04", vkey)
	}
	if strings.Contains(vkey, strings.SplitN(skey, "+", 5)[4]) {
		t.Fatal("vkey holds the private key")
	}
	if _, _, err := GenerateKey("bad name"); err == nil {
		t.Fatal("GenerateKey accepted a name with a space")
	}

	path := filepath.Join(t.TempDir(), "witness.key")
	if err := os.WriteFile(path, []byte(skey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := ReadSigner(path)
	if err != nil {
		t.Fatal(err)
	}
	v, err := fnote.NewVerifierForCosignatureV1(vkey)
	if err != nil {
		t.Fatal(err)
	}
	if s.Name() != v.Name() || s.KeyHash() != v.KeyHash() {
		t.Fatalf("signer %s/%08x, verifier %s/%08x", s.Name(), s.KeyHash(), v.Name(), v.KeyHash())
	}
	msg, err := note.Sign(&note.Note{Text: "custos.example/log\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"}, s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := note.Open(msg, note.VerifierList(v)); err != nil {
		t.Fatalf("cosignature doesn't verify with the vkey: %v", err)
	}
}

func TestReadSigner(t *testing.T) {
	skey, _, err := GenerateKey("monitor.example/witness")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		data string
		perm os.FileMode
		ok   bool
	}{
		{"owner only", skey + "\n", 0o600, true},
		{"owner read only", skey, 0o400, true},
		{"group readable", skey, 0o640, false},
		{"world readable", skey, 0o604, false},
		{"not a key", "hello", 0o600, false},
		{"a verifier key", "monitor.example/witness+01234567+AQ==", 0o600, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
			if err := os.WriteFile(path, []byte(tc.data), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tc.perm); err != nil {
				t.Fatal(err)
			}
			_, err := ReadSigner(path)
			if (err == nil) != tc.ok {
				t.Fatalf("ReadSigner = %v, want ok %v", err, tc.ok)
			}
			if err != nil && strings.Contains(err.Error(), strings.SplitN(skey, "+", 5)[4]) {
				t.Fatal("error reveals the key")
			}
		})
	}
	if _, err := ReadSigner(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("ReadSigner of a missing file succeeded")
	}
}
