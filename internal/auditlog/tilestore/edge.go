package tilestore

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/api/layout"
)

const hashSize = 32

var rangeFactory = &compact.RangeFactory{Hash: hashChildren}

// hashChildren is rfc6962.DefaultHasher.HashChildren without its
// allocations but the result: the tree hashes two nodes per entry.
func hashChildren(l, r []byte) []byte {
	var b [1 + 2*hashSize]byte
	b[0] = 1 // RFC 6962 node prefix
	copy(b[1:], l)
	copy(b[1+hashSize:], r)
	h := sha256.Sum256(b[:])
	return h[:]
}

// hashLeaf is rfc6962.DefaultHasher.HashLeaf, reusing buf for the prefixed
// data; it returns the hash and buf to reuse.
func hashLeaf(buf, data []byte) (hash, newBuf []byte) {
	buf = append(append(buf[:0], 0), data...) // RFC 6962 leaf prefix
	h := sha256.Sum256(buf)
	return h[:], buf
}

// edge is the right edge of the tree: all that appending to it needs. The
// compact range gives the root; tiles[L] holds the hashes of the right-most
// tile of level L that is not full, and bundle the entries of the right-most
// entry bundle that is not full. Full tiles and bundles are never read
// again.
type edge struct {
	rng     *compact.Range
	tiles   []edgeTile // by level
	bundle  edgeTile   // its hashes are bundle data
	visited []file     // full tiles, filled in by visit
	err     error      // from visit
	buf     []byte     // for hashLeaf
}

// edgeTile is a tile (or bundle) not yet full: its index and contents.
type edgeTile struct {
	index uint64
	n     int    // hashes, or entries of a bundle
	data  []byte // hashes, or the bundle's entries
	dirty bool   // grew since it was last written
}

// file is a resource to write: its path relative to the log's root and its
// contents.
type file struct {
	path string
	data []byte
}

// append adds entries to the edge from its end on and returns the files
// they change: every tile and bundle they fill, and the partial ones they
// leave, and the new root. On error the edge is unusable.
func (e *edge) append(entries [][]byte) (files []file, root []byte, err error) {
	e.visited = e.visited[:0]
	for _, d := range entries {
		if len(d) > math.MaxUint16 {
			return nil, nil, fmt.Errorf("entry of %d bytes is larger than a bundle allows", len(d))
		}
		idx := e.rng.End()
		b := &e.bundle
		if b.n == 0 {
			b.index = idx / layout.EntryBundleWidth
		}
		b.data = binary.BigEndian.AppendUint16(b.data, uint16(len(d)))
		b.data = append(b.data, d...)
		b.n++
		b.dirty = true
		if b.n == layout.EntryBundleWidth {
			e.visited = append(e.visited, file{layout.EntriesPath(b.index, 0), b.data})
			*b = edgeTile{}
		}
		var h []byte
		h, e.buf = hashLeaf(e.buf, d)
		if err := e.rng.Append(h, e.visit); err != nil {
			return nil, nil, err
		}
		if e.err != nil {
			return nil, nil, e.err
		}
	}
	files = append(files, e.visited...)
	if b := &e.bundle; b.dirty && b.n > 0 {
		files = append(files, file{layout.EntriesPath(b.index, uint8(b.n)), b.data})
		b.dirty = false
	}
	for level := range e.tiles {
		if t := &e.tiles[level]; t.dirty && t.n > 0 {
			files = append(files, file{layout.TilePath(uint64(level), t.index, uint8(t.n)), t.data})
			t.dirty = false
		}
	}
	return files, e.root(), nil
}

// visit records a node of the tree that appending completed: the nodes of
// every eighth level are the hashes of tiles.
func (e *edge) visit(id compact.NodeID, hash []byte) {
	if id.Level%layout.TileHeight != 0 || e.err != nil {
		return
	}
	level := int(id.Level / layout.TileHeight)
	for len(e.tiles) <= level {
		e.tiles = append(e.tiles, edgeTile{})
	}
	t := &e.tiles[level]
	if t.n == 0 {
		t.index = id.Index / layout.TileWidth
	}
	if id.Index != t.index*layout.TileWidth+uint64(t.n) {
		e.err = fmt.Errorf("tile %d/%d holds %d hashes but node %d came next", level, t.index, t.n, id.Index)
		return
	}
	t.data = append(t.data, hash...)
	t.n++
	t.dirty = true
	if t.n == layout.TileWidth {
		e.visited = append(e.visited, file{layout.TilePath(uint64(level), t.index, 0), t.data})
		*t = edgeTile{}
	}
}

