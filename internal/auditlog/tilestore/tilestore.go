// Package tilestore is a Tessera storage driver that keeps a log as C2SP
// tlog-tiles in a directory, in exactly the layout of Tessera's POSIX
// driver (storage/posix): the same entry bundles, hash tiles, checkpoint
// and private tree state, so that a log moves between the two drivers in
// either direction. It differs in how it makes a batch durable, and in
// offering [Storage.Integrate], a direct, ordered path for a caller that
// already sequenced its entries durably (a write-ahead log).
//
// Durability: Integrate writes every bundle and tile a batch changes, each
// to a temporary file renamed into place, in parallel and without syncing
// them one by one; then syncs them all and the directories whose entries
// changed, in parallel; and only then replaces the tree state (size and
// root) atomically and durably. The tree state therefore never names a
// tree whose resources are not durable, and a checkpoint is only ever
// signed for a tree state. A crash before the tree state is replaced
// leaves files beyond it that may be torn: Open removes them, and the
// caller, which must still hold the entries beyond the tree state (in a
// write-ahead log), integrates those entries again.
//
// Trust: the driver trusts its directory, which only it writes (one
// process at a time: the caller holds a lock), and the file system to
// keep what was synced. It checks at open that the stored tiles rebuild
// the stored root. It does not verify what it serves.
//
// Checkpoints are signed and published by the function Tessera's
// AppendOptions give drivers (CheckpointPublisher), every checkpoint
// interval while the tree grows, so they are the C2SP signed notes
// Tessera makes.
package tilestore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/api/layout"
)

// MaxBatch caps the entries of one call to Integrate. Open sweeps the
// resources one batch could have left beyond the tree state.
const MaxBatch = 1 << 16

// Config configures a Storage.
type Config struct {
	// Path is the log's directory.
	Path string
	// Logger receives background failures; nil means slog.Default().
	Logger *slog.Logger
}

// Storage is a log in a directory. Create it with New and hand it to
// tessera.NewAppender, which opens it; then Integrate adds entries.
type Storage struct {
	cfg  Config
	dirs *dirs

	mu     sync.Mutex // serialises integration
	edge   *edge
	failed error

	state atomic.Pointer[treeState] // durable tree state

	pubMu     sync.Mutex
	newCP     func(context.Context, uint64, []byte) ([]byte, error)
	published uint64 // tree size of the published checkpoint
	pubAt     time.Time
	pubKnown  bool
	gcFrom    uint64

	adds    chan *pendingAdd
	started atomic.Bool
}

var _ tessera.LogReader = (*Storage)(nil)

// New returns the driver of the log in cfg.Path. It does no I/O: the
// log is opened by tessera.NewAppender.
func New(cfg Config) *Storage {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Storage{cfg: cfg, dirs: newDirs(cfg.Path)}
}

// Appender opens the log and starts publishing its checkpoints; it is how
// tessera.NewAppender uses the driver. Background work stops with ctx.
func (s *Storage) Appender(ctx context.Context, opts *tessera.AppendOptions) (*tessera.Appender, tessera.LogReader, error) {
	if !s.started.CompareAndSwap(false, true) {
		return nil, nil, errors.New("tile storage already open")
	}
	s.newCP = opts.CheckpointPublisher(s, http.DefaultClient)
	if err := s.open(); err != nil {
		return nil, nil, err
	}
	if _, err := os.Stat(filepath.Join(s.cfg.Path, layout.CheckpointPath)); errors.Is(err, fs.ErrNotExist) {
		if err := s.Publish(ctx); err != nil {
			return nil, nil, err
		}
	}
	s.adds = make(chan *pendingAdd, opts.BatchMaxSize())
	go s.publishLoop(ctx, opts.CheckpointInterval(), opts.CheckpointRepublishInterval())
	go s.addLoop(ctx, int(min(opts.BatchMaxSize(), MaxBatch)))
	return &tessera.Appender{Add: s.add}, s, nil
}

// open reads the tree state, creating an empty tree if there is none,
// sweeps what a crash may have left beyond it, and loads the tree's edge.
func (s *Storage) open() error {
	if err := s.dirs.ensure(stateDir); err != nil {
		return fmt.Errorf("couldn't create log state directory: %w", err)
	}
	if err := s.checkVersion(); err != nil {
		return err
	}
	b, err := s.readFile(treeStatePath)
	if errors.Is(err, fs.ErrNotExist) {
		b = marshalTreeState(0, rfc6962.DefaultHasher.EmptyRoot())
		if err := s.syncNewDirs(); err != nil {
			return err
		}
		if err := writeDurable(s.cfg.Path, treeStatePath, b); err != nil {
			return err
		}
	} else if err != nil {
		return fmt.Errorf("couldn't read tree state: %w", err)
	}
	size, root, err := parseTreeState(b)
	if err != nil {
		return err
	}
	if err := s.sweep(size); err != nil {
		return err
	}
	e, err := loadEdge(s.readFile, size, root)
	if err != nil {
		return err
	}
	s.edge = e
	s.state.Store(&treeState{Size: size, Root: root})
	if b, err := s.readFile(gcStatePath); err == nil {
		s.gcFrom, err = parseGCState(b)
		if err != nil {
			return err
		}
	}
	return nil
}

