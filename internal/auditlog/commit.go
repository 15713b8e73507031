package auditlog

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"sync/atomic"
	"time"

	"github.com/custos/custos"
)

const (
	// integrateBatch caps the entries integrated at once: large batches
	// are what make integration cheap per entry, since a batch costs a
	// few syncs whatever its size. A batch this full is integrated as soon
	// as the previous one is; a smaller one once it is Config.BatchMaxAge
	// old.
	integrateBatch = 16384
	// maxBacklog caps the entries written to the WAL and not yet
	// integrated; past it Record waits for the integrator. It bounds the
	// memory held for integration and how far checkpoints lag behind.
	maxBacklog = 4 * integrateBatch
)

var _ custos.Auditor = (*Log)(nil)

type request struct {
	data  []byte
	reply chan result // buffered: answering never blocks
}

type result struct {
	index uint64
	err   error
}

// Record appends e and returns its index once it is durable on the WAL,
// where it keeps that index. It waits at most until ctx is done; an error
// means the entry may not be on the log.
func (l *Log) Record(ctx context.Context, e custos.AuditEntry) (uint64, error) {
	data, err := custos.MarshalAuditEntry(e)
	if err != nil {
		return 0, err
	}
	if err := l.Err(); err != nil {
		return 0, err
	}
	r := request{data: data, reply: make(chan result, 1)}
	select {
	case l.reqs <- r:
	case <-l.quit:
		return 0, ErrClosed
	case <-ctx.Done():
		return 0, fmt.Errorf("audit entry not recorded: %w", ctx.Err())
	}
	// Once queued the entry may be written, whatever happens to ctx.
	select {
	case res := <-r.reply:
		return res.index, res.err
	case <-ctx.Done():
		return 0, fmt.Errorf("audit entry not confirmed durable: %w", ctx.Err())
	case <-l.stopped:
		// A request the writer never took was never written.
		select {
		case res := <-r.reply:
			return res.index, res.err
		default:
			return 0, ErrClosed
		}
	}
}

// commit writes the waiting requests to the WAL as one group, with one
// sync, whenever the previous group is written: requests arriving during a
// sync go together in the next one. It stops at Close, answering what it
// did not write with ErrClosed.
func (l *Log) commit() {
	defer func() {
		l.wal.close()
		l.mu.Lock()
		l.writerDone = true
		l.mu.Unlock()
		signal(l.wake)
		close(l.stopped)
	}()
	batch := make([]request, 0, l.maxBatch)
	data := make([][]byte, 0, l.maxBatch)
	for {
		batch = batch[:0]
		select {
		case r := <-l.reqs:
			batch = append(batch, r)
		case <-l.quit:
			l.drain()
			return
		}
	fill:
		for len(batch) < l.maxBatch {
			select {
			case r := <-l.reqs:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		if !l.waitBacklog(len(batch)) {
			answer(batch, 0, ErrClosed)
			l.drain()
			return
		}
		data = data[:0]
		for _, r := range batch {
			data = append(data, r.data)
		}
		first, err := l.write(data)
		answer(batch, first, err)
	}
}

// answer replies to a group written from index first, or with err.
func answer(batch []request, first uint64, err error) {
	for i, r := range batch {
		if err != nil {
			r.reply <- result{err: err}
		} else {
			r.reply <- result{index: first + uint64(i)}
		}
	}
}

// testHookWrite, when set, runs before each WAL write.
var testHookWrite atomic.Pointer[func()]

// write appends data to the WAL and queues it for integration, returning
// the index of its first entry.
func (l *Log) write(data [][]byte) (uint64, error) {
	if hook := testHookWrite.Load(); hook != nil {
		(*hook)()
	}
	if p := l.failed.Load(); p != nil {
		return 0, *p
	}
	if err := l.probe(); err != nil {
		return 0, l.fail(err)
	}
	first := l.size.Load()
	if l.wal.f == nil {
		if err := l.wal.startSegment(first); err != nil {
			return 0, l.fail(err)
		}
		l.segments.Add(1)
	}
	full, err := l.wal.write(first, data)
	if err != nil {
		return 0, l.fail(err)
	}
	if full {
		l.wal.close()
	}
	l.mu.Lock()
	if len(l.pending) == 0 {
		l.since = time.Now()
	}
	for i, d := range data {
		l.pending = append(l.pending, walRecord{index: first + uint64(i), data: d})
	}
	l.mu.Unlock()
	signal(l.wake)
	l.size.Store(first + uint64(len(data)))
	return first, nil
}

// waitBacklog waits until n more entries keep the backlog within
// maxBacklog. It returns false if the log closes first.
func (l *Log) waitBacklog(n int) bool {
	for {
		l.mu.Lock()
		ok := l.size.Load()+uint64(n) <= l.integrated+maxBacklog || l.failed.Load() != nil
		progress := l.progress
		l.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-progress:
		case <-l.quit:
			return false
		}
	}
}

// integrate hands the WAL's entries to the tile storage, in order, until
// the writer has stopped and every entry it wrote is integrated, or the
// storage fails. Each batch goes straight to tilestore.Integrate at the
// index of its first entry, which the storage checks against its size:
// nothing can reorder batches, and no timer of Tessera's is involved.
func (l *Log) integrate() {
	defer close(l.integrating)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		l.mu.Lock()
		n, done, wait := len(l.pending), l.writerDone, l.batchAge-time.Since(l.since)
		var recs []walRecord
		if n >= integrateBatch || n > 0 && (done || wait <= 0) {
			n = min(n, integrateBatch)
			recs = l.pending[:n:n]
			l.pending = l.pending[n:]
		}
		l.mu.Unlock()
		switch {
		case recs != nil:
			if err := l.integrateBatch(recs); err != nil {
				l.fail(err)
				return
			}
		case done:
			return
		case n > 0:
			timer.Reset(wait)
			select {
			case <-l.wake:
			case <-timer.C:
			}
			timer.Stop()
		default:
			<-l.wake
		}
	}
}

