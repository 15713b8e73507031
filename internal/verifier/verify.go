package verifier

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"os"

	"github.com/custos/custos"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api/layout"
	"github.com/transparency-dev/tessera/client"
	"golang.org/x/mod/sumdb/note"
)

// Config is what Verify needs to check a log.
type Config struct {
	// LogURL is the base URL the log's tlog-tiles resources are served under,
	// e.g. https://custodian.example/log/.
	LogURL string
	// Verifier is the log's key, as read from its note verifier key file.
	Verifier note.Verifier
	// Origin is the checkpoint origin expected; empty means Verifier's name.
	Origin string
	// Witnesses are the cosignature/v1 verifiers of the witnesses trusted.
	Witnesses []note.Verifier
	// Quorum is how many distinct Witnesses must have cosigned the
	// checkpoint; 0 with Witnesses given means all of them.
	Quorum int
	// State is the NewState of the previous run, or nil for the first.
	State []byte
	// HTTPClient makes the requests; nil means a client with a 60 s timeout.
	HTTPClient *http.Client
	// MaxBytes caps the bytes downloaded by this run; 0 means no cap.
	MaxBytes int64
	// Concurrency is how many entry bundles are fetched and checked at
	// once; 0 means 4.
	Concurrency int
	// Progress, if set, is called after each entry bundle with the entries
	// checked so far and the number to check in this run.
	Progress func(done, total uint64)
	// Each, if set, is called in index order with every entry that parsed.
	// Entries reach it before the tree's root has been checked: if Verify
	// returns an error, whatever Each built must be discarded.
	Each func(index uint64, e custos.AuditEntry)
}

// Result is what a successful Verify established.
type Result struct {
	// Size and Root are those of the verified checkpoint.
	Size uint64
	Root []byte
	// Checkpoint is the verified checkpoint as served.
	Checkpoint []byte
	// From is the size the previous state covered (0 without state).
	From uint64
	// Entries is how many entries this run downloaded and checked.
	Entries uint64
	// Witnesses names the witnesses whose cosignatures verified.
	Witnesses []string
	// NewState is to be kept and passed as Config.State to the next run.
	NewState []byte
}

// Verify checks the log at cfg.LogURL against cfg.State and returns the new
// state. See the package documentation for what it guarantees.
func Verify(ctx context.Context, cfg Config) (Result, error) {
	if err := cfg.check(); err != nil {
		return Result{}, err
	}
	f, err := newFetcher(cfg.LogURL, cfg.HTTPClient, cfg.MaxBytes)
	if err != nil {
		return Result{}, err
	}
	raw, err := f.checkpoint(ctx)
	if err != nil {
		return Result{}, err
	}
	cp, err := openCheckpoint(raw, cfg.Verifier, cfg.origin(), cfg.Witnesses)
	if err != nil {
		return Result{}, err
	}
	if q := cfg.quorum(); len(cp.Witnesses) < q {
		return Result{}, fmt.Errorf("%w: %d of %d", ErrQuorum, len(cp.Witnesses), q)
	}
	old := state{rng: rangeFactory.NewEmptyRange(0)}
	if cfg.State != nil {
		if old, err = parseState(cfg.State, cfg.Verifier, cfg.origin()); err != nil {
			return Result{}, err
		}
		if err := consistent(ctx, f, old.cp, cp); err != nil {
			return Result{}, err
		}
	}
	v := &run{cfg: &cfg, f: f, cp: cp, rng: old.rng, start: old.rng.End()}
	if err := v.entries(ctx); err != nil {
		return Result{}, err
	}
	return Result{
		Size: cp.Size, Root: cp.Root, Checkpoint: cp.Raw, From: v.start,
		Entries: cp.Size - v.start, Witnesses: cp.Witnesses,
		NewState: marshalState(state{cp: cp, rng: v.rng}),
	}, nil
}

func (c *Config) check() error {
	switch {
	case c.Verifier == nil:
		return errors.New("no log verifier key")
	case c.Quorum < 0 || c.Quorum > len(c.Witnesses):
		return fmt.Errorf("quorum %d with %d witnesses", c.Quorum, len(c.Witnesses))
	}
	for i, w := range c.Witnesses {
		if w.Name() == c.Verifier.Name() && w.KeyHash() == c.Verifier.KeyHash() {
			return fmt.Errorf("witness %s is the log key", w.Name())
		}
		for _, o := range c.Witnesses[:i] {
			if w.Name() == o.Name() && w.KeyHash() == o.KeyHash() {
				return fmt.Errorf("witness %s given twice", w.Name())
			}
		}
	}
	return nil
}

func (c *Config) origin() string {
	if c.Origin != "" {
		return c.Origin
	}
	return c.Verifier.Name()
}

func (c *Config) quorum() int {
	if c.Quorum == 0 {
		return len(c.Witnesses)
	}
	return c.Quorum
}

