package witness

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/custos/custos/internal/safefile"
)

// The state directory holds one file per log: the latest checkpoint the
// witness cosigned for it, as the note text followed by the log signatures
// that verified. The file is named by the hex SHA-256 of the origin, so that
// any origin maps to a safe, fixed-length name.

func statePath(dir, origin string) string {
	sum := sha256.Sum256([]byte(origin))
	return filepath.Join(dir, hex.EncodeToString(sum[:])+".checkpoint")
}

// loadState reads the stored checkpoint of origin, or returns nil when the
// witness never cosigned one. The state directory is trusted: the log
// signatures in the file are not verified again.
func loadState(dir, origin string) (*checkpoint, error) {
	b, err := os.ReadFile(statePath(dir, origin))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	i := bytes.LastIndex(b, []byte("\n\n"))
	if i < 0 {
		return nil, errors.New("stored checkpoint is not a signed note")
	}
	c, err := parseCheckpoint(string(b[:i+1]))
	if err != nil {
		return nil, err
	}
	if c.origin != origin {
		return nil, fmt.Errorf("stored checkpoint has origin %q", c.origin)
	}
	return c, nil
}

// storeState makes note the stored checkpoint of origin, atomically and
// durably: it writes a temporary file, syncs it, renames it over the old
// one and syncs the directory. When it returns nil the new state survives
// a crash; when it fails, the old state is intact.
func storeState(dir, origin string, note []byte) error {
	return safefile.Replace(statePath(dir, origin), note, 0o600)
}
