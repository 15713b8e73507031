package custos

import (
	"context"
	"errors"
	"time"
)

// WrappedKey is a subject's data key sealed under a key-encryption key (KEK).
// Only the Keyring that holds the KEK named by KEKID can unwrap it.
type WrappedKey struct {
	KEKID      string
	Ciphertext []byte
}

// StoredSubject is a subject as the Store keeps it: with its wrapped data key.
type StoredSubject struct {
	Subject
	Key       WrappedKey
	CreatedAt time.Time
}

// SealedRecord is a record as the Store keeps it. Fields of sealed classes are
// in Sealed, encrypted under the subject's data key; the others are in Clear
// as a JSON object. The Store never sees a protected value in clear.
type SealedRecord struct {
	Collection string
	ID         string
	Subject    string
	Clear      []byte // JSON object of the fields of unsealed classes
	Sealed     []byte // vault ciphertext of the protected fields; nil when there are none
	UpdatedAt  time.Time
}

// CheckRefs returns an error if a ref does not belong to r or lacks what a
// Store must keep: every PutRecord implementation refuses such refs, since
// a ref pointing to another record would outlive that record's next
// replacement.
func (r SealedRecord) CheckRefs(refs []TokenRef) error {
	for _, x := range refs {
		if x.Subject != r.Subject || x.Collection != r.Collection || x.Record != r.ID {
			return errors.New("couldn't put record: a token ref points to another record")
		}
		if len(x.Index) == 0 || x.KEKID == "" || len(x.Sealed) == 0 {
			return errors.New("couldn't put record: a token ref lacks its index, KEK or sealed token")
		}
	}
	return nil
}

// TokenRef says where a token handed to an audience points: the field of a
// record whose value it stands for. The Store keeps refs so that a token can
// be detokenized, and deletes them with their subject, so that erased
// subjects' tokens resolve to nothing.
//
// A ref never holds its token, nor anything computable from a value without
// a key that rotation destroys: it is found by Index, a keyed hash of the
// token under a key bound to the KEK named by KEKID (Keyring.TokenIndex),
// and carries the token only sealed under the subject's data key, so that a
// rotation can index it again under the next KEK. Once the subject is
// erased and the KEK rotated, a copy of a ref taken before the erasure
// leads to no token and no value.
type TokenRef struct {
	Index      []byte // HMAC-SHA256 of the token under the index key of KEKID
	KEKID      string // the KEK whose index key computed Index
	Audience   string
	Subject    string
	Collection string
	Record     string
	Field      string
	Sealed     []byte // the token, sealed under the subject's data key
}

// MaxTokenIndexes is the most indexes Store.TokenRefs takes at once.
const MaxTokenIndexes = 8

// Store keeps subjects, sealed records and token refs.
//
// Implementations are safe for concurrent use by many goroutines and, for
// server-backed stores, by many processes. Every method that returns nil has
// made its change durable. Methods return ErrNotFound and ErrConflict as
// documented and wrap every other failure; a caller must treat any error as
// "nothing is known to have happened" and fail the request.
//
// A Store is trusted with ciphertext and pseudonyms only: it never receives
// a data key, a KEK or a protected value in clear.
type Store interface {
	// Location returns the location label the store declares, such as
	// "us-east" or "sqlite:/var/lib/custos". custos refuses to start on a
	// store whose location is not permitted for its jurisdiction.
	Location() string

	// CreateSubject stores s if no subject with its id exists and reports
	// whether it did. An existing subject is left untouched.
	CreateSubject(ctx context.Context, s StoredSubject) (created bool, err error)

	// Subject returns the subject with the given id, or ErrNotFound.
	Subject(ctx context.Context, id string) (StoredSubject, error)

	// PutRecord stores r, replacing the record with the same collection and
	// id, and replaces that record's token refs with refs, all atomically.
	// It reports whether the record is new. It returns ErrNotFound when r's
	// subject does not exist, and ErrConflict when a record with the same
	// collection and id belongs to another subject. It refuses refs that
	// point to another record or lack their Index, KEKID or Sealed.
	PutRecord(ctx context.Context, r SealedRecord, refs []TokenRef) (created bool, err error)

	// Record returns the record with the given collection and id, or
	// ErrNotFound.
	Record(ctx context.Context, collection, id string) (SealedRecord, error)

	// DeleteSubject deletes the subject with the given id, with its wrapped
	// data key, every record and every token ref, atomically, and returns the
	// number of records deleted. It returns ErrNotFound when there is no such
	// subject.
	DeleteSubject(ctx context.Context, id string) (records int, err error)

	// TokenRefs returns the refs whose Index is one of indexes, in any
	// order; none when no index is known or indexes is empty. It refuses
	// more than MaxTokenIndexes indexes.
	TokenRefs(ctx context.Context, indexes [][]byte) ([]TokenRef, error)

	// SubjectTokenRefs returns every ref of the subject with the given id,
	// in any order; none when the subject has none or does not exist.
	SubjectTokenRefs(ctx context.Context, subject string) ([]TokenRef, error)

	// ReindexTokenRef replaces the Index and KEKID of ref with newIndex and
	// newKEK if the ref of its audience, subject, collection, record and
	// field is still stored under ref's Index and KEKID, and reports whether
	// it did (a compare-and-swap; Sealed is kept). It returns false when
	// that ref is stored under another Index or KEKID, and ErrNotFound when
	// there is no longer such a ref (its record was replaced without it or
	// its subject deleted).
	ReindexTokenRef(ctx context.Context, ref TokenRef, newIndex []byte, newKEK string) (bool, error)

	// Records returns up to limit records of the collection whose ids come
	// after the given id, in the store's order of ids, for walking a
	// collection: the order is stable and the one "after" compares by, so
	// a walk from "" meets every record that existed throughout it once.
	// limit must be positive.
	Records(ctx context.Context, collection, after string, limit int) ([]SealedRecord, error)

	// SubjectRecords is Records restricted to the records of one subject.
	SubjectRecords(ctx context.Context, collection, subject, after string, limit int) ([]SealedRecord, error)

	// Subjects returns up to limit subjects whose ids sort after the given
	// id, in id order, for walking every subject (key rotation).
	Subjects(ctx context.Context, after string, limit int) ([]StoredSubject, error)

	// RewrapKey replaces the wrapped key of subject id with next if it is
	// still old, and reports whether it did. A subject deleted meanwhile
	// returns ErrNotFound.
	RewrapKey(ctx context.Context, id string, old, next WrappedKey) (bool, error)

	// Close releases the store's resources.
	Close() error
}
