package tilestore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"

	"github.com/transparency-dev/tessera/api/layout"
)

// sweep removes the entry bundles and tiles that a batch interrupted by a
// crash may have left beyond the durable tree of size n: any full one, and
// any partial one of more entries or hashes than that tree has, within
// what one batch of MaxBatch entries reaches. They were never synced, so
// they may be torn; integrating the same entries again rewrites the full
// ones and those of the sizes it stops at, but a partial one of another
// size would stay, and be served for a tree that no checkpoint names.
// Removals are synced before sweep returns.
func (s *Storage) sweep(n uint64) error {
	changed := map[string]bool{}
	bundles := func(i uint64, p uint8) string { return layout.EntriesPath(i, p) }
	if err := s.sweepLevel(n, n+MaxBatch, bundles, changed); err != nil {
		return err
	}
	for level := uint64(0); (n+MaxBatch)>>(level*layout.TileHeight) > 0; level++ {
		tiles := func(i uint64, p uint8) string { return layout.TilePath(level, i, p) }
		lo, hi := n>>(level*layout.TileHeight), (n+MaxBatch)>>(level*layout.TileHeight)
		if err := s.sweepLevel(lo, hi, tiles, changed); err != nil {
			return err
		}
	}
	for dir := range changed {
		if err := syncDir(s.cfg.Path, dir); err != nil {
			return err
		}
	}
	return nil
}

// sweepLevel sweeps one row of tiles (or the bundles) where the tree has
// lo nodes and a batch could have made hi: it keeps the partial tile of lo
// and the full tiles below it.
func (s *Storage) sweepLevel(lo, hi uint64, pathOf func(uint64, uint8) string, changed map[string]bool) error {
	keep := uint8(lo % layout.TileWidth)
	for i := lo / layout.TileWidth; i <= hi/layout.TileWidth; i++ {
		if err := s.remove(pathOf(i, 0), changed); err != nil {
			return err
		}
		dir := pathOf(i, 0) + ".p"
		ents, err := os.ReadDir(filepath.Join(s.cfg.Path, dir))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("couldn't list %s: %w", dir, err)
		}
		for _, e := range ents {
			w, err := strconv.ParseUint(e.Name(), 10, 8)
			if err == nil && w > 0 && uint8(w) <= keep {
				continue
			}
			if err := s.remove(path.Join(dir, e.Name()), changed); err != nil {
				return err
			}
		}
		keep = 0
	}
	return nil
}

// remove removes the file p, if it exists, and notes its directory.
func (s *Storage) remove(p string, changed map[string]bool) error {
	err := os.Remove(filepath.Join(s.cfg.Path, p))
	switch {
	case err == nil:
		changed[path.Dir(p)] = true
		return nil
	case errors.Is(err, fs.ErrNotExist):
		return nil
	default:
		return fmt.Errorf("couldn't remove %s: %w", p, err)
	}
}