func (e *edge) root() []byte {
	if e.rng.End() == 0 {
		return rfc6962.DefaultHasher.EmptyRoot()
	}
	r, _ := e.rng.GetRootHash(nil) // cannot fail: the range begins at 0
	return r
}

// loadEdge reads the right edge of the tree of size n: the partial bundle
// and the partial tile of each level, which a tree state of that size
// implies exist. It checks that they rebuild root.
func loadEdge(read func(path string) ([]byte, error), n uint64, root []byte) (*edge, error) {
	e := &edge{}
	if k := n % layout.EntryBundleWidth; k > 0 {
		b, err := read(layout.EntriesPath(n/layout.EntryBundleWidth, uint8(k)))
		if err != nil {
			return nil, fmt.Errorf("couldn't read the last entry bundle: %w", err)
		}
		var eb api.EntryBundle
		if err := eb.UnmarshalText(b); err != nil || len(eb.Entries) != int(k) {
			return nil, fmt.Errorf("entry bundle %d.p/%d is malformed", n/layout.EntryBundleWidth, k)
		}
		e.bundle = edgeTile{index: n / layout.EntryBundleWidth, n: int(k), data: b}
	}
	for level := uint64(0); n>>(level*layout.TileHeight) > 0; level++ {
		s := n >> (level * layout.TileHeight)
		t := edgeTile{index: s / layout.TileWidth, n: int(s % layout.TileWidth)}
		if t.n > 0 {
			b, err := read(layout.TilePath(level, t.index, uint8(t.n)))
			if err != nil {
				return nil, fmt.Errorf("couldn't read the last tile of level %d: %w", level, err)
			}
			if len(b) != t.n*hashSize {
				return nil, fmt.Errorf("tile %d/%d.p/%d holds %d bytes", level, t.index, t.n, len(b))
			}
			t.data = b
		}
		e.tiles = append(e.tiles, t)
	}
	rng, err := e.rangeOf(n)
	if err != nil {
		return nil, err
	}
	e.rng = rng
	if got := e.root(); !bytes.Equal(got, root) {
		return nil, fmt.Errorf("the tiles of the tree of size %d rebuild root %x, but its tree state says %x", n, got, root)
	}
	return e, nil
}

// rangeOf builds the compact range of the tree of size n from the edge's
// tiles: each of its nodes roots a perfect subtree whose leaves, on a level
// that is a multiple of eight, lie in the right-most tile of that level.
func (e *edge) rangeOf(n uint64) (*compact.Range, error) {
	ids := compact.RangeNodes(0, n, nil)
	hashes := make([][]byte, 0, len(ids))
	for _, id := range ids {
		level, r := id.Level/layout.TileHeight, id.Level%layout.TileHeight
		if int(level) >= len(e.tiles) {
			return nil, errors.New("missing tile level")
		}
		t := e.tiles[level]
		first := id.Index<<r - t.index*layout.TileWidth
		count := uint64(1) << r
		if id.Index<<r < t.index*layout.TileWidth || first+count > uint64(t.n) {
			return nil, fmt.Errorf("node %d/%d is not in tile %d/%d", id.Level, id.Index, level, t.index)
		}
		hashes = append(hashes, subtreeRoot(t.data[first*hashSize:(first+count)*hashSize]))
	}
	return rangeFactory.NewRange(0, n, hashes)
}

// subtreeRoot returns the root of the perfect subtree whose nodes, a power
// of two of them, are the concatenated hashes b.
func subtreeRoot(b []byte) []byte {
	level := make([][]byte, 0, len(b)/hashSize)
	for i := 0; i < len(b); i += hashSize {
		level = append(level, b[i:i+hashSize])
	}
	for len(level) > 1 {
		next := level[:0]
		for i := 0; i < len(level); i += 2 {
			next = append(next, hashChildren(level[i], level[i+1]))
		}
		level = next
	}
	return level[0]
}
