// Package postgres is a custos.Store in PostgreSQL or CockroachDB, for a
// custodian that runs custos on more than one machine. It uses pgx through
// a pgxpool.Pool.
//
// Tables live in the first schema of the connection's search_path; to keep
// them apart from other applications, give the DSN
// options=-csearch_path%3Dcustos. The schema is versioned in a custos_meta
// table, with the location label.
//
// Durability: a method returns nil after its transaction has committed, so
// its change is as durable as the server makes commits; do not turn
// synchronous_commit off for custos.
//
// Concurrency: many processes may share one database. PutRecord and
// DeleteSubject lock the subject's row first (FOR SHARE, FOR UPDATE), so
// that a record is never written for a subject being deleted and the count
// DeleteSubject returns is exact. Transactions that fail with a
// serialization failure or a deadlock, which CockroachDB's SERIALIZABLE
// isolation makes routine, are retried.
//
// The SQL is the common dialect of PostgreSQL and CockroachDB: INSERT ... ON
// CONFLICT, BYTEA, TIMESTAMPTZ, TEXT, no advisory locks. Every statement
// takes its values as parameters; no id is ever part of SQL text. The
// database holds ciphertext, keyed hashes and ids only.
//
// Erasure: PostgreSQL keeps the versions of rows a DELETE or UPDATE made
// dead in the table's pages until VACUUM reclaims them, and in the
// write-ahead log (and its archive) until that is recycled; see
// docs/storage.md for what a custodian does after erasures.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/custos/custos"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Store is a custos.Store in PostgreSQL or CockroachDB. It is safe for
// concurrent use.
type Store struct {
	pool     *pgxpool.Pool
	location string
}

var _ custos.Store = (*Store)(nil)

// Open connects to the database at dsn, a PostgreSQL URL or keyword/value
// string as pgxpool.ParseConfig reads it (pool_max_conns sets the pool's
// size), and brings the schema up to date. location is the label of where
// the database sits, such as "postgres:us-east-1". The first Open records it
// in the database; a later Open with another label fails.
func Open(ctx context.Context, dsn, location string) (*Store, error) {
	if location == "" {
		return nil, errors.New("couldn't open store: empty location label")
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's message may quote the DSN, password included.
		return nil, errors.New("couldn't open store: malformed DSN")
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("couldn't open store: %w", err)
	}
	s := &Store{pool: pool}
	if s.location, err = s.migrate(ctx, location); err != nil {
		pool.Close()
		return nil, fmt.Errorf("couldn't open store: %w", err)
	}
	return s, nil
}

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrations returns the schema migrations in order: migrations(...)[v]
// takes the schema from version v to v+1. They are migrations/1.sql, 2.sql,
// ... On PostgreSQL, their /*COLLATE "C"*/ comments are made clauses.
func migrations(cockroach bool) []string {
	var m []string
	for v := 1; ; v++ {
		b, err := migrationFiles.ReadFile(fmt.Sprintf("migrations/%d.sql", v))
		if err != nil {
			return m
		}
		sql := string(b)
		if !cockroach {
			sql = strings.ReplaceAll(sql, `/*COLLATE "C"*/`, `COLLATE "C"`)
		}
		m = append(m, sql)
	}
}

