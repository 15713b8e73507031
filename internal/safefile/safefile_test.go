package safefile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestCreateNeverReplaces(t *testing.T) {
	p := filepath.Join(t.TempDir(), "key")
	if err := Create(p, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Create(p, []byte("two"), 0o600); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second Create = %v, want ErrExist", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "one" {
		t.Fatalf("file = %q after a refused Create", b)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode = %v", fi.Mode().Perm())
	}
	assertNoTemp(t, filepath.Dir(p), 1)
}

func TestReplace(t *testing.T) {
	p := filepath.Join(t.TempDir(), "state")
	for _, s := range []string{"old", "new"} {
		if err := Replace(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if b, _ := os.ReadFile(p); string(b) != "new" {
		t.Fatalf("file = %q", b)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o644 {
		t.Fatalf("mode = %v", fi.Mode().Perm())
	}
	assertNoTemp(t, filepath.Dir(p), 1)
}

func TestMissingDirectory(t *testing.T) {
	if err := Replace(filepath.Join(t.TempDir(), "no", "file"), nil, 0o600); err == nil {
		t.Fatal("Replace into a missing directory succeeded")
	}
}

// assertNoTemp checks that dir holds exactly n files: no temporary left.
func assertNoTemp(t *testing.T, dir string, n int) {
	t.Helper()
	es, _ := os.ReadDir(dir)
	if len(es) != n {
		t.Fatalf("%d files in %s, want %d (a temporary file was left)", len(es), dir, n)
	}
}

func TestReadCapped(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte("12345"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := ReadCapped(p, 5); err != nil || string(b) != "12345" {
		t.Errorf("ReadCapped at the limit = %q, %v", b, err)
	}
	if _, err := ReadCapped(p, 4); err == nil {
		t.Error("ReadCapped of a file over the limit succeeded")
	}
	if _, err := ReadCapped(filepath.Join(t.TempDir(), "none"), 4); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadCapped of no file: %v, want fs.ErrNotExist", err)
	}
}
