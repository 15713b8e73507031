// Package sqlite is a custos.Store in one SQLite file, for a custodian that
// runs custos on one machine. It uses modernc.org/sqlite: pure Go, no cgo.
//
// Durability: the database is in WAL mode with synchronous=FULL, so a
// method that returns nil has had the commit that holds its change fsynced
// to the write-ahead log. Foreign keys are enforced, and deleting a subject
// cascades to its records and token refs inside the same transaction.
//
// Concurrency: every write goes through one goroutine and one connection,
// and concurrent writes share commits (group commit). The writes made while
// a transaction commits wait in a queue; the next transaction, begun with
// BEGIN IMMEDIATE, takes those waiting, up to 256 of them or 1 MiB of
// values, and runs each in a savepoint of its own, so that a write that
// fails (ErrNotFound, ErrConflict, any error) is rolled back alone and its
// error returned to its caller alone. The transaction commits once, with
// one fsync, and only then does any of its writes return. No write waits
// for a timer: a lone writer has a transaction to itself. A write whose
// context is done before its turn in the transaction is not run; once run,
// it is not interrupted, and its caller waits for the commit. A transaction
// that fails to commit fails every write in it. The writers of one process
// thus queue in Go rather than fail with SQLITE_BUSY; another process
// writing the same file waits up to busy_timeout (10 s) for the lock. Reads
// go through a pool of read-only (query_only) connections that WAL lets run
// beside the writer.
//
// Trust: the file holds ciphertext, keyed hashes and ids; whoever can read
// it learns which subjects exist and which records they have, not what the
// protected fields say nor which tokens were handed out. It is created with
// mode 0600. Every statement takes its values as parameters; no id is ever
// part of SQL text.
//
// Erasure: secure_delete is on, so SQLite overwrites the content of deleted
// rows in the database file; until the write-ahead log is checkpointed and
// its frames reused, older versions of the pages they were on remain in
// PATH-wal.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/custos/custos"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver
)

// pragmas are set on every connection, as _pragma parameters: every version
// of modernc.org/sqlite applies those, while older ones silently ignore
// mattn-style keys such as _journal_mode. TestPragmas checks the result.
const pragmas = "_pragma=journal_mode(WAL)" +
	"&_pragma=busy_timeout(10000)" +
	"&_pragma=foreign_keys(1)" +
	"&_pragma=synchronous(FULL)" +
	"&_pragma=secure_delete(1)"

// Store is a custos.Store in a SQLite file. It is safe for concurrent use.
type Store struct {
	w        *sql.DB // one connection, for every write
	r        *sql.DB // a pool of query_only connections
	location string
	writer   // the writes waiting for w

	// Statements of the hot reads, and of the reads a key rotation makes
	// for every subject, prepared once per connection of r.
	subject, record, tokenRefs, subjectTokenRefs *sql.Stmt

	// Statements of the writes made on every write request, prepared once
	// on w (prepareWrites).
	insertSubject, subjectExists, recordOwner, upsertRecord, deleteRefs, insertRef *sql.Stmt
}

var _ custos.Store = (*Store)(nil)

