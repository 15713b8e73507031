package auditlog

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"

	"github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/api/layout"
	"github.com/transparency-dev/tessera/client"
)

// hashSize is the size of a node hash in a tile.
const hashSize = 32

// Checkpoint returns the latest published signed checkpoint.
func (l *Log) Checkpoint(ctx context.Context) ([]byte, error) {
	cp, err := l.reader.ReadCheckpoint(ctx)
	if err != nil {
		return nil, fmt.Errorf("couldn't read audit checkpoint: %w", err)
	}
	return cp, nil
}

// treeSize returns the size of the tree on disk, which may be ahead of the
// published checkpoint.
func (l *Log) treeSize(ctx context.Context) (uint64, error) {
	n, err := l.reader.IntegratedSize(ctx)
	if err != nil {
		return 0, fmt.Errorf("couldn't read audit log size: %w", err)
	}
	return n, nil
}

// Prove returns the inclusion proof of the leaf at index in the tree of
// treeSize leaves, which must not exceed the integrated tree.
func (l *Log) Prove(ctx context.Context, index, treeSize uint64) ([][]byte, error) {
	if index >= treeSize {
		return nil, fmt.Errorf("audit index %d is not below tree size %d", index, treeSize)
	}
	n, err := l.treeSize(ctx)
	if err != nil {
		return nil, err
	}
	if treeSize > n {
		return nil, fmt.Errorf("tree size %d exceeds the audit log's %d", treeSize, n)
	}
	pb, err := client.NewProofBuilder(ctx, treeSize, l.readTile)
	if err != nil {
		return nil, fmt.Errorf("couldn't build audit proof: %w", err)
	}
	p, err := pb.InclusionProof(ctx, index)
	if err != nil {
		return nil, fmt.Errorf("couldn't build audit proof: %w", err)
	}
	return p, nil
}

// readTile returns the first p hashes (all if p is 0) of a hash tile. A
// tile's first p hashes never change as the tree grows, so when no tile of
// exactly that width was written (p is not a size the tree was integrated
// at) they are taken from the full tile or a wider partial one.
func (l *Log) readTile(_ context.Context, level, index uint64, p uint8) ([]byte, error) {
	if p == 0 {
		return l.root.ReadFile(layout.TilePath(level, index, 0))
	}
	b, err := l.root.ReadFile(layout.TilePath(level, index, p))
	if !errors.Is(err, fs.ErrNotExist) {
		return b, err
	}
	if b, err = l.root.ReadFile(layout.TilePath(level, index, 0)); errors.Is(err, fs.ErrNotExist) {
		b, err = l.readWiderTile(level, index, p)
	}
	if err != nil {
		return nil, err
	}
	if len(b) < int(p)*hashSize {
		return nil, fmt.Errorf("audit tile %d/%d holds %d bytes, want at least %d", level, index, len(b), int(p)*hashSize)
	}
	return b[:int(p)*hashSize], nil
}

// readWiderTile returns the narrowest partial tile wider than p.
func (l *Log) readWiderTile(level, index uint64, p uint8) ([]byte, error) {
	dir := strings.TrimSuffix(layout.TilePath(level, index, 1), "/1")
	ents, err := fs.ReadDir(l.root.FS(), dir)
	if err != nil {
		return nil, err
	}
	best := 0
	for _, e := range ents {
		w, err := strconv.Atoi(e.Name())
		if err == nil && w > int(p) && w < layout.TileWidth && (best == 0 || w < best) {
			best = w
		}
	}
	if best == 0 {
		return nil, fmt.Errorf("no audit tile %d/%d of width %d or more: %w", level, index, p, fs.ErrNotExist)
	}
	return l.root.ReadFile(layout.TilePath(level, index, uint8(best)))
}

// Entries calls yield with each entry of index from (inclusive) to to
// (exclusive), in order, until yield returns false. The range must lie
// within the acknowledged entries; Entries waits for them to be integrated.
func (l *Log) Entries(ctx context.Context, from, to uint64, yield func(index uint64, entry []byte) bool) error {
	if from > to {
		return fmt.Errorf("audit range [%d, %d) is reversed", from, to)
	}
	if to <= l.Size() {
		if err := l.waitIntegrated(ctx, to); err != nil {
			return err
		}
	}
	n, err := l.treeSize(ctx)
	if err != nil {
		return err
	}
	if to > n {
		return fmt.Errorf("audit range [%d, %d) exceeds the log's %d entries", from, to, n)
	}
	for ri := range layout.Range(from, to-from, n) {
		if err := ctx.Err(); err != nil {
			return err
		}
		raw, err := l.reader.ReadEntryBundle(ctx, ri.Index, ri.Partial)
		if err != nil {
			return fmt.Errorf("couldn't read audit entry bundle %d: %w", ri.Index, err)
		}
		var b api.EntryBundle
		if err := b.UnmarshalText(raw); err != nil {
			return fmt.Errorf("malformed audit entry bundle %d: %w", ri.Index, err)
		}
		if uint(len(b.Entries)) < ri.First+ri.N {
			return fmt.Errorf("audit entry bundle %d holds %d entries, want %d", ri.Index, len(b.Entries), ri.First+ri.N)
		}
		first := ri.Index*layout.EntryBundleWidth + uint64(ri.First)
		for i, e := range b.Entries[ri.First : ri.First+ri.N] {
			if !yield(first+uint64(i), e) {
				return nil
			}
		}
	}
	return nil
}
