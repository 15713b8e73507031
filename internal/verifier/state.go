package verifier

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

// The state a monitor keeps between runs, version 1: one JSON object
//
//	{"version":1,"checkpoint":"<signed note>","range":["<base64 hash>",…]}
//
// where checkpoint is the last checkpoint verified, as served, and range is
// the compact range of the tree of that size (the hashes of the perfect
// subtrees covering [0, size), left to right), from which the next run
// extends the tree with new entries only.

const (
	stateVersion = 1
	maxStateSize = 64 << 10
)

type stateFile struct {
	Version    int      `json:"version"`
	Checkpoint string   `json:"checkpoint"`
	Range      [][]byte `json:"range"`
}

// state is a verified state: its checkpoint is signed by the log key and its
// compact range hashes to the checkpoint's root.
type state struct {
	cp  Checkpoint
	rng *compact.Range
}

var rangeFactory = &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}

// parseState decodes and checks a state made by marshalState.
func parseState(data []byte, logKey note.Verifier, origin string) (state, error) {
	if len(data) > maxStateSize {
		return state{}, fmt.Errorf("state larger than %d bytes", maxStateSize)
	}
	var f stateFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return state{}, fmt.Errorf("malformed state: %w", err)
	}
	if dec.More() {
		return state{}, errors.New("malformed state: data after the object")
	}
	if f.Version != stateVersion {
		return state{}, fmt.Errorf("state version %d, want %d", f.Version, stateVersion)
	}
	cp, err := openCheckpoint([]byte(f.Checkpoint), logKey, origin, nil)
	if err != nil {
		return state{}, fmt.Errorf("state checkpoint: %w", err)
	}
	if len(f.Range) != compact.RangeSize(0, cp.Size) {
		return state{}, fmt.Errorf("state range has %d hashes, want %d", len(f.Range), compact.RangeSize(0, cp.Size))
	}
	for _, h := range f.Range {
		if len(h) != hashSize {
			return state{}, errors.New("state range hash is not 32 bytes")
		}
	}
	rng, err := rangeFactory.NewRange(0, cp.Size, f.Range)
	if err != nil {
		return state{}, fmt.Errorf("malformed state range: %w", err)
	}
	if !bytes.Equal(rangeRoot(rng), cp.Root) {
		return state{}, errors.New("state range does not hash to its checkpoint's root")
	}
	return state{cp: cp, rng: rng}, nil
}

func marshalState(s state) []byte {
	b, err := json.Marshal(stateFile{Version: stateVersion, Checkpoint: string(s.cp.Raw), Range: s.rng.Hashes()})
	if err != nil {
		panic(err) // strings and byte slices always encode
	}
	return append(b, '\n')
}

// rangeRoot is the root of the tree a compact range from 0 covers.
func rangeRoot(r *compact.Range) []byte {
	root, err := r.GetRootHash(nil)
	if err != nil {
		panic(err) // only ranges from 0 are used
	}
	if root == nil {
		return rfc6962.DefaultHasher.EmptyRoot()
	}
	return root
}
