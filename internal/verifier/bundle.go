package verifier

import (
	"encoding/binary"
	"fmt"

	"github.com/transparency-dev/tessera/api/layout"
)

// parseBundle splits a C2SP tlog-tiles entry bundle: a sequence of entries,
// each a big-endian uint16 length and that many bytes. It refuses more than
// 256 entries and trailing bytes. The entries alias b.
func parseBundle(b []byte) ([][]byte, error) {
	var entries [][]byte
	for len(b) > 0 {
		if len(entries) == layout.EntryBundleWidth {
			return nil, fmt.Errorf("more than %d entries", layout.EntryBundleWidth)
		}
		if len(b) < 2 {
			return nil, fmt.Errorf("truncated length after entry %d", len(entries))
		}
		n := int(binary.BigEndian.Uint16(b))
		if len(b)-2 < n {
			return nil, fmt.Errorf("entry %d of the bundle is truncated", len(entries))
		}
		entries = append(entries, b[2:2+n:2+n])
		b = b[2+n:]
	}
	return entries, nil
}