// migrate brings the schema up to date and returns the location label the
// database holds. The first call records location; later ones check it.
// Concurrent callers queue on custos_meta's row lock.
func (s *Store) migrate(ctx context.Context, location string) (string, error) {
	var version string
	if err := s.pool.QueryRow(ctx, `SELECT version()`).Scan(&version); err != nil {
		return "", err
	}
	cockroach := strings.Contains(version, "CockroachDB")

	const create = `CREATE TABLE IF NOT EXISTS custos_meta (
		id             INT  NOT NULL PRIMARY KEY CHECK (id = 1),
		schema_version INT  NOT NULL,
		location       TEXT NOT NULL
	)`
	// PostgreSQL's CREATE TABLE IF NOT EXISTS may fail when another
	// process creates the table at the same moment; the second try sees it.
	if _, err := s.pool.Exec(ctx, create); err != nil {
		if _, err := s.pool.Exec(ctx, create); err != nil {
			return "", fmt.Errorf("couldn't create custos_meta: %w", err)
		}
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO custos_meta (id, schema_version, location)
		VALUES (1, 0, $1) ON CONFLICT (id) DO NOTHING`, location); err != nil {
		return "", fmt.Errorf("couldn't write custos_meta: %w", err)
	}

	var stored string
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var v int
		if err := tx.QueryRow(ctx, `SELECT schema_version, location FROM custos_meta
			WHERE id = 1 FOR UPDATE`).Scan(&v, &stored); err != nil {
			return fmt.Errorf("couldn't read custos_meta: %w", err)
		}
		if stored != location {
			return fmt.Errorf("database holds the data of location %q, not %q", stored, location)
		}
		m := migrations(cockroach)
		if v > len(m) {
			return fmt.Errorf("schema version %d is newer than this custos knows (%d)", v, len(m))
		}
		for ; v < len(m); v++ {
			if _, err := tx.Exec(ctx, m[v]); err != nil {
				return fmt.Errorf("couldn't migrate schema to version %d: %w", v+1, err)
			}
			if _, err := tx.Exec(ctx, `UPDATE custos_meta SET schema_version = $1 WHERE id = 1`, v+1); err != nil {
				return fmt.Errorf("couldn't record schema version: %w", err)
			}
		}
		return nil
	})
	return stored, err
}

// Location returns the location label recorded in the database.
func (s *Store) Location() string { return s.location }

// Close closes the store's connections. It may be called more than once.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// errRace says that a concurrent transaction inserted the row this one
// meant to: running it again takes the path for an existing row.
var errRace = errors.New("concurrent insert")

// inTx runs f in a transaction and commits it if f returns nil, running it
// again, up to a few times, when the database asks for a retry.
func (s *Store) inTx(ctx context.Context, f func(tx pgx.Tx) error) error {
	const attempts = 10
	for i := 1; ; i++ {
		err := pgx.BeginFunc(ctx, s.pool, f)
		if err == nil || i == attempts || !retryable(err) {
			return err
		}
		backoff := time.Duration(rand.Int64N(int64(i) * int64(time.Millisecond)))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
	}
}

// retryable reports whether err says that running the transaction again
// may succeed: a serialization failure (CockroachDB's "restart
// transaction"), a deadlock, or errRace.
func retryable(err error) bool {
	if errors.Is(err, errRace) {
		return true
	}
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40001" || pgErr.Code == "40P01")
}

// isForeignKeyViolation reports whether err is the violation of a foreign
// key: a row written for a subject that no longer exists.
func isForeignKeyViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23503"
}

// CreateSubject implements custos.Store.
func (s *Store) CreateSubject(ctx context.Context, sub custos.StoredSubject) (bool, error) {
	tag, err := s.pool.Exec(ctx, `INSERT INTO subjects (id, residency, kek_id, wrapped_key, created_at)
		VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING`,
		sub.ID, sub.Residency, sub.Key.KEKID, notNull(sub.Key.Ciphertext), micros(sub.CreatedAt))
	if err != nil {
		return false, fmt.Errorf("couldn't create subject: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

const subjectColumns = `id, residency, kek_id, wrapped_key, created_at`

func scanSubject(row pgx.Row) (custos.StoredSubject, error) {
	var sub custos.StoredSubject
	err := row.Scan(&sub.ID, &sub.Residency, &sub.Key.KEKID, &sub.Key.Ciphertext, &sub.CreatedAt)
	sub.CreatedAt = sub.CreatedAt.UTC()
	return sub, err
}

// Subject implements custos.Store.
func (s *Store) Subject(ctx context.Context, id string) (custos.StoredSubject, error) {
	sub, err := scanSubject(s.pool.QueryRow(ctx, `SELECT `+subjectColumns+` FROM subjects WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
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
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		created = false
		var one int
		err := tx.QueryRow(ctx, `SELECT 1 FROM subjects WHERE id = $1 FOR SHARE`, r.Subject).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("subject %w", custos.ErrNotFound)
		} else if err != nil {
			return err
		}

		var owner string
		err = tx.QueryRow(ctx, `SELECT subject FROM records WHERE collection = $1 AND id = $2 FOR UPDATE`,
			r.Collection, r.ID).Scan(&owner)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			tag, err := tx.Exec(ctx, `INSERT INTO records (collection, id, subject, clear, sealed, updated_at)
				VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (collection, id) DO NOTHING`,
				r.Collection, r.ID, r.Subject, r.Clear, r.Sealed, micros(r.UpdatedAt))
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 0 {
				return errRace
			}
			created = true
		case err != nil:
			return err
		case owner != r.Subject:
			return fmt.Errorf("record of another subject: %w", custos.ErrConflict)
		default:
			if _, err := tx.Exec(ctx, `UPDATE records SET clear = $3, sealed = $4, updated_at = $5
				WHERE collection = $1 AND id = $2`,
				r.Collection, r.ID, r.Clear, r.Sealed, micros(r.UpdatedAt)); err != nil {
				return err
			}
		}
		return replaceRefs(ctx, tx, r, refs)
	})
	if isForeignKeyViolation(err) {
		err = fmt.Errorf("subject %w", custos.ErrNotFound)
	}
	if err != nil {
		return false, fmt.Errorf("couldn't put record: %w", err)
	}
	return created, nil
}

