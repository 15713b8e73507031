package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/custos/custos"
)

// hold has the writer run a write that blocks it until release is called,
// so that the writes made meanwhile queue for one transaction. release
// waits for that write to commit.
func hold(t *testing.T, s *Store) (release func()) {
	t.Helper()
	running, released := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- s.write(context.Background(), 0, func(context.Context, *sql.Tx) error {
			close(running)
			<-released
			return nil
		})
	}()
	<-running
	return func() {
		close(released)
		if err := <-done; err != nil {
			t.Errorf("holding write: %v", err)
		}
	}
}

// waitQueued waits until n writes wait for the writer.
func waitQueued(s *Store, n int) {
	for {
		s.mu.Lock()
		queued := len(s.queue)
		s.mu.Unlock()
		if queued >= n {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

func testSubject(id string) custos.StoredSubject {
	return custos.StoredSubject{Subject: custos.Subject{ID: id, Residency: "US"},
		Key: custos.WrappedKey{KEKID: "kek-1", Ciphertext: []byte("wrapped:" + id)}}
}

// testRecord returns record id of subject sid, with a ref for token.
func testRecord(sid, id, token string) (custos.SealedRecord, []custos.TokenRef) {
	r := custos.SealedRecord{Collection: "c", ID: id, Subject: sid,
		Clear: []byte(`{"by":"` + sid + `"}`), Sealed: []byte("sealed:" + id)}
	ref := custos.TokenRef{Index: []byte("idx:" + token), KEKID: "kek-1", Audience: "operator",
		Subject: sid, Collection: "c", Record: id, Field: "email", Sealed: []byte("tok:" + token)}
	return r, []custos.TokenRef{ref}
}

func mustCreate(t *testing.T, s custos.Store, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if _, err := s.CreateSubject(t.Context(), testSubject(id)); err != nil {
			t.Fatal(err)
		}
	}
}

func mustPut(t *testing.T, s custos.Store, sid, id, token string) {
	t.Helper()
	r, refs := testRecord(sid, id, token)
	if _, err := s.PutRecord(t.Context(), r, refs); err != nil {
		t.Fatal(err)
	}
}

// checkStored checks that record id belongs to sid and that token leads to
// it, or, when sid is "", that token leads nowhere.
func checkStored(t *testing.T, s custos.Store, sid, id, token string) {
	t.Helper()
	refs, err := s.TokenRefs(t.Context(), [][]byte{[]byte("idx:" + token)})
	if err != nil {
		t.Fatal(err)
	}
	if sid == "" {
		if len(refs) != 0 {
			t.Errorf("token %q of a failed write leads to %+v", token, refs)
		}
		return
	}
	r, err := s.Record(t.Context(), "c", id)
	if err != nil {
		t.Errorf("record %q: %v", id, err)
	} else if r.Subject != sid {
		t.Errorf("record %q belongs to %q, want %q", id, r.Subject, sid)
	}
	if len(refs) != 1 || refs[0].Record != id || refs[0].Subject != sid {
		t.Errorf("token %q leads to %+v, want record %q of %q", token, refs, id, sid)
	}
}

// TestBatchErrors has writes that succeed and writes that fail share one
// transaction: each caller gets its own outcome, and only the writes that
// succeeded are stored.
func TestBatchErrors(t *testing.T) {
	s := open(t)
	mustCreate(t, s, "alice", "bob")
	mustPut(t, s, "alice", "taken", "alice-taken")

	errBoom := errors.New("boom")
	type outcome struct {
		created bool
		err     error
	}
	var calls []func() outcome
	for i := range 8 { // new records of bob
		r, refs := testRecord("bob", fmt.Sprint("new-", i), fmt.Sprint("bob-new-", i))
		calls = append(calls, func() outcome {
			created, err := s.PutRecord(t.Context(), r, refs)
			return outcome{created, err}
		})
	}
	for i := range 4 { // alice's record, claimed by bob
		r, refs := testRecord("bob", "taken", fmt.Sprint("bob-taken-", i))
		calls = append(calls, func() outcome {
			created, err := s.PutRecord(t.Context(), r, refs)
			return outcome{created, err}
		})
	}
	for i := range 2 { // a subject that does not exist
		r, refs := testRecord("nobody", fmt.Sprint("orphan-", i), fmt.Sprint("nobody-", i))
		calls = append(calls, func() outcome {
			created, err := s.PutRecord(t.Context(), r, refs)
			return outcome{created, err}
		})
	}
	calls = append(calls, func() outcome { // a write that fails after writing
		err := s.write(t.Context(), 0, func(ctx context.Context, tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, `INSERT INTO subjects (id, residency, kek_id, wrapped_key, created_at)
				VALUES ('ghost', 'US', 'k', x'00', 0)`); err != nil {
				return err
			}
			return errBoom
		})
		return outcome{false, err}
	})
	for range 2 { // the same new subject twice
		calls = append(calls, func() outcome {
			created, err := s.CreateSubject(t.Context(), testSubject("carol"))
			return outcome{created, err}
		})
	}

	release := hold(t, s)
	outcomes := make([]outcome, len(calls))
	var wg sync.WaitGroup
	for i, call := range calls {
		wg.Go(func() { outcomes[i] = call() })
	}
	waitQueued(s, len(calls))
	if len(calls) > maxBatch {
		t.Fatalf("%d writes do not fit one transaction", len(calls))
	}
	release()
	wg.Wait()

	carols := 0
	for i, o := range outcomes {
		switch {
		case i < 8:
			if o.err != nil || !o.created {
				t.Errorf("new record %d: created %v, err %v; want created", i, o.created, o.err)
			}
		case i < 12:
			if !errors.Is(o.err, custos.ErrConflict) {
				t.Errorf("record of another subject: err %v, want ErrConflict", o.err)
			}
		case i < 14:
			if !errors.Is(o.err, custos.ErrNotFound) {
				t.Errorf("record of no subject: err %v, want ErrNotFound", o.err)
			}
		case i == 14:
			if !errors.Is(o.err, errBoom) {
				t.Errorf("failing write: err %v, want %v", o.err, errBoom)
			}
		default:
			if o.err != nil {
				t.Errorf("CreateSubject: %v", o.err)
			}
			if o.created {
				carols++
			}
		}
	}
	if carols != 1 {
		t.Errorf("CreateSubject of one subject twice reported %d creations, want 1", carols)
	}

	for i := range 8 {
		checkStored(t, s, "bob", fmt.Sprint("new-", i), fmt.Sprint("bob-new-", i))
	}
	checkStored(t, s, "alice", "taken", "alice-taken")
	for i := range 4 {
		checkStored(t, s, "", "taken", fmt.Sprint("bob-taken-", i))
	}
	for i := range 2 {
		checkStored(t, s, "", "", fmt.Sprint("nobody-", i))
		if _, err := s.Record(t.Context(), "c", fmt.Sprint("orphan-", i)); !errors.Is(err, custos.ErrNotFound) {
			t.Errorf("record of no subject: %v, want ErrNotFound", err)
		}
	}
	if _, err := s.Subject(t.Context(), "ghost"); !errors.Is(err, custos.ErrNotFound) {
		t.Errorf("the failed write's subject: %v, want ErrNotFound", err)
	}
	if _, err := s.Subject(t.Context(), "carol"); err != nil {
		t.Errorf("carol: %v", err)
	}
}

// TestBrokenTransaction has a write end the shared transaction, as SQLite
// does on a full disk: every write of the transaction fails, none is
// stored, no error of that write reaches the others, and the store goes on.
func TestBrokenTransaction(t *testing.T) {
	s := open(t)
	release := hold(t, s)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	wg.Go(func() { _, errs[0] = s.CreateSubject(t.Context(), testSubject("a")) })
	waitQueued(s, 1)
	wg.Go(func() {
		errs[1] = s.write(t.Context(), 0, func(ctx context.Context, tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, `ROLLBACK`); err != nil {
				return err
			}
			return fmt.Errorf("rolled back: %w", custos.ErrConflict)
		})
	})
	waitQueued(s, 2)
	wg.Go(func() { _, errs[2] = s.CreateSubject(t.Context(), testSubject("b")) })
	waitQueued(s, 3)
	release()
	wg.Wait()

	for i, err := range errs {
		if err == nil {
			t.Errorf("write %d of a broken transaction succeeded", i)
		}
	}
	for _, i := range []int{0, 2} {
		if errors.Is(errs[i], custos.ErrConflict) {
			t.Errorf("write %d got another write's error: %v", i, errs[i])
		}
	}
	for _, id := range []string{"a", "b"} {
		if _, err := s.Subject(t.Context(), id); !errors.Is(err, custos.ErrNotFound) {
			t.Errorf("subject %q of a broken transaction: %v, want ErrNotFound", id, err)
		}
	}
	mustCreate(t, s, "c")
}