// Open opens the store in the SQLite file at path, creating it with mode
// 0600 if it does not exist; its directory must exist. location is the label
// of where the file sits, such as "sqlite:us-east/host-1". The first Open
// records it in the file; a later Open with another label fails, so that a
// file copied elsewhere is not silently relabelled.
func Open(path, location string) (*Store, error) {
	if location == "" {
		return nil, errors.New("couldn't open store: empty location label")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("couldn't open store: %w", err)
	}
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("couldn't open store: %w", err)
	}
	f.Close()

	// The writer keeps its temporary files in memory: SQLite would write
	// the journal of the savepoint around each write (commit.go) to a
	// temporary file once it outgrows 64 KiB.
	w, err := sql.Open("sqlite", dsn(abs, "_txlock=immediate", "_pragma=temp_store(MEMORY)"))
	if err != nil {
		return nil, fmt.Errorf("couldn't open store %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	s := &Store{w: w}
	s.more = sync.NewCond(&s.mu)
	s.idle = make(chan struct{})
	go s.writeLoop()
	if s.location, err = migrate(w, location); err == nil {
		err = s.prepareWrites()
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("couldn't open store %s: %w", path, err)
	}

	// The writer has put the file in WAL mode, so query_only connections
	// setting journal_mode(WAL) again change nothing.
	s.r, err = sql.Open("sqlite", dsn(abs, "_pragma=query_only(1)"))
	if err == nil {
		n := max(4, runtime.GOMAXPROCS(0))
		s.r.SetMaxOpenConns(n)
		s.r.SetMaxIdleConns(n)
		err = s.prepare()
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("couldn't open store %s: %w", path, err)
	}
	return s, nil
}

// prepare prepares the statements of the hot reads on the read pool.
func (s *Store) prepare() (err error) {
	if s.subject, err = s.r.Prepare(`SELECT ` + subjectColumns + ` FROM subjects WHERE id = ?`); err != nil {
		return err
	}
	if s.record, err = s.r.Prepare(`SELECT subject, clear, sealed, updated_at FROM records
		WHERE collection = ? AND id = ?`); err != nil {
		return err
	}
	// One statement serves up to MaxTokenIndexes indexes: TokenRefs repeats
	// the last index in the unused places.
	if s.tokenRefs, err = s.r.Prepare(`SELECT ` + refColumns + ` FROM token_refs
		WHERE idx IN (?` + strings.Repeat(", ?", custos.MaxTokenIndexes-1) + `)`); err != nil {
		return err
	}
	s.subjectTokenRefs, err = s.r.Prepare(`SELECT ` + refColumns + ` FROM token_refs WHERE subject = ?`)
	return err
}

// prepareWrites prepares the statements of the writes made on every write
// request, and of the savepoints around each write, on the writer: the
// writer's transactions run them with Tx.StmtContext, which reuses a
// statement prepared on their connection instead of parsing its SQL again.
func (s *Store) prepareWrites() (err error) {
	for _, p := range []struct {
		stmt  **sql.Stmt
		query string
	}{
		{&s.savepoint, `SAVEPOINT write`},
		{&s.rollbackTo, `ROLLBACK TO write`},
		{&s.release, `RELEASE write`},
		{&s.insertSubject, `INSERT INTO subjects (id, residency, kek_id, wrapped_key, created_at)
			VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`},
		{&s.subjectExists, `SELECT count(*) FROM subjects WHERE id = ?`},
		{&s.recordOwner, `SELECT subject FROM records WHERE collection = ? AND id = ?`},
		{&s.upsertRecord, `INSERT INTO records (collection, id, subject, clear, sealed, updated_at)
			VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (collection, id) DO UPDATE SET
			clear = excluded.clear, sealed = excluded.sealed, updated_at = excluded.updated_at`},
		{&s.deleteRefs, `DELETE FROM token_refs WHERE collection = ? AND record = ?`},
		{&s.insertRef, `INSERT INTO token_refs (` + refColumns + `)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`},
	} {
		if *p.stmt, err = s.w.Prepare(p.query); err != nil {
			return err
		}
	}
	return nil
}

// dsn returns the modernc.org/sqlite DSN of the file at the absolute path,
// as a file: URI so that no character of the path is read as a parameter.
func dsn(path string, params ...string) string {
	u := url.URL{Scheme: "file", Path: path, OmitHost: true, RawQuery: pragmas}
	for _, p := range params {
		u.RawQuery += "&" + p
	}
	return u.String()
}

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrations returns the schema migrations in order: migrations()[v] takes
// the schema from version v to v+1. They are migrations/1.sql, 2.sql, ...
func migrations() []string {
	var m []string
	for v := 1; ; v++ {
		b, err := migrationFiles.ReadFile(fmt.Sprintf("migrations/%d.sql", v))
		if err != nil {
			return m
		}
		m = append(m, string(b))
	}
}

// migrate brings the schema of the database up to date, in one
// transaction, and returns the location label it holds. The first call
// records location; later ones check it.
func migrate(db *sql.DB, location string) (string, error) {
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return "", err
	}
	defer tx.Rollback()

	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS meta (
		id             INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
		schema_version INTEGER NOT NULL,
		location       TEXT    NOT NULL
	) STRICT`); err != nil {
		return "", fmt.Errorf("couldn't create meta table: %w", err)
	}
	var version int
	var stored string
	err = tx.QueryRowContext(ctx, `SELECT schema_version, location FROM meta WHERE id = 1`).Scan(&version, &stored)
	if errors.Is(err, sql.ErrNoRows) {
		stored = location
		_, err = tx.ExecContext(ctx, `INSERT INTO meta (id, schema_version, location) VALUES (1, 0, ?)`, location)
	}
	if err != nil {
		return "", fmt.Errorf("couldn't read meta table: %w", err)
	}
	if stored != location {
		return "", fmt.Errorf("store holds the data of location %q, not %q", stored, location)
	}

	m := migrations()
	if version > len(m) {
		return "", fmt.Errorf("schema version %d is newer than this custos knows (%d)", version, len(m))
	}
	for v := version; v < len(m); v++ {
		if _, err := tx.ExecContext(ctx, m[v]); err != nil {
			return "", fmt.Errorf("couldn't migrate schema to version %d: %w", v+1, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE meta SET schema_version = ? WHERE id = 1`, len(m)); err != nil {
		return "", fmt.Errorf("couldn't record schema version: %w", err)
	}
	return stored, tx.Commit()
}

