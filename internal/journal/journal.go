// Package journal is a durable, append-only audit journal: one JSON line per
// custos.AuditEntry in a file, the line number being the entry's index.
//
// Record returns only after the entry's line is written and the file is
// fsynced. Concurrent callers share each fsync (group commit): a writer
// goroutine takes every entry waiting, writes them in one write, syncs once
// and answers them all. A lone caller waits for one write and one fsync,
// never for a batch to fill.
//
// One process at a time: Open takes an exclusive lock on the file and
// fails with ErrInUse while another process holds it, since two writers
// would interleave their lines and indexes. On Open, a torn last line left
// by a crash is cut off: it was never acknowledged. Once a write or fsync fails the journal refuses every later
// entry (fail closed) until it is reopened.
//
// The journal trusts its file system; it does not make the log verifiable
// by third parties.
package journal

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/custos/custos"
)

// MaxBatch caps the entries written per fsync.
const MaxBatch = 4096

// Journal is an open journal. It is safe for concurrent use.
type Journal struct {
	f       *os.File
	reqs    chan request
	done    chan struct{} // closed by Close
	stopped chan struct{} // closed when the writer has answered its last request
	once    sync.Once

	mu     sync.Mutex
	next   uint64
	failed error
}

type request struct {
	line  []byte
	reply chan result
}

type result struct {
	index uint64
	err   error
}

var _ custos.Auditor = (*Journal)(nil)

// ErrClosed is returned by Record after Close.
var ErrClosed = errors.New("journal closed")

// ErrInUse is returned by Open when another process has the journal open.
var ErrInUse = errors.New("audit journal in use by another process: run one custos server per deployment")

// Open opens or creates the journal at path (mode 0600).
func Open(path string) (*Journal, error) {
	_, statErr := os.Stat(path)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("couldn't open audit journal: %w", err)
	}
	if errors.Is(statErr, os.ErrNotExist) {
		// A new file's name is durable only once its directory is synced.
		if err := syncDir(filepath.Dir(path)); err != nil {
			f.Close()
			return nil, fmt.Errorf("couldn't sync audit journal directory: %w", err)
		}
	}
	if err := lock(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("couldn't open audit journal: %w", err)
	}
	n, end, err := scan(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Truncate(end); err != nil {
		f.Close()
		return nil, fmt.Errorf("couldn't cut torn audit entry: %w", err)
	}
	if _, err := f.Seek(end, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("couldn't seek audit journal: %w", err)
	}
	j := &Journal{f: f, next: n, reqs: make(chan request, MaxBatch), done: make(chan struct{}), stopped: make(chan struct{})}
	go j.run()
	return j, nil
}

// scan counts the complete lines of f and returns the offset after the last.
func scan(f *os.File) (lines uint64, end int64, err error) {
	r := bufio.NewReaderSize(f, 1<<16)
	for {
		line, err := r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// An over-long line is not ours; refuse rather than guess.
			return 0, 0, errors.New("audit journal holds a line longer than 64 KiB")
		}
		if err == io.EOF {
			return lines, end, nil
		}
		if err != nil {
			return 0, 0, fmt.Errorf("couldn't read audit journal: %w", err)
		}
		lines++
		end += int64(len(line))
	}
}

// Record appends e and returns its index once it is durable.
func (j *Journal) Record(ctx context.Context, e custos.AuditEntry) (uint64, error) {
	line, err := json.Marshal(e)
	if err != nil {
		return 0, fmt.Errorf("couldn't encode audit entry: %w", err)
	}
	if len(line) >= 1<<16 {
		return 0, errors.New("audit entry too large")
	}
	reply := make(chan result, 1)
	select {
	case j.reqs <- request{line: append(line, '\n'), reply: reply}:
	case <-j.done:
		return 0, ErrClosed
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	// Once queued, the entry may be written: wait for the answer even if ctx
	// ends. A request the writer never took when it stopped was not written.
	select {
	case r := <-reply:
		return r.index, r.err
	case <-j.stopped:
		select {
		case r := <-reply:
			return r.index, r.err
		default:
			return 0, ErrClosed
		}
	}
}

func (j *Journal) run() {
	defer close(j.stopped)
	var batch []request
	var buf bytes.Buffer
	for {
		select {
		case r := <-j.reqs:
			batch = append(batch[:0], r)
		case <-j.done:
			j.drain()
			return
		}
	fill:
		for len(batch) < MaxBatch {
			select {
			case r := <-j.reqs:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		buf.Reset()
		for _, r := range batch {
			buf.Write(r.line)
		}
		j.commit(batch, buf.Bytes())
	}
}

func (j *Journal) commit(batch []request, data []byte) {
	j.mu.Lock()
	defer j.mu.Unlock()
	err := j.failed
	if err == nil {
		if _, err = j.f.Write(data); err == nil {
			err = j.f.Sync()
		}
		if err != nil {
			j.failed = fmt.Errorf("audit journal failed: %w", err)
			err = j.failed
		}
	}
	for _, r := range batch {
		if err != nil {
			r.reply <- result{err: err}
			continue
		}
		r.reply <- result{index: j.next}
		j.next++
	}
}

// drain answers requests queued when Close was called.
func (j *Journal) drain() {
	for {
		select {
		case r := <-j.reqs:
			r.reply <- result{err: ErrClosed}
		default:
			return
		}
	}
}

// Err returns the failure that stopped the journal, if any: once a write
// or fsync failed, every later Record fails until the journal is reopened.
func (j *Journal) Err() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.failed
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Size returns the number of entries recorded.
func (j *Journal) Size() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.next
}

// Close stops the journal; later Records return ErrClosed.
func (j *Journal) Close() error {
	j.once.Do(func() { close(j.done) })
	<-j.stopped
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.f.Close()
}