// consistent proves that the tree of checkpoint b extends that of a, with a
// consistency proof built from b's hash tiles.
func consistent(ctx context.Context, f *fetcher, a, b Checkpoint) error {
	switch {
	case b.Size < a.Size:
		return fmt.Errorf("%w from %d to %d", ErrRolledBack, a.Size, b.Size)
	case b.Size == a.Size:
		if !bytes.Equal(a.Root, b.Root) {
			return fmt.Errorf("%w: consistency proof from %d to %d fails: two roots for one size", ErrFork, a.Size, b.Size)
		}
		return nil
	case a.Size == 0:
		return nil
	}
	pb, err := client.NewProofBuilder(ctx, b.Size, f.tile)
	if err != nil {
		return fmt.Errorf("couldn't build consistency proof from %d to %d: %w", a.Size, b.Size, err)
	}
	p, err := pb.ConsistencyProof(ctx, a.Size, b.Size)
	if err != nil {
		return fmt.Errorf("couldn't build consistency proof from %d to %d: %w", a.Size, b.Size, err)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, a.Size, b.Size, p, a.Root, b.Root); err != nil {
		return fmt.Errorf("%w: consistency proof from %d to %d fails: %v", ErrFork, a.Size, b.Size, err)
	}
	return nil
}

// run is one pass over the entries from start to the checkpoint's size.
type run struct {
	cfg   *Config
	f     *fetcher
	cp    Checkpoint
	rng   *compact.Range
	start uint64
	// digests holds, per bundle checked, the SHA-256 of the leaf hashes
	// it contributed, to find the changed entry if the root mismatches.
	digests [][sha256.Size]byte
	// unparsable is the first entry that did not parse.
	unparsable error
}

// bundle is the outcome of checking one entry bundle.
type bundle struct {
	first   uint64 // log index of hashes[0]
	hashes  [][]byte
	entries []custos.AuditEntry // zero where an entry did not parse
	parsed  []bool
	bad     error // first entry that did not parse
	err     error
}

func (v *run) entries(ctx context.Context) error {
	end := v.cp.Size
	if v.start == end {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	window := v.cfg.Concurrency
	if window <= 0 {
		window = 4
	}
	firstBundle, lastBundle := v.start/layout.EntryBundleWidth, (end-1)/layout.EntryBundleWidth
	pending := make(chan chan bundle, window)
	go func() {
		defer close(pending)
		for bi := firstBundle; bi <= lastBundle; bi++ {
			c := make(chan bundle, 1)
			select {
			case pending <- c:
			case <-ctx.Done():
				return
			}
			go func() { c <- v.check(ctx, bi) }()
		}
	}()
	for c := range pending {
		if err := v.fold(<-c); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if root := rangeRoot(v.rng); !bytes.Equal(root, v.cp.Root) {
		return v.diagnose(ctx, root)
	}
	return v.unparsable
}

// span is the part [lo, hi) of the log that bundle bi covers in this run.
func (v *run) span(bi uint64) (lo, hi uint64) {
	lo, hi = bi*layout.EntryBundleWidth, (bi+1)*layout.EntryBundleWidth
	return max(lo, v.start), min(hi, v.cp.Size)
}

// check fetches bundle bi, hashes and parses the entries it covers.
func (v *run) check(ctx context.Context, bi uint64) bundle {
	lo, hi := v.span(bi)
	b := bundle{first: lo}
	raw, path, err := v.f.bundle(ctx, bi, layout.PartialTileSize(0, bi, v.cp.Size))
	switch {
	case errors.Is(err, os.ErrNotExist) || errors.Is(err, errMalformed):
		b.err = &EntryError{Index: lo, Err: fmt.Errorf("%w: %w", ErrChanged, err)}
		return b
	case err != nil:
		b.err = err
		return b
	}
	base := bi * layout.EntryBundleWidth
	if n := uint64(len(raw)); base+n < hi {
		b.err = &EntryError{Index: base + n, Err: fmt.Errorf("%w: %s holds %d entries", ErrChanged, path, n)}
		return b
	}
	raw = raw[lo-base : hi-base]
	b.hashes = make([][]byte, len(raw))
	b.entries = make([]custos.AuditEntry, len(raw))
	b.parsed = make([]bool, len(raw))
	for i, data := range raw {
		b.hashes[i] = rfc6962.DefaultHasher.HashLeaf(data)
		e, err := custos.ParseAuditEntry(data)
		if err != nil {
			if b.bad == nil {
				b.bad = &EntryError{Index: lo + uint64(i), Err: fmt.Errorf("%w: %w", ErrUnparsable, err)}
			}
			continue
		}
		b.entries[i], b.parsed[i] = e, true
	}
	return b
}

// fold adds a checked bundle to the tree, in index order.
func (v *run) fold(b bundle) error {
	if b.err != nil {
		return b.err
	}
	d := sha256.New()
	for i, h := range b.hashes {
		if err := v.rng.Append(h, nil); err != nil {
			return fmt.Errorf("couldn't extend the tree: %w", err)
		}
		d.Write(h)
		if b.parsed[i] && v.cfg.Each != nil {
			v.cfg.Each(b.first+uint64(i), b.entries[i])
		}
	}
	v.digests = append(v.digests, [sha256.Size]byte(d.Sum(nil)))
	if v.unparsable == nil {
		v.unparsable = b.bad
	}
	if v.cfg.Progress != nil {
		v.cfg.Progress(v.rng.End()-v.start, v.cp.Size-v.start)
	}
	return nil
}
