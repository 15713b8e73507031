// Package auditlog is custos's transparency log: every custos.AuditEntry is
// a leaf of an append-only Merkle tree (RFC 6962 hashing) stored as C2SP
// tlog-tiles under one directory, in the layout of Tessera's POSIX driver,
// with signed-note checkpoints (C2SP tlog-checkpoint, Ed25519) whose origin
// line names the deployment. Each leaf is exactly the bytes of
// custos.MarshalAuditEntry. The tiles are written by the Tessera driver of
// package tilestore, which Tessera's appender opens and whose checkpoints
// it signs.
//
// Durability: Record returns an index only once the entry is on the log's
// write-ahead log (see wal.go) and synced, which fixes its index; the
// integrator then hands it to tilestore at that index, directly and in
// order, which writes the entry bundles and hash tiles, syncs them, and
// only then the tree state that counts it. An acknowledged entry survives
// a crash of the process or the machine: Open integrates what the WAL holds
// beyond the tree state. A checkpoint committing to it is published within
// about one checkpoint interval, after a restart if need be.
//
// Group commit: Records waiting while the WAL is being synced go together
// as the next group, written and synced at once as soon as the previous
// sync returns; a lone Record waits for one write and one sync, never for
// a group to fill. The integrator follows the WAL in batches of up to
// integrateBatch entries, a partial batch once it is Config.BatchMaxAge
// old; Record waits when more than maxBacklog entries are not yet
// integrated.
//
// Fail closed: any error from Record means the entry may not be on the log
// and the data it covers must not be released. Once a write fails, the log
// refuses every later entry and Err reports the failure until the log is
// reopened; it never heals silently.
//
// Witnesses: SetCosignatures hands the log the witness cosignatures of one
// of its checkpoints, and the handler serves them attached to it. The log
// does not verify them; whoever collects them does. The served checkpoint
// is the newest one the witnesses cosigned while their cosignatures are
// fresh (see Config.CosignedHold), else the newest one, bare; it never
// shrinks while the process runs.
//
// One process at a time: Open takes an exclusive lock in the directory and
// fails with ErrInUse while another process holds it.
//
// The log trusts its file system to keep what was fsynced. It does not trust
// anything it serves to be checked by itself: readers verify checkpoints,
// proofs and entries against the log's verifier key.
package auditlog

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/custos/custos/internal/auditlog/tilestore"
	"github.com/transparency-dev/tessera"
	"golang.org/x/mod/sumdb/note"
)

// Defaults applied when Config leaves a field zero.
const (
	// DefaultBatchMaxSize caps the entries of one WAL write.
	DefaultBatchMaxSize = 4096
	// DefaultBatchMaxAge is how long entries on the WAL wait for more
	// before a batch that is not full is integrated. It delays
	// checkpoints, not Record.
	DefaultBatchMaxAge = 100 * time.Millisecond
	// MinBatchMaxAge bounds Config.BatchMaxAge from below, so that a log
	// under light load does not write a partial entry bundle and partial
	// tiles for every group the WAL writes.
	MinBatchMaxAge = 50 * time.Millisecond
	// DefaultCheckpointInterval is how often a new checkpoint is signed
	// while the log grows.
	DefaultCheckpointInterval = time.Second
	// DefaultCosignedHold, in checkpoint intervals, is the default of
	// Config.CosignedHold.
	DefaultCosignedHold = 5
)

// lockName is the file in Config.Dir that Open locks.
const lockName = "custos.lock"

// ErrInUse is returned (wrapped) by Open when another process has the log
// open.
var ErrInUse = errors.New("audit log in use by another process: run one custos server per deployment")

// ErrClosed is returned by Record and Err after Close.
var ErrClosed = errors.New("audit log closed")

// Config configures Open.
type Config struct {
	// Dir is the root of the log's tiles, e.g. DEPLOYMENT/log. It is
	// created if missing.
	Dir string
	// Origin is the checkpoint origin line naming the deployment; it must
	// be the name of Signer.
	Origin string
	// Signer signs checkpoints.
	Signer note.Signer
	// BatchMaxSize caps the entries of one WAL write; zero means
	// DefaultBatchMaxSize. BatchMaxAge is how long a batch that is not
	// full waits before it is integrated; zero means DefaultBatchMaxAge,
	// else at least MinBatchMaxAge.
	BatchMaxSize int
	BatchMaxAge  time.Duration
	// CheckpointInterval is how often a checkpoint is published while the
	// log grows; zero means DefaultCheckpointInterval. At least 100 ms.
	CheckpointInterval time.Duration
	// CosignedHold is how long, after SetCosignatures, a cosigned
	// checkpoint is still served in place of a newer one that has no
	// cosignatures yet; zero means DefaultCosignedHold checkpoint
	// intervals. Past it the newest checkpoint is served bare, so a
	// witness that stops answering does not freeze the served log.
	CosignedHold time.Duration
	// Logger receives failures; nil means slog.Default().
	Logger *slog.Logger
}