// Location returns the location label recorded in the store.
func (s *Store) Location() string { return s.location }

// Close closes the store, once the writes begun before it are committed;
// writes begun after it fail. It may be called more than once.
func (s *Store) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.more.Signal()
	<-s.idle

	var errs []error
	for _, stmt := range []*sql.Stmt{s.subject, s.record, s.tokenRefs, s.subjectTokenRefs,
		s.savepoint, s.rollbackTo, s.release,
		s.insertSubject, s.subjectExists, s.recordOwner, s.upsertRecord, s.deleteRefs, s.insertRef} {
		if stmt != nil {
			errs = append(errs, stmt.Close())
		}
	}
	if s.r != nil {
		errs = append(errs, s.r.Close())
	}
	return errors.Join(append(errs, s.w.Close())...)
}

// CreateSubject implements custos.Store.
func (s *Store) CreateSubject(ctx context.Context, sub custos.StoredSubject) (created bool, err error) {
	err = s.write(ctx, 0, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.StmtContext(ctx, s.insertSubject).ExecContext(ctx, sub.ID, sub.Residency, sub.Key.KEKID, notNull(sub.Key.Ciphertext), micros(sub.CreatedAt))
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		created = n == 1
		return err
	})
	if err != nil {
		return false, fmt.Errorf("couldn't create subject: %w", err)
	}
	return created, nil
}

const subjectColumns = `id, residency, kek_id, wrapped_key, created_at`

func scanSubject(row interface{ Scan(...any) error }) (custos.StoredSubject, error) {
	var sub custos.StoredSubject
	var at int64
	err := row.Scan(&sub.ID, &sub.Residency, &sub.Key.KEKID, blob{&sub.Key.Ciphertext}, &at)
	sub.CreatedAt = time.UnixMicro(at).UTC()
	return sub, err
}

// Subject implements custos.Store.
func (s *Store) Subject(ctx context.Context, id string) (custos.StoredSubject, error) {
	sub, err := scanSubject(s.subject.QueryRowContext(ctx, id))
	if errors.Is(err, sql.ErrNoRows) {
		return custos.StoredSubject{}, fmt.Errorf("subject %w", custos.ErrNotFound)
	} else if err != nil {
		return custos.StoredSubject{}, fmt.Errorf("couldn't read subject: %w", err)
	}
	return sub, nil
}

// PutRecord implements custos.Store. It refuses refs that do not point to r.
func (s *Store) PutRecord(ctx context.Context, r custos.SealedRecord, refs []custos.TokenRef) (created bool, err error) {
	if err := r.CheckRefs(refs); err != nil {
		return false, err
	}
	err = s.write(ctx, batchSize(r, refs), func(ctx context.Context, tx *sql.Tx) error {
		var n int
		err := tx.StmtContext(ctx, s.subjectExists).QueryRowContext(ctx, r.Subject).Scan(&n)
		if err != nil {
			return err
		} else if n == 0 {
			return fmt.Errorf("subject %w", custos.ErrNotFound)
		}

		var owner string
		err = tx.StmtContext(ctx, s.recordOwner).QueryRowContext(ctx, r.Collection, r.ID).Scan(&owner)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			created = true
		case err != nil:
			return err
		case owner != r.Subject:
			return fmt.Errorf("record of another subject: %w", custos.ErrConflict)
		}

		if _, err := tx.StmtContext(ctx, s.upsertRecord).ExecContext(ctx, r.Collection, r.ID, r.Subject, nullable(r.Clear), nullable(r.Sealed), micros(r.UpdatedAt)); err != nil {
			return err
		}
		return s.replaceRefs(ctx, tx, r, refs)
	})
	if err != nil {
		return false, fmt.Errorf("couldn't put record: %w", err)
	}
	return created, nil
}

func (s *Store) replaceRefs(ctx context.Context, tx *sql.Tx, r custos.SealedRecord, refs []custos.TokenRef) error {
	if _, err := tx.StmtContext(ctx, s.deleteRefs).ExecContext(ctx, r.Collection, r.ID); err != nil {
		return err
	}
	if len(refs) == 0 {
		return nil
	}
	stmt := tx.StmtContext(ctx, s.insertRef)
	for _, x := range refs {
		if _, err := stmt.ExecContext(ctx, x.Index, x.KEKID, x.Audience, x.Subject, x.Collection, x.Record, x.Field, x.Sealed); err != nil {
			return err
		}
	}
	return nil
}

