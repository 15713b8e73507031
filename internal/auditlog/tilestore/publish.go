package tilestore

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/transparency-dev/tessera/api/layout"
)

// maxGCBundles caps the entry bundles whose partial versions one
// collection removes, so that it never holds up publishing for long.
const maxGCBundles = 1 << 14

// publishLoop publishes a checkpoint every interval while the tree grows,
// and republishes an unchanged one every republish (if not zero).
func (s *Storage) publishLoop(ctx context.Context, interval, republish time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := s.publish(ctx, republish); err != nil && ctx.Err() == nil {
			s.cfg.Logger.Warn("couldn't publish a log checkpoint", slog.Any("err", err))
		}
	}
}

// Publish signs and publishes a checkpoint of the durable tree now, unless
// the published one already commits to it. Once the context given to
// Appender is done, background publishing has stopped when Publish
// begins, so that Publish writes the last checkpoint.
func (s *Storage) Publish(ctx context.Context) error {
	return s.publish(ctx, 0)
}

func (s *Storage) publish(ctx context.Context, republish time.Duration) error {
	s.pubMu.Lock()
	defer s.pubMu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	st := s.state.Load()
	if s.pubKnown && st.Size == s.published && (republish == 0 || time.Since(s.pubAt) < republish) {
		return nil
	}
	cp, err := s.newCP(ctx, st.Size, st.Root)
	if err != nil {
		return fmt.Errorf("couldn't sign a checkpoint: %w", err)
	}
	if err := writeDurable(s.cfg.Path, layout.CheckpointPath, cp); err != nil {
		return err
	}
	s.published, s.pubAt, s.pubKnown = st.Size, time.Now(), true
	if err := s.collect(st.Size); err != nil {
		s.cfg.Logger.Warn("couldn't remove partial log tiles", slog.Any("err", err))
	}
	return nil
}

// collect removes the partial versions of the entry bundles and tiles that
// are full in the published tree of size published, as Tessera's POSIX
// driver does: a client holding that checkpoint reads the full ones.
func (s *Storage) collect(published uint64) error {
	to := min(published, s.gcFrom+maxGCBundles*layout.EntryBundleWidth)
	if to/layout.EntryBundleWidth <= s.gcFrom/layout.EntryBundleWidth {
		return nil
	}
	for i := s.gcFrom / layout.EntryBundleWidth; i < to/layout.EntryBundleWidth; i++ {
		if err := s.removeAll(layout.EntriesPath(i, 0) + ".p"); err != nil {
			return err
		}
	}
	for level := uint64(0); to>>(level*layout.TileHeight) >= layout.TileWidth; level++ {
		from, end := s.gcFrom>>(level*layout.TileHeight)/layout.TileWidth, to>>(level*layout.TileHeight)/layout.TileWidth
		for i := from; i < end; i++ {
			if err := s.removeAll(layout.TilePath(level, i, 0) + ".p"); err != nil {
				return err
			}
		}
	}
	b, _ := json.Marshal(gcState{FromSize: to}) // cannot fail
	if err := writeDurable(s.cfg.Path, gcStatePath, b); err != nil {
		return err
	}
	s.gcFrom = to
	return nil
}

func (s *Storage) removeAll(p string) error {
	if err := os.RemoveAll(filepath.Join(s.cfg.Path, p)); err != nil {
		return fmt.Errorf("couldn't remove %s: %w", p, err)
	}
	return nil
}