// Log is an open audit log. It is safe for concurrent use.
type Log struct {
	root     *os.Root
	lock     *os.File
	logger   *slog.Logger
	store    *tilestore.Storage
	reader   tessera.LogReader
	shutdown func(context.Context) error
	stop     context.CancelFunc
	maxBatch int           // entries per WAL write
	batchAge time.Duration // Config.BatchMaxAge

	reqs    chan request
	quit    chan struct{} // closed by Close
	stopped chan struct{} // closed when the writer has answered every request it took
	once    sync.Once

	wal walWriter // owned by the writer (commit)

	// Between the writer and the integrator.
	mu          sync.Mutex
	wake        chan struct{} // pending grew or the writer stopped
	pending     []walRecord   // on the WAL, not yet integrated
	since       time.Time     // when pending was last empty
	integrated  uint64        // entries integrated into the tree
	progress    chan struct{} // closed and replaced when integrated grows or the log fails
	writerDone  bool
	segments    atomic.Int64  // WAL segments on disk: the writer adds, the integrator removes
	integrating chan struct{} // closed when the integrator stops

	size   atomic.Uint64 // entries on the WAL, so the index of the next one; stored by the writer only
	failed atomic.Pointer[error]

	origin   string
	hold     time.Duration            // Config.CosignedHold
	now      func() time.Time         // the clock of the hold; time.Now
	cosigned atomic.Pointer[cosigned] // set by SetCosignatures
	served   atomic.Uint64            // size of the largest checkpoint served
}

// Open opens or creates the log in cfg.Dir.
func Open(ctx context.Context, cfg Config) (*Log, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("couldn't create audit log directory: %w", err)
	}
	lock, err := lockDir(cfg.Dir)
	if err != nil {
		return nil, err
	}
	l, err := open(ctx, cfg, lock)
	if err != nil {
		lock.Close()
		return nil, err
	}
	return l, nil
}

func (cfg *Config) check() error {
	switch {
	case cfg.Dir == "":
		return errors.New("audit log needs a directory")
	case cfg.Signer == nil:
		return errors.New("audit log needs a checkpoint signer")
	case cfg.Origin == "" || cfg.Signer.Name() != cfg.Origin:
		return fmt.Errorf("audit log origin %q does not match its signer's name %q", cfg.Origin, cfg.Signer.Name())
	case cfg.BatchMaxSize < 0 || cfg.BatchMaxAge < 0 || cfg.CheckpointInterval < 0 || cfg.CosignedHold < 0:
		return errors.New("audit log batch and checkpoint settings must not be negative")
	case cfg.BatchMaxAge != 0 && cfg.BatchMaxAge < MinBatchMaxAge:
		return fmt.Errorf("audit log batch age %v is below the minimum of %v", cfg.BatchMaxAge, MinBatchMaxAge)
	}
	if cfg.BatchMaxSize == 0 {
		cfg.BatchMaxSize = DefaultBatchMaxSize
	}
	if cfg.BatchMaxAge == 0 {
		cfg.BatchMaxAge = DefaultBatchMaxAge
	}
	if cfg.CheckpointInterval == 0 {
		cfg.CheckpointInterval = DefaultCheckpointInterval
	}
	if cfg.CosignedHold == 0 {
		cfg.CosignedHold = DefaultCosignedHold * cfg.CheckpointInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return nil
}

// lockDir takes the log's process lock.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("couldn't open audit log lock: %w", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	switch {
	case err == nil:
		return f, nil
	case errors.Is(err, syscall.EWOULDBLOCK):
		f.Close()
		return nil, fmt.Errorf("couldn't open audit log in %s: %w", dir, ErrInUse)
	default:
		f.Close()
		return nil, fmt.Errorf("couldn't lock audit log: %w", err)
	}
}