// replaceRefs replaces the token refs of r with refs, in one round trip.
func replaceRefs(ctx context.Context, tx pgx.Tx, r custos.SealedRecord, refs []custos.TokenRef) error {
	b := &pgx.Batch{}
	b.Queue(`DELETE FROM token_refs WHERE collection = $1 AND record = $2`, r.Collection, r.ID)
	for _, x := range refs {
		b.Queue(`INSERT INTO token_refs (`+refColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING`,
			x.Index, x.KEKID, x.Audience, x.Subject, x.Collection, x.Record, x.Field, x.Sealed)
	}
	br := tx.SendBatch(ctx, b)
	for range b.Len() {
		if _, err := br.Exec(); err != nil {
			br.Close()
			return err
		}
	}
	return br.Close()
}

// Record implements custos.Store.
func (s *Store) Record(ctx context.Context, collection, id string) (custos.SealedRecord, error) {
	r := custos.SealedRecord{Collection: collection, ID: id}
	err := s.pool.QueryRow(ctx, `SELECT subject, clear, sealed, updated_at FROM records
		WHERE collection = $1 AND id = $2`, collection, id).Scan(&r.Subject, &r.Clear, &r.Sealed, &r.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return custos.SealedRecord{}, fmt.Errorf("record %w", custos.ErrNotFound)
	} else if err != nil {
		return custos.SealedRecord{}, fmt.Errorf("couldn't read record: %w", err)
	}
	r.UpdatedAt = r.UpdatedAt.UTC()
	return r, nil
}

// DeleteSubject implements custos.Store.
func (s *Store) DeleteSubject(ctx context.Context, id string) (records int, err error) {
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		var one int
		err := tx.QueryRow(ctx, `SELECT 1 FROM subjects WHERE id = $1 FOR UPDATE`, id).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("subject %w", custos.ErrNotFound)
		} else if err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `DELETE FROM records WHERE subject = $1`, id)
		if err != nil {
			return err
		}
		records = int(tag.RowsAffected())
		// token_refs follow by ON DELETE CASCADE.
		_, err = tx.Exec(ctx, `DELETE FROM subjects WHERE id = $1`, id)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("couldn't delete subject: %w", err)
	}
	return records, nil
}

// refColumns are the columns of token_refs in the order scanRef reads.
const refColumns = `idx, kek_id, audience, subject, collection, record, field, sealed`

func scanRef(row pgx.CollectableRow) (custos.TokenRef, error) {
	var x custos.TokenRef
	err := row.Scan(&x.Index, &x.KEKID, &x.Audience, &x.Subject, &x.Collection, &x.Record, &x.Field, &x.Sealed)
	return x, err
}

// TokenRefs implements custos.Store.
func (s *Store) TokenRefs(ctx context.Context, indexes [][]byte) ([]custos.TokenRef, error) {
	if len(indexes) > custos.MaxTokenIndexes {
		return nil, fmt.Errorf("couldn't read token refs: %d indexes, more than %d", len(indexes), custos.MaxTokenIndexes)
	}
	if len(indexes) == 0 {
		return nil, nil
	}
	args := make([][]byte, len(indexes))
	for i, x := range indexes {
		args[i] = notNull(x)
	}
	rows, _ := s.pool.Query(ctx, `SELECT `+refColumns+` FROM token_refs WHERE idx = ANY($1)`, args)
	refs, err := pgx.CollectRows(rows, scanRef)
	if err != nil {
		return nil, fmt.Errorf("couldn't read token refs: %w", err)
	}
	return refs, nil
}

// SubjectTokenRefs implements custos.Store.
func (s *Store) SubjectTokenRefs(ctx context.Context, subject string) ([]custos.TokenRef, error) {
	rows, _ := s.pool.Query(ctx, `SELECT `+refColumns+` FROM token_refs WHERE subject = $1`, subject)
	refs, err := pgx.CollectRows(rows, scanRef)
	if err != nil {
		return nil, fmt.Errorf("couldn't read token refs: %w", err)
	}
	return refs, nil
}

// ReindexTokenRef implements custos.Store. It is one statement: the ref's
// existence and the swap are read from the same snapshot.
func (s *Store) ReindexTokenRef(ctx context.Context, ref custos.TokenRef, newIndex []byte, newKEK string) (bool, error) {
	if len(newIndex) == 0 || newKEK == "" {
		return false, errors.New("couldn't reindex token ref: empty index or KEK")
	}
	var exists, swapped bool
	err := s.pool.QueryRow(ctx, `WITH
		current AS (SELECT 1 FROM token_refs
			WHERE collection = $5 AND record = $6 AND subject = $4 AND audience = $3 AND field = $7),
		swapped AS (UPDATE token_refs SET idx = $8, kek_id = $9
			WHERE idx = $1 AND kek_id = $2 AND audience = $3 AND subject = $4
				AND collection = $5 AND record = $6 AND field = $7 RETURNING 1)
		SELECT EXISTS (SELECT 1 FROM current), EXISTS (SELECT 1 FROM swapped)`,
		notNull(ref.Index), ref.KEKID, ref.Audience, ref.Subject, ref.Collection, ref.Record, ref.Field,
		newIndex, newKEK).Scan(&exists, &swapped)
	switch {
	case err != nil:
		return false, fmt.Errorf("couldn't reindex token ref: %w", err)
	case !exists && !swapped:
		return false, fmt.Errorf("couldn't reindex token ref: %w", custos.ErrNotFound)
	}
	return swapped, nil
}

// Records implements custos.Store. Ids compare and sort by the column's
// collation, one order for both.
func (s *Store) Records(ctx context.Context, collection, after string, limit int) ([]custos.SealedRecord, error) {
	return s.records(ctx, `SELECT collection, id, subject, clear, sealed, updated_at FROM records
		WHERE collection = $1 AND id > $2 ORDER BY id LIMIT $3`, limit, collection, after, limit)
}

// SubjectRecords implements custos.Store.
func (s *Store) SubjectRecords(ctx context.Context, collection, subject, after string, limit int) ([]custos.SealedRecord, error) {
	return s.records(ctx, `SELECT collection, id, subject, clear, sealed, updated_at FROM records
		WHERE subject = $1 AND collection = $2 AND id > $3 ORDER BY id LIMIT $4`, limit, subject, collection, after, limit)
}

// records runs a query of records.
func (s *Store) records(ctx context.Context, query string, limit int, args ...any) ([]custos.SealedRecord, error) {
	if limit < 1 {
		return nil, fmt.Errorf("couldn't list records: limit %d is not positive", limit)
	}
	rows, _ := s.pool.Query(ctx, query, args...)
	recs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (custos.SealedRecord, error) {
		var r custos.SealedRecord
		err := row.Scan(&r.Collection, &r.ID, &r.Subject, &r.Clear, &r.Sealed, &r.UpdatedAt)
		r.UpdatedAt = r.UpdatedAt.UTC()
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("couldn't list records: %w", err)
	}
	return recs, nil
}

// Subjects implements custos.Store. limit must be positive.
func (s *Store) Subjects(ctx context.Context, after string, limit int) ([]custos.StoredSubject, error) {
	if limit < 1 {
		return nil, fmt.Errorf("couldn't list subjects: limit %d is not positive", limit)
	}
	rows, _ := s.pool.Query(ctx, `SELECT `+subjectColumns+` FROM subjects
		WHERE id > $1 ORDER BY id LIMIT $2`, after, limit)
	subs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (custos.StoredSubject, error) {
		return scanSubject(row)
	})
	if err != nil {
		return nil, fmt.Errorf("couldn't list subjects: %w", err)
	}
	return subs, nil
}

// RewrapKey implements custos.Store. It is one statement: the subject's
// existence and the swap are read from the same snapshot.
func (s *Store) RewrapKey(ctx context.Context, id string, old, next custos.WrappedKey) (bool, error) {
	var exists, swapped bool
	err := s.pool.QueryRow(ctx, `WITH
		current AS (SELECT id FROM subjects WHERE id = $1),
		swapped AS (UPDATE subjects SET kek_id = $4, wrapped_key = $5
			WHERE id = $1 AND kek_id = $2 AND wrapped_key = $3 RETURNING id)
		SELECT EXISTS (SELECT 1 FROM current), EXISTS (SELECT 1 FROM swapped)`,
		id, old.KEKID, notNull(old.Ciphertext), next.KEKID, notNull(next.Ciphertext)).Scan(&exists, &swapped)
	switch {
	case err != nil:
		return false, fmt.Errorf("couldn't rewrap key: %w", err)
	case !exists && !swapped:
		return false, fmt.Errorf("couldn't rewrap key: subject %w", custos.ErrNotFound)
	}
	return swapped, nil
}

// micros returns t as stored: to the microsecond, rounded down, so that
// what is read back equals what custos wrote whatever the driver does with
// nanoseconds.
func micros(t time.Time) time.Time {
	return time.UnixMicro(t.UnixMicro()).UTC()
}

// notNull returns b, or an empty slice for nil, which pgx sends as NULL.
func notNull(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