// TestCancelQueued checks that a write whose context is done while it
// waits for the writer is not run.
func TestCancelQueued(t *testing.T) {
	s := open(t)
	release := hold(t, s)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := s.CreateSubject(ctx, testSubject("a"))
		done <- err
	}()
	waitQueued(s, 1)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled CreateSubject: %v, want context.Canceled", err)
	}
	release()
	if _, err := s.Subject(t.Context(), "a"); !errors.Is(err, custos.ErrNotFound) {
		t.Errorf("a cancelled CreateSubject created the subject: %v", err)
	}
}

// TestCancelTaken checks that a write of a transaction whose context is
// done before its turn is not run, and that one whose context is done
// while it runs is committed, its caller told so.
func TestCancelTaken(t *testing.T) {
	s := open(t)
	before, cancelBefore := context.WithCancel(t.Context())
	during, cancelDuring := context.WithCancel(t.Context())
	release := hold(t, s)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	wg.Go(func() {
		errs[0] = s.write(during, 0, func(ctx context.Context, tx *sql.Tx) error {
			cancelBefore()
			cancelDuring()
			_, err := tx.ExecContext(ctx, `INSERT INTO subjects (id, residency, kek_id, wrapped_key, created_at)
				VALUES ('during', 'US', 'k', x'00', 0)`)
			return err
		})
	})
	waitQueued(s, 1)
	wg.Go(func() { _, errs[1] = s.CreateSubject(before, testSubject("before")) })
	waitQueued(s, 2)
	release()
	wg.Wait()

	if errs[0] != nil {
		t.Errorf("write cancelled while it ran: %v, want nil", errs[0])
	}
	if _, err := s.Subject(t.Context(), "during"); err != nil {
		t.Errorf("write cancelled while it ran: not stored: %v", err)
	}
	if !errors.Is(errs[1], context.Canceled) {
		t.Errorf("write cancelled before its turn: %v, want context.Canceled", errs[1])
	}
	if _, err := s.Subject(t.Context(), "before"); !errors.Is(err, custos.ErrNotFound) {
		t.Errorf("write cancelled before its turn was stored: %v", err)
	}
}

