package auditlog

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/custos/custos"
	"github.com/transparency-dev/tessera"
)

// pipelineDepth is how many batches may be with the appender at once: one
// being written and the next one waiting. Entries arriving meanwhile wait
// in Log.reqs and then go together, so a slow write makes the next batch
// larger instead of queueing many small ones behind it.
const pipelineDepth = 2

var _ custos.Auditor = (*Log)(nil)

type request struct {
	entry *tessera.Entry
	reply chan result // buffered: answering never blocks
}

type result struct {
	index uint64
	err   error
}

// Record appends e and returns its index once it is durably sequenced and
// integrated into the tree. It waits at most until ctx is done; an error
// means the entry may not be on the log.
func (l *Log) Record(ctx context.Context, e custos.AuditEntry) (uint64, error) {
	data, err := custos.MarshalAuditEntry(e)
	if err != nil {
		return 0, err
	}
	if err := l.Err(); err != nil {
		return 0, err
	}
	r := request{entry: tessera.NewEntry(data), reply: make(chan result, 1)}
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
		// A request the committer never took was never written.
		select {
		case res := <-r.reply:
			return res.index, res.err
		default:
			return 0, ErrClosed
		}
	}
}

// commit takes the waiting requests as one batch whenever the appender has
// room for one, until Close.
func (l *Log) commit() {
	defer close(l.stopped)
	defer l.batches.Wait()
	for {
		select {
		case l.slots <- struct{}{}:
		case <-l.quit:
			l.drain()
			return
		}
		var batch []request
		select {
		case r := <-l.reqs:
			batch = append(make([]request, 0, min(len(l.reqs)+1, l.maxBatch)), r)
		case <-l.quit:
			<-l.slots
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
		l.send(batch)
	}
}

// send hands batch to the appender and answers it, in the background, once
// the appender resolved every entry; then it frees the batch's slot.
func (l *Log) send(batch []request) {
	if p := l.failed.Load(); p != nil {
		for _, r := range batch {
			r.reply <- result{err: *p}
		}
		<-l.slots
		return
	}
	if err := l.probe(); err != nil {
		err = fmt.Errorf("audit log failed: %w", err)
		if l.failed.CompareAndSwap(nil, &err) {
			l.logger.Error("audit log failed: refusing every entry until restarted", slog.Any("err", err))
		}
		for _, r := range batch {
			r.reply <- result{err: *l.failed.Load()}
		}
		<-l.slots
		return
	}
	futures := make([]tessera.IndexFuture, len(batch))
	for i, r := range batch {
		futures[i] = l.add(context.Background(), r.entry)
	}
	l.batches.Add(1)
	go func() {
		defer l.batches.Done()
		res := make([]result, len(futures))
		for i, f := range futures {
			res[i].index, res[i].err = l.resolve(f)
		}
		<-l.slots
		for i, r := range batch {
			r.reply <- res[i]
		}
	}()
}

// resolve waits for f and records a storage failure.
func (l *Log) resolve(f tessera.IndexFuture) (uint64, error) {
	idx, err := f()
	if err != nil {
		err = fmt.Errorf("audit log failed: %w", err)
		if l.failed.CompareAndSwap(nil, &err) {
			l.logger.Error("audit log failed: refusing every entry until restarted", slog.Any("err", err))
		}
		return 0, *l.failed.Load()
	}
	for {
		n := l.size.Load()
		if n > idx.Index || l.size.CompareAndSwap(n, idx.Index+1) {
			return idx.Index, nil
		}
	}
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

// probe opens the file Tessera locks before each batch, as it does. Tessera
// v1.0.4 panics when it cannot (a log directory made read-only, a full
// disk), which would take the whole server down; probing first turns that
// into a failed log, and requests into 503 audit_unavailable.
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
