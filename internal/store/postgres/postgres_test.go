package postgres

import (
	"context"
	"crypto/rand"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/custos/custos"
	"github.com/custos/custos/internal/store/storetest"
	"github.com/jackc/pgx/v5"
)

// serverURL returns the URL of the PostgreSQL server to test against, or
// skips t.
func serverURL(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv("CUSTOS_TEST_POSTGRES")
	if dsn == "" {
		t.Skip("CUSTOS_TEST_POSTGRES is not set; set it to a PostgreSQL URL such as postgres://postgres@127.0.0.1:5432/test?sslmode=disable to run the PostgreSQL conformance suite")
	}
	return dsn
}

// testDSN returns a DSN whose search_path is a new schema, dropped when t
// ends, so that every test has a database of its own.
func testDSN(t testing.TB) string {
	t.Helper()
	dsn := serverURL(t)
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatal("CUSTOS_TEST_POSTGRES is not a postgres:// URL")
	}

	schema := "custos_test_" + strings.ToLower(rand.Text()[:16])
	admin, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(t.Context(), "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		if _, err := admin.Exec(ctx, "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("couldn't drop schema %s: %v", schema, err)
		}
		admin.Close(ctx)
	})

	q := u.Query()
	q.Set("options", "-csearch_path="+schema) // no space: pgx does not read + as one
	u.RawQuery = q.Encode()
	return u.String()
}

func open(t testing.TB) *Store {
	t.Helper()
	dsn := testDSN(t)
	s, err := Open(t.Context(), dsn, "postgres:test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStore(t *testing.T) {
	serverURL(t)
	storetest.Run(t, func(t *testing.T) custos.Store { return open(t) })
}

func TestLocation(t *testing.T) {
	dsn := testDSN(t)
	s, err := Open(t.Context(), dsn, "postgres:us-east")
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Location(); got != "postgres:us-east" {
		t.Errorf("Location() = %q, want %q", got, "postgres:us-east")
	}
	s.Close()

	_, err = Open(t.Context(), dsn, "postgres:eu-west")
	if err == nil {
		t.Fatal("Open with another location succeeded")
	}
	for _, label := range []string{`"postgres:us-east"`, `"postgres:eu-west"`} {
		if !strings.Contains(err.Error(), label) {
			t.Errorf("error %q does not name %s", err, label)
		}
	}

	s, err = Open(t.Context(), dsn, "postgres:us-east")
	if err != nil {
		t.Fatalf("reopen with the same location: %v", err)
	}
	s.Close()

	if _, err := Open(t.Context(), dsn, ""); err == nil {
		t.Errorf("Open with an empty location succeeded")
	}
}

func TestSchema(t *testing.T) {
	s := open(t)
	var version int
	if err := s.pool.QueryRow(t.Context(), `SELECT schema_version FROM custos_meta`).Scan(&version); err != nil {
		t.Fatal(err)
	}
	if want := len(migrations(false)); version != want || want == 0 {
		t.Errorf("schema_version = %d, want %d", version, want)
	}

	// Subject ids sort as bytes whatever the database's collation.
	var collation string
	if err := s.pool.QueryRow(t.Context(), `SELECT collation_name FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name = 'subjects' AND column_name = 'id'`).Scan(&collation); err != nil {
		t.Fatal(err)
	}
	if collation != "C" {
		t.Errorf("subjects.id has collation %q, want C", collation)
	}

	if _, err := s.pool.Exec(t.Context(), `UPDATE custos_meta SET schema_version = schema_version + 1`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.migrate(t.Context(), "postgres:test"); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("migrate of a newer schema: err = %v, want one saying it is newer", err)
	}
}

// TestConcurrentOpen has several processes' worth of stores open one
// database at once: one creates the schema, the others wait and find it.
func TestConcurrentOpen(t *testing.T) {
	dsn := testDSN(t)
	errs := make(chan error, 4)
	for range cap(errs) {
		go func() {
			s, err := Open(t.Context(), dsn, "postgres:test")
			if err == nil {
				s.Close()
			}
			errs <- err
		}()
	}
	for range cap(errs) {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func TestMalformedDSN(t *testing.T) {
	_, err := Open(t.Context(), "postgres://user:s3cret@[::1", "postgres:test")
	if err == nil {
		t.Fatal("Open of a malformed DSN succeeded")
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error %q shows the password", err)
	}
}

// TestTablesInSearchPath checks that the tables are made in the schema the
// DSN's search_path names.
func TestTablesInSearchPath(t *testing.T) {
	dsn := testDSN(t)
	s, err := Open(t.Context(), dsn, "postgres:test")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var schema string
	if err := s.pool.QueryRow(t.Context(), `SELECT table_schema FROM information_schema.tables
		WHERE table_name = 'records' AND table_schema = current_schema()`).Scan(&schema); err != nil {
		t.Fatalf("records is not in the search_path's schema: %v", err)
	}
}

func BenchmarkPutRecord(b *testing.B) { storetest.BenchPutRecord(b, open(b)) }

func BenchmarkRecord(b *testing.B) { storetest.BenchRecord(b, open(b)) }

func BenchmarkRecordParallel(b *testing.B) { storetest.BenchRecordParallel(b, open(b)) }

func BenchmarkPutRecordConcurrent(b *testing.B) {
	storetest.BenchPutRecordConcurrent(b, func(tb testing.TB) custos.Store { return open(tb) })
}