// TestCloseDrains checks that Close commits the writes queued before it
// and fails those made after it.
func TestCloseDrains(t *testing.T) {
	path := filepath.Join(t.TempDir(), "custos.db")
	s, err := Open(path, "sqlite:test")
	if err != nil {
		t.Fatal(err)
	}
	release := hold(t, s)
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { _, errs[i] = s.CreateSubject(t.Context(), testSubject(fmt.Sprint("s", i))) })
	}
	waitQueued(s, n)
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	for {
		s.mu.Lock()
		c := s.closed
		s.mu.Unlock()
		if c {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := s.CreateSubject(t.Context(), testSubject("late")); err == nil {
		t.Errorf("CreateSubject after Close succeeded")
	}
	release()
	wg.Wait()
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	for i, err := range errs {
		if err != nil {
			t.Errorf("write %d queued before Close: %v", i, err)
		}
	}

	s, err = Open(path, "sqlite:test")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	subs, err := s.Subjects(t.Context(), "", 2*n)
	if err != nil {
		t.Fatal(err)
	}
	if len(subs) != n {
		t.Errorf("%d subjects stored, want %d", len(subs), n)
	}
}

// TestReturnedWritesAreCommitted checks that a write that returned nil is
// committed: another store on the same file, as another process would,
// reads it at once.
func TestReturnedWritesAreCommitted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "custos.db")
	s, err := Open(path, "sqlite:test")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	other, err := Open(path, "sqlite:test")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()

	mustCreate(t, s, "alice")
	n := 20
	if testing.Short() {
		n = 5
	}
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := range n {
				id := fmt.Sprintf("r-%d-%d", w, i)
				r, refs := testRecord("alice", id, id)
				if _, err := s.PutRecord(t.Context(), r, refs); err != nil {
					t.Error(err)
					return
				}
				if _, err := other.Record(t.Context(), "c", id); err != nil {
					t.Errorf("record %q, written, not readable by another store: %v", id, err)
					return
				}
			}
		})
	}
	wg.Wait()
}
