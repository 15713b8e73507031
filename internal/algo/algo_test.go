package algo

import (
	"bytes"
	"encoding/json"
	"github.com/custos/custos/internal/algotest"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

func newKey(t testing.TB, name string) (note.Signer, note.Verifier) {
	t.Helper()
	s, vkey := algotest.NewKey(t, name)
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return s, v
}

func testManifest() Manifest {
	return Manifest{
		Name: "covisit", Version: "1.0.0", ABI: ABIVersion,
		SourceSHA256: Digest([]byte("source archive")),
		Reads:        map[string][]string{"watch_events": {"user", "video"}, "videos": {"id"}},
		Output:       Output{Collection: "videos", Field: "id"},
		Limits:       Limits{MemoryMiB: 64, TimeoutMS: 2000},
	}
}

func TestSignVerify(t *testing.T) {
	op, opV := newKey(t, "operator")
	other, _ := newKey(t, "operator")
	module := []byte("\x00asm\x01\x00\x00\x00 pretend module")
	b, err := Sign(testManifest(), module, op)
	if err != nil {
		t.Fatal(err)
	}
	m, err := b.Verify(note.VerifierList(opV))
	if err != nil {
		t.Fatal(err)
	}
	if m.ModuleSHA256 != Digest(module) || m.Name != "covisit" {
		t.Fatalf("Verify = %+v", m)
	}

	// One bit of the module flipped: the manifest no longer names it.
	flipped := *b
	flipped.Module = bytes.Clone(module)
	flipped.Module[9] ^= 1
	if _, err := flipped.Verify(note.VerifierList(opV)); err == nil || !strings.Contains(err.Error(), "not the one signed") {
		t.Fatalf("Verify of a flipped module = %v", err)
	}
	// The manifest edited after signing.
	edited := *b
	edited.Note = bytes.Replace(b.Note, []byte(`"timeout_ms": 2000`), []byte(`"timeout_ms": 9000`), 1)
	if _, err := edited.Verify(note.VerifierList(opV)); err == nil {
		t.Fatal("Verify accepted a manifest edited after signing")
	}
	// Signed by a key the custodian does not know, with the same name.
	b2, err := Sign(testManifest(), module, other)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b2.Verify(note.VerifierList(opV)); err == nil || !strings.Contains(err.Error(), "not signed by an operator key") {
		t.Fatalf("Verify of a stranger's bundle = %v", err)
	}
}

func TestApprovals(t *testing.T) {
	op, _ := newKey(t, "operator")
	r1, r1V := newKey(t, "alice")
	r2, r2V := newKey(t, "bob")
	stranger, _ := newKey(t, "mallory")
	b, err := Sign(testManifest(), []byte("module"), op)
	if err != nil {
		t.Fatal(err)
	}
	text, err := b.Text()
	if err != nil {
		t.Fatal(err)
	}
	approve := func(s note.Signer) string {
		l, err := Approve(text, s)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	reviewers := note.VerifierList(r1V, r2V)
	a1, a2, am := approve(r1), approve(r2), approve(stranger)
	for _, tc := range []struct {
		name  string
		lines []string
		want  string
	}{
		{"none", nil, ""},
		{"one", []string{a1}, "alice"},
		{"two", []string{a1, a2}, "alice,bob"},
		{"the same twice", []string{a1, a1}, "alice"},
		{"a stranger", []string{am}, ""},
		{"a stranger and one", []string{am, a2}, "bob"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			names, err := Approvals(text, tc.lines, reviewers)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(names, ","); got != tc.want {
				t.Fatalf("Approvals = %q, want %q", got, tc.want)
			}
		})
	}
	// An approval of another manifest does not count for this one.
	m2 := testManifest()
	m2.Version = "1.0.1"
	b2, _ := Sign(m2, []byte("module"), op)
	text2, _ := b2.Text()
	if _, err := Approvals(text2, []string{a1}, reviewers); err == nil {
		t.Fatal("an approval of another manifest verified")
	}
	for _, bad := range []string{"", "alice approves\n", "— alice AAAA\n— bob BBBB\n", "— alice " + strings.Repeat("A", 2000) + "\n"} {
		if _, err := Approvals(text, []string{bad}, reviewers); err == nil {
			t.Fatalf("Approvals accepted line %q", bad)
		}
	}
}

func TestParseManifest(t *testing.T) {
	m := testManifest()
	m.ModuleSHA256 = Digest([]byte("m"))
	text, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseManifest(text)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := got.Marshal(); !bytes.Equal(again, text) {
		t.Fatal("manifest does not round-trip")
	}
	compact, _ := json.Marshal(m)
	bad := map[string][]byte{
		"not canonical": append(compact, '\n'),
		"unknown field": bytes.Replace(text, []byte(`"abi": 1,`), []byte(`"abi": 1, "net": true,`), 1),
		"wrong abi":     bytes.Replace(text, []byte(`"abi": 1,`), []byte(`"abi": 2,`), 1),
		"bad name":      bytes.Replace(text, []byte(`"covisit"`), []byte(`"Co Visit"`), 1),
		"unsorted":      bytes.Replace(text, []byte(`"user",`), []byte(`"zz",`), 1),
		"too large":     bytes.Repeat([]byte(" "), MaxManifestSize+1),
	}
	for name, b := range bad {
		if _, err := ParseManifest(b); err == nil {
			t.Errorf("%s: ParseManifest accepted it", name)
		}
	}
}

func FuzzParseManifest(f *testing.F) {
	m := testManifest()
	m.ModuleSHA256 = Digest([]byte("m"))
	text, _ := m.Marshal()
	f.Add(text)
	f.Add([]byte(`{"name":"x"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseManifest(b)
		if err != nil {
			return
		}
		again, err := m.Marshal()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("accepted manifest does not re-encode to itself: %v", err)
		}
	})
}

func FuzzReadBundle(f *testing.F) {
	op, opV := newKey(f, "operator")
	b, _ := Sign(testManifest(), []byte("module"), op)
	enc, _ := json.Marshal(b)
	f.Add(enc)
	f.Add([]byte(`{"manifest":"","module":""}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		bu, err := ReadBundle(bytes.NewReader(data))
		if err != nil {
			return
		}
		if m, err := bu.Verify(note.VerifierList(opV)); err == nil && m.ModuleSHA256 != Digest(bu.Module) {
			t.Fatal("a bundle verified with a module that is not the manifest's")
		}
	})
}