// integrateBatch integrates recs, consecutive entries of the WAL, and
// removes the WAL segments the tree now covers.
func (l *Log) integrateBatch(recs []walRecord) error {
	data := make([][]byte, len(recs))
	for i, r := range recs {
		data[i] = r.data
	}
	end, err := l.store.Integrate(context.Background(), recs[0].index, data)
	if err != nil {
		return fmt.Errorf("couldn't integrate audit entries: %w", err)
	}
	if want := recs[len(recs)-1].index + 1; end != want {
		return fmt.Errorf("audit entries integrated up to %d, want %d", end, want)
	}
	l.mu.Lock()
	l.integrated = end
	close(l.progress)
	l.progress = make(chan struct{})
	l.mu.Unlock()
	if l.segments.Load() > 1 {
		removed, err := removeIntegrated(l.root, end, math.MaxUint64)
		if err != nil {
			l.logger.Warn("couldn't remove integrated audit WAL segments", slog.Any("err", err))
		}
		l.segments.Add(-int64(removed))
	}
	return nil
}

// waitIntegrated waits until the first n entries are integrated, or the
// integration stops.
func (l *Log) waitIntegrated(ctx context.Context, n uint64) error {
	for {
		l.mu.Lock()
		done, progress := l.integrated >= n, l.progress
		l.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-progress:
		case <-l.integrating:
			return fmt.Errorf("audit entries below %d are not integrated: %w", n, l.Err())
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// signal wakes whoever waits on c, or leaves the wake-up for them.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// fail records the log's first failure and returns it; the log refuses
// every entry from then on.
func (l *Log) fail(err error) error {
	err = fmt.Errorf("audit log failed: %w", err)
	if l.failed.CompareAndSwap(nil, &err) {
		l.logger.Error("audit log failed: refusing every entry until restarted", slog.Any("err", err))
		l.mu.Lock()
		close(l.progress)
		l.progress = make(chan struct{})
		l.mu.Unlock()
	}
	return *l.failed.Load()
}

// drain answers the requests queued when Close was called.
func (l *Log) drain() {
	for {
		select {
		case r := <-l.reqs:
			r.reply <- result{err: ErrClosed}
		default:
			return
		}
	}
}

// treeStateLock is the file Tessera's POSIX driver locks before it writes
// a batch or initialises the log.
const treeStateLock = ".state/treeState.lock"

// probe opens, for writing, the file Tessera's POSIX driver locks before
// each batch. The WAL writer probes before each group, so that a log
// directory made unwritable (read-only, a full disk) fails the next
// request with 503 audit_unavailable, rather than only the integration
// behind it.
func (l *Log) probe() error {
	return probeLock(l.root)
}

func probeLock(root *os.Root) error {
	f, err := root.OpenFile(treeStateLock, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("the log directory is not writable: %w", err)
	}
	return f.Close()
}
