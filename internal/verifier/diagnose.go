package verifier

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api/layout"
	"github.com/transparency-dev/tessera/client"
)

// diagnose runs once the rebuilt root differs from the checkpoint's, so the
// log is already known to be bad; it only finds which entry to name. It
// compares each bundle's leaf hashes with the level-0 hash tile, and, at the
// first difference, proves that the tile's leaf hash is the one the
// checkpoint commits to before blaming the entry.
func (v *run) diagnose(ctx context.Context, root []byte) error {
	generic := fmt.Errorf("%w: entries %d to %d rebuild to root %x, the checkpoint has %x", ErrChanged, v.start, v.cp.Size-1, root, v.cp.Root)
	first := v.start / layout.EntryBundleWidth
	for i, digest := range v.digests {
		bi := first + uint64(i)
		lo, hi := v.span(bi)
		leaves, path, err := v.tileLeaves(ctx, bi, lo, hi)
		if err != nil {
			return fmt.Errorf("%w (and couldn't read tile %s: %v)", generic, path, err)
		}
		d := sha256.New()
		for _, l := range leaves {
			d.Write(l)
		}
		if [sha256.Size]byte(d.Sum(nil)) == digest {
			continue
		}
		if err := v.blame(ctx, bi, lo, leaves, path); err != nil {
			return err
		}
		return generic
	}
	return generic
}

// tileLeaves returns the leaf hashes the level-0 tile of bundle bi holds
// for [lo, hi).
func (v *run) tileLeaves(ctx context.Context, bi, lo, hi uint64) ([][]byte, string, error) {
	p := layout.PartialTileSize(0, bi, v.cp.Size)
	path := layout.TilePath(0, bi, p)
	raw, err := v.f.tile(ctx, 0, bi, p)
	if err != nil {
		return nil, path, err
	}
	base := bi * layout.EntryBundleWidth
	var leaves [][]byte
	for i := lo; i < hi; i++ {
		o := (i - base) * hashSize
		leaves = append(leaves, raw[o:o+hashSize])
	}
	return leaves, path, nil
}

// blame fetches bundle bi again and returns an EntryError for the first
// entry whose leaf hash differs from the tile's, provided an inclusion
// proof shows the tile's hash is the checkpoint's. It returns nil when it
// cannot tell.
func (v *run) blame(ctx context.Context, bi, lo uint64, leaves [][]byte, tilePath string) error {
	entries, path, err := v.f.bundle(ctx, bi, layout.PartialTileSize(0, bi, v.cp.Size))
	if err != nil {
		return nil
	}
	base := bi * layout.EntryBundleWidth
	for j, want := range leaves {
		idx := lo + uint64(j)
		var got []byte
		if k := idx - base; k < uint64(len(entries)) {
			got = rfc6962.DefaultHasher.HashLeaf(entries[k])
		}
		if bytes.Equal(got, want) {
			continue
		}
		if !v.committed(ctx, idx, want) {
			return nil
		}
		return &EntryError{Index: idx, Err: fmt.Errorf("%w: leaf hash mismatch (%s against %s)", ErrChanged, path, tilePath)}
	}
	return nil
}

// committed reports whether the checkpoint commits to leaf hash h at idx.
func (v *run) committed(ctx context.Context, idx uint64, h []byte) bool {
	pb, err := client.NewProofBuilder(ctx, v.cp.Size, v.f.tile)
	if err != nil {
		return false
	}
	p, err := pb.InclusionProof(ctx, idx)
	if err != nil {
		return false
	}
	return proof.VerifyInclusion(rfc6962.DefaultHasher, idx, v.cp.Size, h, p, v.cp.Root) == nil
}
