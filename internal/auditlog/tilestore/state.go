package tilestore

import (
	"encoding/json"
	"fmt"

	"github.com/transparency-dev/merkle/rfc6962"
)

// The tree state is the file .state/treeState: the size and root of the
// tree whose tiles and entry bundles are all durable, as the JSON object
// Tessera's POSIX driver writes, {"size":N,"root":"<base64>"}, so that a
// log moves between that driver and this one in either direction.
const (
	stateDir      = ".state"
	treeStatePath = stateDir + "/treeState"
	versionPath   = stateDir + "/version"
	gcStatePath   = stateDir + "/gcState"
	// version is the value of .state/version that Tessera's POSIX
	// driver checks; the layout is the same.
	version = "1"
	// maxStateSize bounds the state files read: a size, a root and
	// little else.
	maxStateSize = 4096
)

type treeState struct {
	Size uint64 `json:"size"`
	Root []byte `json:"root"`
}

func marshalTreeState(size uint64, root []byte) []byte {
	b, _ := json.Marshal(treeState{Size: size, Root: root}) // cannot fail
	return b
}

// parseTreeState parses the contents of .state/treeState. The root must be
// a SHA-256 hash; it is not checked against the tiles here.
func parseTreeState(b []byte) (size uint64, root []byte, err error) {
	if len(b) > maxStateSize {
		return 0, nil, fmt.Errorf("tree state larger than %d bytes", maxStateSize)
	}
	var s treeState
	if err := json.Unmarshal(b, &s); err != nil {
		return 0, nil, fmt.Errorf("malformed tree state: %w", err)
	}
	if len(s.Root) != rfc6962.DefaultHasher.Size() {
		return 0, nil, fmt.Errorf("malformed tree state: root of %d bytes", len(s.Root))
	}
	return s.Size, s.Root, nil
}

type gcState struct {
	FromSize uint64 `json:"fromSize"`
}

// parseGCState parses .state/gcState, the size below which the partial
// tiles and bundles of full ones were removed (as Tessera's POSIX driver
// keeps it).
func parseGCState(b []byte) (uint64, error) {
	if len(b) > maxStateSize {
		return 0, fmt.Errorf("gc state larger than %d bytes", maxStateSize)
	}
	var s gcState
	if err := json.Unmarshal(b, &s); err != nil {
		return 0, fmt.Errorf("malformed gc state: %w", err)
	}
	return s.FromSize, nil
}
