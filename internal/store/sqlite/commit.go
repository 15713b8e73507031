package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/custos/custos"
)

// The bounds of one transaction: the writer takes the writes waiting, in
// the order they came, up to maxBatch of them and, but for the first,
// maxBatchBytes of the values they store (batchSize).
const (
	maxBatch      = 256
	maxBatchBytes = 1 << 20
)

// errClosed is returned by the writes of a closed store.
var errClosed = errors.New("store is closed")

// An op is one call of a write method: a function to run in a savepoint of
// the writer's transaction, and where to send its outcome.
type op struct {
	ctx  context.Context // the caller's: done before the write is run, it is not run
	size int             // batchSize of what it stores
	do   func(ctx context.Context, tx *sql.Tx) error
	done chan error // receives the outcome once the transaction has ended; buffered
}

// writer is the queue of writes waiting for the writer goroutine, which
// runs them (writeLoop) until the store is closed and the queue empty.
type writer struct {
	mu     sync.Mutex
	more   *sync.Cond // signalled when a write is queued or closed is set
	queue  []*op
	closed bool
	idle   chan struct{} // closed when writeLoop returns

	savepoint, rollbackTo, release *sql.Stmt // prepared on the writer
}

// write runs do in the next transaction of the writer, in a savepoint of
// its own, and returns its error once that transaction has committed, or
// the transaction's error if it could not commit. do must use the context
// it is given, never the caller's: interrupting a statement would roll the
// whole transaction back, other callers' writes with it.
//
// A write whose context is done before the writer reaches it is not run,
// and returns the context's error. Once run, it is waited for: its caller
// learns whether the transaction committed whatever its context says.
func (s *Store) write(ctx context.Context, size int, do func(ctx context.Context, tx *sql.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	w := &op{ctx: ctx, size: size, do: do, done: make(chan error, 1)}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errClosed
	}
	s.queue = append(s.queue, w)
	s.mu.Unlock()
	s.more.Signal()

	select {
	case err := <-w.done:
		return err
	case <-ctx.Done():
		if s.withdraw(w) {
			return ctx.Err()
		}
		return <-w.done
	}
}

// withdraw removes w from the queue and reports whether it was there, not
// yet taken by the writer.
func (s *Store) withdraw(w *op) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.Index(s.queue, w)
	if i < 0 {
		return false
	}
	s.queue = slices.Delete(s.queue, i, i+1)
	return true
}

// writeLoop commits the queued writes, a batch at a time, until the store
// is closed and no write is left. It waits for no timer: a batch is what
// queued while the previous one committed, one write when there is one
// writer.
func (s *Store) writeLoop() {
	defer close(s.idle)
	for {
		batch := s.take()
		if batch == nil {
			return
		}
		errs := make([]error, len(batch))
		if err := s.commit(batch, errs); err != nil {
			for i := range errs {
				errs[i] = err
			}
		}
		for i, w := range batch {
			w.done <- errs[i]
		}
	}
}

// take waits for a write and takes the writes queued, within the bounds of
// a batch. It returns nil once the store is closed and the queue empty.
func (s *Store) take() []*op {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.queue) == 0 && !s.closed {
		s.more.Wait()
	}
	n, size := 0, 0
	for n < len(s.queue) && n < maxBatch && (n == 0 || size+s.queue[n].size <= maxBatchBytes) {
		size += s.queue[n].size
		n++
	}
	if n == 0 {
		return nil
	}
	batch := slices.Clone(s.queue[:n])
	s.queue = slices.Delete(s.queue, 0, n)
	return batch
}

// commit runs batch in one transaction, each write in a savepoint, and
// commits it: one fsync for all. It sets errs[i] to the error of the i-th
// write, whose savepoint it rolled back, and returns an error if the
// transaction did not commit: then no write of batch is stored, and errs
// say nothing, since the writes were run against a state that is gone.
func (s *Store) commit(batch []*op, errs []error) error {
	ctx := context.Background()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for i, w := range batch {
		if errs[i] = w.ctx.Err(); errs[i] != nil {
			continue
		}
		if errs[i], err = s.inSavepoint(ctx, tx, w.do); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// inSavepoint runs do in a savepoint of tx and returns its error, having
// rolled back what it did. It returns a second error when tx can no longer
// commit: SQLite rolls back the whole transaction on some errors (a full
// disk, an I/O error), and then the savepoint is gone.
func (s *Store) inSavepoint(ctx context.Context, tx *sql.Tx, do func(context.Context, *sql.Tx) error) (failed, broken error) {
	if _, err := tx.StmtContext(ctx, s.savepoint).ExecContext(ctx); err != nil {
		return nil, fmt.Errorf("couldn't begin savepoint: %w", err)
	}
	if failed = do(ctx, tx); failed != nil {
		// failed is formatted with %v: it may wrap a sentinel that is this
		// write's, not the other writes' of the transaction.
		if _, err := tx.StmtContext(ctx, s.rollbackTo).ExecContext(ctx); err != nil {
			return failed, fmt.Errorf("couldn't roll back a failed write (%v): %w", failed, err)
		}
	}
	if _, err := tx.StmtContext(ctx, s.release).ExecContext(ctx); err != nil {
		return failed, fmt.Errorf("couldn't release savepoint: %w", err)
	}
	return failed, nil
}

// batchSize is what a put of r and refs counts towards maxBatchBytes: the
// length of its values.
func batchSize(r custos.SealedRecord, refs []custos.TokenRef) int {
	n := len(r.Collection) + len(r.ID) + len(r.Subject) + len(r.Clear) + len(r.Sealed)
	for _, x := range refs {
		n += len(x.Index) + len(x.KEKID) + len(x.Audience) + len(x.Subject) + len(x.Collection) + len(x.Record) + len(x.Field) + len(x.Sealed)
	}
	return n
}
