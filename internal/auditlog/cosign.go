package auditlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/custos/custos"
	"github.com/custos/custos/internal/witness"
	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/tessera/api/layout"
	"github.com/transparency-dev/tessera/client"
)

// cosigned is a checkpoint with the witness cosignatures set for it.
type cosigned struct {
	checkpoint []byte // as published by the log
	size       uint64
	served     []byte // checkpoint with the cosignatures attached
	at         time.Time
}

// ConsistencyProof returns the RFC 6962 consistency proof from the tree of
// from leaves to the tree of to leaves, as C2SP tlog-witness wants it. It
// is empty when from is 0 or equals to; to must not exceed the integrated
// tree.
func (l *Log) ConsistencyProof(ctx context.Context, from, to uint64) ([][]byte, error) {
	if from > to {
		return nil, fmt.Errorf("consistency proof from %d to %d is reversed", from, to)
	}
	n, err := l.treeSize(ctx)
	if err != nil {
		return nil, err
	}
	if to > n {
		return nil, fmt.Errorf("tree size %d exceeds the audit log's %d", to, n)
	}
	if from == 0 || from == to {
		return [][]byte{}, nil
	}
	pb, err := client.NewProofBuilder(ctx, to, l.readTile)
	if err != nil {
		return nil, fmt.Errorf("couldn't build consistency proof: %w", err)
	}
	p, err := pb.ConsistencyProof(ctx, from, to)
	if err != nil {
		return nil, fmt.Errorf("couldn't build consistency proof: %w", err)
	}
	return p, nil
}

// SetCosignatures records sigs, witness signature lines (see
// witness.Client.AddCheckpoint), as the cosignatures of checkpoint, a
// checkpoint returned by Checkpoint. They replace those set before, unless
// checkpoint is smaller than the checkpoint they were set for, in which
// case the call does nothing. The lines are served as given: the caller
// verifies them with the witnesses' keys first. It is safe to call
// concurrently with the handler.
func (l *Log) SetCosignatures(checkpoint []byte, sigs [][]byte) error {
	if len(checkpoint) > custos.MaxCheckpointSize {
		return fmt.Errorf("checkpoint larger than %d bytes", custos.MaxCheckpointSize)
	}
	c, err := parseCheckpoint(checkpoint)
	if err != nil {
		return err
	}
	if c.Origin != l.origin {
		return fmt.Errorf("checkpoint origin is %q, not the audit log's %q", c.Origin, l.origin)
	}
	next := &cosigned{
		checkpoint: bytes.Clone(checkpoint), size: c.Size,
		served: witness.AttachCosignatures(checkpoint, sigs...), at: l.now(),
	}
	if len(next.served) > custos.MaxCheckpointSize {
		return fmt.Errorf("cosigned checkpoint larger than %d bytes", custos.MaxCheckpointSize)
	}
	for {
		old := l.cosigned.Load()
		if old != nil && old.size > next.size {
			return nil
		}
		if l.cosigned.CompareAndSwap(old, next) {
			return nil
		}
	}
}

// ServedCheckpoint returns the checkpoint /log/checkpoint serves and its
// tree size: the published one with its cosignatures if it has some; else
// the cosigned one set within the hold, if it is not smaller than a
// checkpoint already served; else the published one, bare. Proofs for
// clients are built against it, so that a client can require the
// witnesses too.
func (l *Log) ServedCheckpoint(context.Context) ([]byte, uint64, error) {
	f, err := l.root.Open(layout.CheckpointPath)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	cur, err := io.ReadAll(io.LimitReader(f, custos.MaxCheckpointSize+1))
	if err != nil {
		return nil, 0, err
	}
	if len(cur) > custos.MaxCheckpointSize {
		return nil, 0, fmt.Errorf("checkpoint larger than %d bytes", custos.MaxCheckpointSize)
	}
	c, err := parseCheckpoint(cur)
	if err != nil {
		return nil, 0, err
	}
	out, size := cur, c.Size
	if cs := l.cosigned.Load(); cs != nil {
		switch {
		case bytes.Equal(cs.checkpoint, cur):
			out = cs.served
		case cs.size < size && cs.size >= l.served.Load() && l.now().Sub(cs.at) < l.hold:
			out, size = cs.served, cs.size
		}
	}
	for {
		s := l.served.Load()
		if s >= size || l.served.CompareAndSwap(s, size) {
			return out, size, nil
		}
	}
}

// CheckpointSize returns the tree size of a signed checkpoint of the log,
// without verifying its signature.
func CheckpointSize(signed []byte) (uint64, error) {
	c, err := parseCheckpoint(signed)
	if err != nil {
		return 0, err
	}
	return c.Size, nil
}

// parseCheckpoint parses the text of a signed checkpoint note. It does not
// verify the signature: the log only parses notes it wrote.
func parseCheckpoint(signed []byte) (*log.Checkpoint, error) {
	i := bytes.Index(signed, []byte("\n\n"))
	if i < 0 {
		return nil, errors.New("malformed checkpoint: no signature")
	}
	var c log.Checkpoint
	if _, err := c.Unmarshal(signed[:i+1]); err != nil {
		return nil, fmt.Errorf("malformed checkpoint: %w", err)
	}
	return &c, nil
}
