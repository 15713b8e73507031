package verifier

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api/layout"
	"github.com/transparency-dev/tessera/client"
	"golang.org/x/mod/sumdb/note"
)

// InclusionProof shows that Entry is at Index in the log whose signed
// checkpoint of size Size is Checkpoint.
type InclusionProof struct {
	Index      uint64   `json:"index"`
	Size       uint64   `json:"size"`
	LeafHash   []byte   `json:"leaf_hash"`
	Proof      [][]byte `json:"proof"`
	Checkpoint []byte   `json:"checkpoint"`
	Entry      []byte   `json:"entry"`
}

// Prove fetches the log's checkpoint, checks its signature by logKey (origin
// is logKey's name), builds the inclusion proof of the entry at index from
// the hash tiles, and verifies it before returning it.
func Prove(ctx context.Context, logURL string, logKey note.Verifier, index uint64) (InclusionProof, error) {
	if logKey == nil {
		return InclusionProof{}, errors.New("no log verifier key")
	}
	f, err := newFetcher(logURL, nil, 0)
	if err != nil {
		return InclusionProof{}, err
	}
	raw, err := f.checkpoint(ctx)
	if err != nil {
		return InclusionProof{}, err
	}
	cp, err := openCheckpoint(raw, logKey, logKey.Name(), nil)
	if err != nil {
		return InclusionProof{}, err
	}
	if index >= cp.Size {
		return InclusionProof{}, fmt.Errorf("entry %d is not in the log of size %d", index, cp.Size)
	}
	bi := index / layout.EntryBundleWidth
	entries, _, err := f.bundle(ctx, bi, layout.PartialTileSize(0, bi, cp.Size))
	if err != nil {
		return InclusionProof{}, &EntryError{Index: index, Err: fmt.Errorf("%w: %w", ErrChanged, err)}
	}
	k := index % layout.EntryBundleWidth
	if k >= uint64(len(entries)) {
		return InclusionProof{}, &EntryError{Index: index, Err: fmt.Errorf("%w: not in its bundle", ErrChanged)}
	}
	pb, err := client.NewProofBuilder(ctx, cp.Size, f.tile)
	if err != nil {
		return InclusionProof{}, fmt.Errorf("couldn't build inclusion proof: %w", err)
	}
	hashes, err := pb.InclusionProof(ctx, index)
	if err != nil {
		return InclusionProof{}, fmt.Errorf("couldn't build inclusion proof: %w", err)
	}
	p := InclusionProof{
		Index: index, Size: cp.Size, LeafHash: rfc6962.DefaultHasher.HashLeaf(entries[k]),
		Proof: hashes, Checkpoint: cp.Raw, Entry: bytes.Clone(entries[k]),
	}
	if err := VerifyInclusion(p, logKey); err != nil {
		return InclusionProof{}, err
	}
	return p, nil
}

// VerifyInclusion checks p offline: the checkpoint's signature by logKey
// (origin is logKey's name), that the entry hashes to LeafHash, and that
// the proof leads from LeafHash at Index to the checkpoint's root.
func VerifyInclusion(p InclusionProof, logKey note.Verifier) error {
	cp, err := openCheckpoint(p.Checkpoint, logKey, logKey.Name(), nil)
	if err != nil {
		return err
	}
	if cp.Size != p.Size {
		return fmt.Errorf("proof is for size %d, its checkpoint has size %d", p.Size, cp.Size)
	}
	if !bytes.Equal(rfc6962.DefaultHasher.HashLeaf(p.Entry), p.LeafHash) {
		return &EntryError{Index: p.Index, Err: fmt.Errorf("%w: entry does not hash to the leaf hash", ErrChanged)}
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, p.Index, p.Size, p.LeafHash, p.Proof, cp.Root); err != nil {
		return &EntryError{Index: p.Index, Err: fmt.Errorf("%w: inclusion proof fails: %v", ErrChanged, err)}
	}
	return nil
}
