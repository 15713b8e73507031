package verifier

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/custos/custos"
	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
)

// maxLogSize keeps index arithmetic far from overflow.
const maxLogSize = 1 << 56

// Errors callers branch on; Verify and Prove wrap them with the sizes,
// indexes and keys concerned.
var (
	// ErrBadSignature: the checkpoint is not validly signed by the log key.
	ErrBadSignature = errors.New("bad signature")
	// ErrRolledBack: the log is smaller than when it was last verified.
	ErrRolledBack = errors.New("checkpoint rolled back")
	// ErrFork: the log is not an extension of the one last verified.
	ErrFork = errors.New("fork")
	// ErrQuorum: too few of the configured witnesses cosigned the checkpoint.
	ErrQuorum = errors.New("witness quorum not met")
	// ErrChanged: an entry's bytes do not hash to what the checkpoint
	// commits to, or an entry the checkpoint covers is not served.
	ErrChanged = errors.New("changed or missing")
	// ErrUnparsable: an entry is not a canonically encoded audit entry.
	ErrUnparsable = errors.New("does not parse")
)

// EntryError names the log entry that failed verification. Its Err wraps
// ErrChanged or ErrUnparsable.
type EntryError struct {
	Index uint64
	Err   error
}

func (e *EntryError) Error() string { return fmt.Sprintf("entry %d %v", e.Index, e.Err) }
func (e *EntryError) Unwrap() error { return e.Err }

// Checkpoint is a checkpoint whose log signature has been verified.
type Checkpoint struct {
	Origin string
	Size   uint64
	Root   []byte
	// Raw is the signed note as served, cosignatures included.
	Raw []byte
	// Witnesses names the configured witnesses whose cosignatures verified.
	Witnesses []string
}

// openCheckpoint verifies raw as a checkpoint signed by logKey for origin
// and reports which of witnesses validly cosigned it. A cosignature that
// does not verify is not counted; it is not an error.
func openCheckpoint(raw []byte, logKey note.Verifier, origin string, witnesses []note.Verifier) (Checkpoint, error) {
	if len(raw) > custos.MaxCheckpointSize {
		return Checkpoint{}, fmt.Errorf("checkpoint larger than %d bytes", custos.MaxCheckpointSize)
	}
	n, err := note.Open(raw, note.VerifierList(logKey))
	var unverified *note.UnverifiedNoteError
	var invalid *note.InvalidSignatureError
	switch {
	case errors.As(err, &unverified):
		return Checkpoint{}, fmt.Errorf("%w: checkpoint is not signed by log key %s", ErrBadSignature, logKey.Name())
	case errors.As(err, &invalid):
		return Checkpoint{}, fmt.Errorf("%w: checkpoint signature by %s does not verify", ErrBadSignature, logKey.Name())
	case err != nil:
		return Checkpoint{}, fmt.Errorf("malformed checkpoint: %w", err)
	}
	var c log.Checkpoint
	if _, err := c.Unmarshal([]byte(n.Text)); err != nil {
		return Checkpoint{}, fmt.Errorf("malformed checkpoint: %w", err)
	}
	if c.Origin != origin {
		return Checkpoint{}, fmt.Errorf("checkpoint origin is %q, want %q", c.Origin, origin)
	}
	if len(c.Hash) != hashSize {
		return Checkpoint{}, fmt.Errorf("malformed checkpoint: root hash of %d bytes", len(c.Hash))
	}
	if c.Size > maxLogSize {
		return Checkpoint{}, fmt.Errorf("malformed checkpoint: size %d", c.Size)
	}
	return Checkpoint{
		Origin: c.Origin, Size: c.Size, Root: c.Hash,
		Raw:       bytes.Clone(raw),
		Witnesses: cosigners(n, witnesses),
	}, nil
}

// cosigners returns the names of the witnesses with a valid cosignature on
// n, each once.
func cosigners(n *note.Note, witnesses []note.Verifier) []string {
	var names []string
	seen := make(map[int]bool)
	for _, s := range n.UnverifiedSigs {
		for i, w := range witnesses {
			if seen[i] || w.Name() != s.Name || w.KeyHash() != s.Hash {
				continue
			}
			sig, err := base64.StdEncoding.DecodeString(s.Base64)
			if err != nil || len(sig) < 4 || !w.Verify([]byte(n.Text), sig[4:]) {
				continue
			}
			seen[i] = true
			names = append(names, w.Name())
		}
	}
	return names
}