func open(ctx context.Context, cfg Config, lock *os.File) (*Log, error) {
	root, err := os.OpenRoot(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("couldn't open audit log directory: %w", err)
	}
	// An unwritable directory fails Open, as it fails Record (see probe).
	if err := root.Mkdir(".state", 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		root.Close()
		return nil, fmt.Errorf("couldn't open audit log storage: %w", err)
	}
	if err := probeLock(root); err != nil {
		root.Close()
		return nil, fmt.Errorf("couldn't open audit log storage: %w", err)
	}
	store := tilestore.New(tilestore.Config{Path: cfg.Dir, Logger: cfg.Logger})
	opts := tessera.NewAppendOptions().
		WithCheckpointSigner(cfg.Signer).
		WithBatching(integrateBatch, cfg.BatchMaxAge).
		WithCheckpointInterval(cfg.CheckpointInterval)
	// The appender's background work outlives ctx: it stops with Close.
	bg, stop := context.WithCancel(context.WithoutCancel(ctx))
	_, shutdown, reader, err := tessera.NewAppender(bg, store, opts)
	if err != nil {
		stop()
		root.Close()
		return nil, fmt.Errorf("couldn't open audit log: %w", err)
	}
	l := &Log{
		root: root, lock: lock, logger: cfg.Logger,
		store: store, reader: reader, shutdown: shutdown, stop: stop,
		maxBatch: cfg.BatchMaxSize, batchAge: cfg.BatchMaxAge,
		origin: cfg.Origin, hold: cfg.CosignedHold, now: time.Now,
		reqs:        make(chan request, cfg.BatchMaxSize),
		quit:        make(chan struct{}),
		stopped:     make(chan struct{}),
		progress:    make(chan struct{}),
		wake:        make(chan struct{}, 1),
		integrating: make(chan struct{}),
		wal:         walWriter{root: root},
	}
	if err := l.recover(ctx); err != nil {
		shutdown(context.Background())
		stop()
		root.Close()
		return nil, err
	}
	go l.commit()
	go l.integrate()
	return l, nil
}

// recover integrates the entries the WAL holds beyond the tree state,
// which a crash kept from being integrated, and removes the WAL segments
// the tree now covers.
func (l *Log) recover(ctx context.Context) error {
	size, err := l.reader.IntegratedSize(ctx)
	if err != nil {
		return fmt.Errorf("couldn't read audit log size: %w", err)
	}
	pending, cut, err := recoverWAL(l.root, size)
	if err != nil {
		return err
	}
	if cut > 0 {
		l.logger.Warn("audit WAL: cut a torn write left by a crash (never acknowledged)", slog.Int64("bytes", cut))
	}
	if len(pending) > 0 {
		l.logger.Info("audit WAL: integrating entries written before a crash", slog.Int("entries", len(pending)), slog.Uint64("from", size))
	}
	for len(pending) > 0 {
		n := min(len(pending), integrateBatch)
		if err := l.integrateBatch(pending[:n]); err != nil {
			return fmt.Errorf("couldn't integrate the audit WAL: %w", err)
		}
		pending = pending[n:]
	}
	l.integrated = max(size, l.integrated)
	l.size.Store(l.integrated)
	_, err = removeIntegrated(l.root, l.integrated, l.integrated)
	return err
}

// Err returns why Record fails now: the first storage failure, after which
// every Record fails until the log is reopened, or ErrClosed. It returns
// nil while the log accepts entries.
func (l *Log) Err() error {
	if p := l.failed.Load(); p != nil {
		return *p
	}
	select {
	case <-l.quit:
		return ErrClosed
	default:
		return nil
	}
}

// Size returns the number of entries acknowledged: one more than the
// highest index Record returned since Open, or the size at Open.
func (l *Log) Size() uint64 {
	return l.size.Load()
}

// Close stops accepting entries, integrates every acknowledged one,
// publishes a checkpoint that commits to them, and releases the directory.
func (l *Log) Close() error {
	var err error
	l.once.Do(func() {
		close(l.quit)
		<-l.stopped
		<-l.integrating
		if l.failed.Load() == nil {
			l.stop() // background publishing ends before the last checkpoint
			// Tessera's shutdown waits for what its own Add took: nothing.
			e := l.shutdown(context.Background())
			if e == nil {
				e = l.store.Publish(context.Background())
			}
			if e != nil {
				err = fmt.Errorf("couldn't publish a final audit checkpoint: %w", e)
			}
			if _, e := removeIntegrated(l.root, l.integrated, l.size.Load()); e != nil {
				l.logger.Warn("couldn't remove integrated audit WAL segments", slog.Any("err", e))
			}
		}
		l.close()
	})
	return err
}

func (l *Log) close() {
	l.stop()
	l.root.Close()
	l.lock.Close()
}