// Record implements custos.Store.
func (s *Store) Record(ctx context.Context, collection, id string) (custos.SealedRecord, error) {
	r := custos.SealedRecord{Collection: collection, ID: id}
	var at int64
	err := s.record.QueryRowContext(ctx, collection, id).Scan(&r.Subject, blob{&r.Clear}, blob{&r.Sealed}, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return custos.SealedRecord{}, fmt.Errorf("record %w", custos.ErrNotFound)
	} else if err != nil {
		return custos.SealedRecord{}, fmt.Errorf("couldn't read record: %w", err)
	}
	r.UpdatedAt = time.UnixMicro(at).UTC()
	return r, nil
}

// DeleteSubject implements custos.Store.
func (s *Store) DeleteSubject(ctx context.Context, id string) (records int, err error) {
	err = s.write(ctx, 0, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM records WHERE subject = ?`, id)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		records = int(n)
		// token_refs follow by ON DELETE CASCADE.
		res, err = tx.ExecContext(ctx, `DELETE FROM subjects WHERE id = ?`, id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return fmt.Errorf("subject %w", custos.ErrNotFound)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("couldn't delete subject: %w", err)
	}
	return records, nil
}

// refColumns are the columns of token_refs in the order scanRef reads.
const refColumns = `idx, kek_id, audience, subject, collection, record, field, sealed`

func scanRef(row interface{ Scan(...any) error }) (custos.TokenRef, error) {
	var x custos.TokenRef
	err := row.Scan(blob{&x.Index}, &x.KEKID, &x.Audience, &x.Subject, &x.Collection, &x.Record, &x.Field, blob{&x.Sealed})
	return x, err
}

func collectRefs(rows *sql.Rows, err error) ([]custos.TokenRef, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var refs []custos.TokenRef
	for rows.Next() {
		x, err := scanRef(rows)
		if err != nil {
			return nil, err
		}
		refs = append(refs, x)
	}
	return refs, rows.Err()
}

// TokenRefs implements custos.Store.
func (s *Store) TokenRefs(ctx context.Context, indexes [][]byte) ([]custos.TokenRef, error) {
	if len(indexes) > custos.MaxTokenIndexes {
		return nil, fmt.Errorf("couldn't read token refs: %d indexes, more than %d", len(indexes), custos.MaxTokenIndexes)
	}
	if len(indexes) == 0 {
		return nil, nil
	}
	args := make([]any, custos.MaxTokenIndexes)
	for i := range args {
		args[i] = notNull(indexes[min(i, len(indexes)-1)])
	}
	refs, err := collectRefs(s.tokenRefs.QueryContext(ctx, args...))
	if err != nil {
		return nil, fmt.Errorf("couldn't read token refs: %w", err)
	}
	return refs, nil
}

// SubjectTokenRefs implements custos.Store.
func (s *Store) SubjectTokenRefs(ctx context.Context, subject string) ([]custos.TokenRef, error) {
	refs, err := collectRefs(s.subjectTokenRefs.QueryContext(ctx, subject))
	if err != nil {
		return nil, fmt.Errorf("couldn't read token refs: %w", err)
	}
	return refs, nil
}

// ReindexTokenRef implements custos.Store.
func (s *Store) ReindexTokenRef(ctx context.Context, ref custos.TokenRef, newIndex []byte, newKEK string) (swapped bool, err error) {
	if len(newIndex) == 0 || newKEK == "" {
		return false, errors.New("couldn't reindex token ref: empty index or KEK")
	}
	err = s.write(ctx, 0, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE token_refs SET idx = ?, kek_id = ?
			WHERE idx = ? AND kek_id = ? AND audience = ? AND subject = ? AND collection = ? AND record = ? AND field = ?`,
			newIndex, newKEK, notNull(ref.Index), ref.KEKID, ref.Audience, ref.Subject, ref.Collection, ref.Record, ref.Field)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if swapped = n > 0; swapped {
			return nil
		}
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM token_refs
			WHERE collection = ? AND record = ? AND subject = ? AND audience = ? AND field = ?`,
			ref.Collection, ref.Record, ref.Subject, ref.Audience, ref.Field).Scan(&n); err != nil {
			return err
		} else if n == 0 {
			return fmt.Errorf("token ref %w", custos.ErrNotFound)
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("couldn't reindex token ref: %w", err)
	}
	return swapped, nil
}

// Records implements custos.Store. Ids compare as bytes.
func (s *Store) Records(ctx context.Context, collection, after string, limit int) ([]custos.SealedRecord, error) {
	return s.records(ctx, `SELECT collection, id, subject, clear, sealed, updated_at FROM records
		WHERE collection = ? AND id > ? ORDER BY id LIMIT ?`, limit, collection, after, limit)
}

// SubjectRecords implements custos.Store.
func (s *Store) SubjectRecords(ctx context.Context, collection, subject, after string, limit int) ([]custos.SealedRecord, error) {
	return s.records(ctx, `SELECT collection, id, subject, clear, sealed, updated_at FROM records
		WHERE subject = ? AND collection = ? AND id > ? ORDER BY id LIMIT ?`, limit, subject, collection, after, limit)
}

// records runs a query of records.
func (s *Store) records(ctx context.Context, query string, limit int, args ...any) ([]custos.SealedRecord, error) {
	if limit < 1 {
		return nil, fmt.Errorf("couldn't list records: limit %d is not positive", limit)
	}
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("couldn't list records: %w", err)
	}
	defer rows.Close()
	var recs []custos.SealedRecord
	for rows.Next() {
		var r custos.SealedRecord
		var at int64
		if err := rows.Scan(&r.Collection, &r.ID, &r.Subject, blob{&r.Clear}, blob{&r.Sealed}, &at); err != nil {
			return nil, fmt.Errorf("couldn't list records: %w", err)
		}
		r.UpdatedAt = time.UnixMicro(at).UTC()
		recs = append(recs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("couldn't list records: %w", err)
	}
	return recs, nil
}

// Subjects implements custos.Store. limit must be positive.
func (s *Store) Subjects(ctx context.Context, after string, limit int) ([]custos.StoredSubject, error) {
	if limit < 1 {
		return nil, fmt.Errorf("couldn't list subjects: limit %d is not positive", limit)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT `+subjectColumns+` FROM subjects
		WHERE id > ? ORDER BY id LIMIT ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("couldn't list subjects: %w", err)
	}
	defer rows.Close()
	var subs []custos.StoredSubject
	for rows.Next() {
		sub, err := scanSubject(rows)
		if err != nil {
			return nil, fmt.Errorf("couldn't list subjects: %w", err)
		}
		subs = append(subs, sub)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("couldn't list subjects: %w", err)
	}
	return subs, nil
}

// RewrapKey implements custos.Store.
func (s *Store) RewrapKey(ctx context.Context, id string, old, next custos.WrappedKey) (swapped bool, err error) {
	err = s.write(ctx, 0, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE subjects SET kek_id = ?, wrapped_key = ?
			WHERE id = ? AND kek_id = ? AND wrapped_key = ?`,
			next.KEKID, notNull(next.Ciphertext), id, old.KEKID, notNull(old.Ciphertext))
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if swapped = n == 1; swapped {
			return nil
		}
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM subjects WHERE id = ?`, id).Scan(&n); err != nil {
			return err
		} else if n == 0 {
			return fmt.Errorf("subject %w", custos.ErrNotFound)
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("couldn't rewrap key: %w", err)
	}
	return swapped, nil
}

// micros returns t as stored: microseconds since the Unix epoch, rounded
// down.
func micros(t time.Time) int64 { return t.UnixMicro() }

// nullable returns the argument that stores b: NULL for nil, a blob
// otherwise, an empty one included.
func nullable(b []byte) any {
	if b == nil {
		return nil
	}
	return notNull(b)
}

// notNull returns the argument that stores b as a blob, never as NULL.
func notNull(b []byte) []byte {
	if b == nil {
		return []byte{} // the driver binds nil as NULL
	}
	return b
}

// blob scans a BLOB column into *b: nil for NULL, a non-nil slice for any
// blob, an empty one included.
type blob struct{ b *[]byte }

func (x blob) Scan(v any) error {
	switch v := v.(type) {
	case nil:
		*x.b = nil
	case []byte:
		*x.b = append([]byte{}, v...)
	default:
		return fmt.Errorf("blob column holds %T", v)
	}
	return nil
}

// Backup writes a consistent copy of the database to path, which must not
// exist, while the store keeps serving. The copy holds ciphertext and
// wrapped keys only; like the live store, it is sealed by the keyring.
func (s *Store) Backup(ctx context.Context, path string) error {
	if _, err := s.w.ExecContext(ctx, "VACUUM INTO ?", path); err != nil {
		return fmt.Errorf("couldn't back up store: %w", err)
	}
	return os.Chmod(path, 0o600)
}
