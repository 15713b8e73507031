package sqlite

import (
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/custos/custos"
	"github.com/custos/custos/internal/store/storetest"
)

func open(t testing.TB) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "custos.db"), "sqlite:test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) custos.Store { return open(t) })
}

// TestPragmas checks that every connection, the writer and each reader, has
// the pragmas durability and concurrency rest on: a DSN the driver does not
// understand would silently leave SQLite's defaults.
func TestPragmas(t *testing.T) {
	s := open(t)
	want := map[string]string{
		"journal_mode": "wal",
		"busy_timeout": "10000",
		"foreign_keys": "1",
		"synchronous":  "2", // FULL
		// Deleted rows, an erased subject's among them, are overwritten in
		// the file rather than left on free pages.
		"secure_delete": "1",
	}
	check := func(name string, db *sql.DB, extra map[string]string) {
		// Hold several connections at once so that more than one is checked.
		var conns []*sql.Conn
		for range 3 {
			c, err := db.Conn(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			conns = append(conns, c)
			if db == s.w {
				break
			}
		}
		for i, c := range conns {
			for pragma, v := range extra {
				var got string
				if err := c.QueryRowContext(t.Context(), "PRAGMA "+pragma).Scan(&got); err != nil {
					t.Fatalf("%s connection %d: PRAGMA %s: %v", name, i, pragma, err)
				}
				if !strings.EqualFold(got, v) {
					t.Errorf("%s connection %d: PRAGMA %s = %q, want %q", name, i, pragma, got, v)
				}
			}
		}
	}
	writer := maps.Clone(want)
	writer["temp_store"] = "2" // MEMORY, for the journals of savepoints
	check("writer", s.w, writer)
	want["query_only"] = "1"
	check("reader", s.r, want)
}

func TestReaderIsQueryOnly(t *testing.T) {
	s := open(t)
	if _, err := s.r.ExecContext(t.Context(), `DELETE FROM subjects`); err == nil {
		t.Errorf("a write through the read pool succeeded")
	}
}

func TestLocation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "custos.db")
	s, err := Open(path, "sqlite:us-east")
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Location(); got != "sqlite:us-east" {
		t.Errorf("Location() = %q, want %q", got, "sqlite:us-east")
	}
	s.Close()

	_, err = Open(path, "sqlite:eu-west")
	if err == nil {
		t.Fatal("Open with another location succeeded")
	}
	for _, label := range []string{`"sqlite:us-east"`, `"sqlite:eu-west"`} {
		if !strings.Contains(err.Error(), label) {
			t.Errorf("error %q does not name %s", err, label)
		}
	}

	s, err = Open(path, "sqlite:us-east")
	if err != nil {
		t.Fatalf("reopen with the same location: %v", err)
	}
	s.Close()

	if _, err := Open(filepath.Join(t.TempDir(), "other.db"), ""); err == nil {
		t.Errorf("Open with an empty location succeeded")
	}
}

func TestReopenKeepsData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "custos.db")
	s, err := Open(path, "sqlite:test")
	if err != nil {
		t.Fatal(err)
	}
	sub := custos.StoredSubject{Subject: custos.Subject{ID: "alice", Residency: "US"},
		Key: custos.WrappedKey{KEKID: "k", Ciphertext: []byte("c")}}
	if _, err := s.CreateSubject(t.Context(), sub); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, err = Open(path, "sqlite:test")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Subject(t.Context(), "alice"); err != nil {
		t.Errorf("Subject after reopen: %v", err)
	}
	var version int
	if err := s.r.QueryRow(`SELECT schema_version FROM meta`).Scan(&version); err != nil {
		t.Fatal(err)
	}
	if want := len(migrations()); version != want || want == 0 {
		t.Errorf("schema_version = %d, want %d", version, want)
	}
}

func TestNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "custos.db")
	s, err := Open(path, "sqlite:test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.Exec(`UPDATE meta SET schema_version = schema_version + 1`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(path, "sqlite:test"); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("Open of a newer schema: err = %v, want one saying it is newer", err)
	}
}

func TestFileMode(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(filepath.Join(dir, "custos.db"), "sqlite:test")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Write, so that the WAL and its index exist while the store is open.
	if _, err := s.CreateSubject(t.Context(), custos.StoredSubject{Subject: custos.Subject{ID: "a"}}); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) < 2 {
		t.Errorf("directory holds %d files, want the database and its WAL", len(entries))
	}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if mode := info.Mode().Perm(); mode != 0o600 {
			t.Errorf("%s has mode %v, want 0600", e.Name(), mode)
		}
	}
}

func TestMissingDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing", "custos.db")
	if _, err := Open(path, "sqlite:test"); err == nil {
		t.Fatal("Open in a missing directory succeeded")
	}
	if _, err := os.Stat(filepath.Dir(path)); !os.IsNotExist(err) {
		t.Errorf("Open created the directory: %v", err)
	}
}

func TestOddPath(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a dir?with#odd%chars")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	s, err := Open(filepath.Join(dir, "custos.db"), "sqlite:test")
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := os.Stat(filepath.Join(dir, "custos.db")); err != nil {
		t.Errorf("database not where asked: %v", err)
	}
}

func BenchmarkPutRecord(b *testing.B) { storetest.BenchPutRecord(b, open(b)) }

func BenchmarkRecord(b *testing.B) { storetest.BenchRecord(b, open(b)) }

func BenchmarkRecordParallel(b *testing.B) { storetest.BenchRecordParallel(b, open(b)) }

// TestTwoStoresOneFile has two stores, as two processes would, write the
// same file at once: BEGIN IMMEDIATE and busy_timeout make each wait for the
// other instead of failing with SQLITE_BUSY.
func TestTwoStoresOneFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "custos.db")
	var stores [2]*Store
	for i := range stores {
		s, err := Open(path, "sqlite:test")
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		stores[i] = s
	}
	n := 50
	if testing.Short() {
		n = 10
	}
	var wg sync.WaitGroup
	for w := range 8 {
		s := stores[w%2]
		wg.Go(func() {
			for i := range n {
				id := fmt.Sprintf("s%d", (w+i)%5)
				sub := custos.StoredSubject{Subject: custos.Subject{ID: id, Residency: "US"},
					Key: custos.WrappedKey{KEKID: "k", Ciphertext: []byte("c")}}
				if _, err := s.CreateSubject(t.Context(), sub); err != nil {
					t.Error(err)
					return
				}
				r := custos.SealedRecord{Collection: "c", ID: fmt.Sprint(w, "-", i%3), Subject: id}
				_, err := s.PutRecord(t.Context(), r, nil)
				if err != nil && !errors.Is(err, custos.ErrNotFound) && !errors.Is(err, custos.ErrConflict) {
					t.Error(err)
					return
				}
				if _, err := s.DeleteSubject(t.Context(), id); err != nil && !errors.Is(err, custos.ErrNotFound) {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestSecureDelete checks that what DeleteSubject removes does not stay in
// the database file on free pages once the log is checkpointed.
func TestSecureDelete(t *testing.T) {
	path := filepath.Join(t.TempDir(), "custos.db")
	s, err := Open(path, "sqlite:test")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	const marker = "erased-subject-marker"
	checkpoint := func() {
		t.Helper()
		if _, err := s.w.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"kept", marker} {
		sub := custos.StoredSubject{Subject: custos.Subject{ID: id, Residency: "US"},
			Key: custos.WrappedKey{KEKID: "k", Ciphertext: []byte("key of " + id)}}
		if _, err := s.CreateSubject(ctx, sub); err != nil {
			t.Fatal(err)
		}
		r := custos.SealedRecord{Collection: "c", ID: "r-" + id, Subject: id,
			Clear: []byte(`{"handle":"` + id + `"}`), Sealed: []byte("sealed " + id)}
		ref := custos.TokenRef{Index: []byte("index of " + id), KEKID: "k", Audience: "operator", Subject: id,
			Collection: "c", Record: r.ID, Field: "email", Sealed: []byte("token of " + id)}
		if _, err := s.PutRecord(ctx, r, []custos.TokenRef{ref}); err != nil {
			t.Fatal(err)
		}
	}
	checkpoint()
	if data, err := os.ReadFile(path); err != nil || !strings.Contains(string(data), marker) {
		t.Fatalf("the marker is not in the file before the deletion (%v): the test checks nothing", err)
	}
	if _, err := s.DeleteSubject(ctx, marker); err != nil {
		t.Fatal(err)
	}
	checkpoint()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), marker) {
		t.Errorf("the deleted subject's id is still in the database file")
	}
	if !strings.Contains(string(data), "token of kept") {
		t.Errorf("the kept subject's ref is not in the database file")
	}
}

func BenchmarkPutRecordConcurrent(b *testing.B) {
	storetest.BenchPutRecordConcurrent(b, func(tb testing.TB) custos.Store { return open(tb) })
}