// checkVersion checks the layout version Tessera's POSIX driver records,
// and records it in a new log.
func (s *Storage) checkVersion() error {
	b, err := s.readFile(versionPath)
	if errors.Is(err, fs.ErrNotExist) {
		if err := s.syncNewDirs(); err != nil {
			return err
		}
		return writeDurable(s.cfg.Path, versionPath, []byte(version))
	}
	if err != nil {
		return fmt.Errorf("couldn't read log version: %w", err)
	}
	if string(b) != version {
		return fmt.Errorf("log layout version %q, want %q", b, version)
	}
	return nil
}

// syncNewDirs syncs the directories whose entries changed outside a batch.
func (s *Storage) syncNewDirs() error {
	for _, d := range s.dirs.takeChanged() {
		if err := syncDir(s.cfg.Path, d); err != nil {
			return err
		}
	}
	return nil
}

// testHookBeforeTreeState, when set, runs after a batch's resources are
// durable and before its tree state is written; an error stops the batch
// there, as a crash would.
var testHookBeforeTreeState atomic.Pointer[func() error]

// SetTestHookBeforeTreeState sets a function run after each batch's
// resources are durable and before its tree state is written; an error it
// returns stops the batch there, as a crash would. For tests only; nil
// removes it.
func SetTestHookBeforeTreeState(f func() error) {
	if f == nil {
		testHookBeforeTreeState.Store(nil)
		return
	}
	testHookBeforeTreeState.Store(&f)
}

// Integrate appends entries to the tree at indexes first, first+1, …,
// where first must be the tree's size, and returns the new size once the
// tree state counting them is durable. Calls are serialised; a caller
// that integrates concurrently must order its calls itself. After an
// error the storage refuses every call: reopen it, and integrate again
// from its size on.
func (s *Storage) Integrate(ctx context.Context, first uint64, entries [][]byte) (uint64, error) {
	if len(entries) > MaxBatch {
		return 0, fmt.Errorf("batch of %d entries exceeds %d", len(entries), MaxBatch)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.edge == nil {
		return 0, errors.New("tile storage is not open")
	}
	if s.failed != nil {
		return 0, s.failed
	}
	if size := s.edge.rng.End(); first != size {
		return 0, fmt.Errorf("entries from index %d handed to a tree of size %d", first, size)
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	size, err := s.integrate(entries)
	if err != nil {
		s.failed = fmt.Errorf("tile storage failed: %w", err)
		s.dirs.forget()
		return 0, s.failed
	}
	return size, nil
}

func (s *Storage) integrate(entries [][]byte) (uint64, error) {
	if len(entries) == 0 {
		return s.edge.rng.End(), nil
	}
	files, root, err := s.edge.append(entries)
	if err != nil {
		return 0, err
	}
	size := s.edge.rng.End()
	state := &file{treeStatePath, marshalTreeState(size, root)}
	if err := writeFiles(s.dirs, files, state); err != nil {
		return 0, err
	}
	if hook := testHookBeforeTreeState.Load(); hook != nil {
		if err := (*hook)(); err != nil {
			return 0, err
		}
	}
	if err := commitRename(s.cfg.Path, treeStatePath); err != nil {
		return 0, err
	}
	s.state.Store(&treeState{Size: size, Root: root})
	return size, nil
}

// Size returns the size of the durable tree.
func (s *Storage) Size() uint64 {
	return s.state.Load().Size
}

// IntegratedSize returns the size of the durable tree.
func (s *Storage) IntegratedSize(context.Context) (uint64, error) {
	return s.Size(), nil
}

// NextIndex returns the size of the durable tree: this driver assigns no
// index ahead of integrating it.
func (s *Storage) NextIndex(context.Context) (uint64, error) {
	return s.Size(), nil
}

// ReadCheckpoint returns the published checkpoint, or an error wrapping
// os.ErrNotExist.
func (s *Storage) ReadCheckpoint(context.Context) ([]byte, error) {
	return s.readFile(layout.CheckpointPath)
}

// ReadTile returns the hash tile at level and index of width p (0: full),
// or the full tile if the partial one was removed.
func (s *Storage) ReadTile(_ context.Context, level, index uint64, p uint8) ([]byte, error) {
	return s.readPartialOrFull(layout.TilePath(level, index, p), layout.TilePath(level, index, 0), p)
}

// ReadEntryBundle returns the entry bundle at index of p entries (0: full),
// or the full bundle if the partial one was removed.
func (s *Storage) ReadEntryBundle(_ context.Context, index uint64, p uint8) ([]byte, error) {
	return s.readPartialOrFull(layout.EntriesPath(index, p), layout.EntriesPath(index, 0), p)
}

func (s *Storage) readPartialOrFull(partial, full string, p uint8) ([]byte, error) {
	b, err := s.readFile(partial)
	if p != 0 && errors.Is(err, fs.ErrNotExist) {
		return s.readFile(full)
	}
	return b, err
}

func (s *Storage) readFile(p string) ([]byte, error) {
	return os.ReadFile(filepath.Join(s.cfg.Path, p))
}
