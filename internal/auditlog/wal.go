package auditlog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/custos/custos"
)

// The write-ahead log makes entries durable and gives them their indexes
// before they are integrated into the tiles: one append and one fsync per
// group of entries, where integrating writes and syncs several files per
// batch. The integrator then hands the logged entries to the tile storage
// at the indexes the WAL gave them; Open replays what was not integrated
// when the process stopped.
//
// The WAL is a directory of segments, each named by the index of its first
// entry (20 decimal digits, ".wal"). A segment is walMagic followed by
// records:
//
//	length  uint32 little-endian, of data, at most custos.MaxAuditEntrySize
//	crc     uint32 little-endian, CRC-32C of index and data
//	index   uint64 little-endian
//	data    the entry, as custos.MarshalAuditEntry wrote it
//
// Records are consecutive: each index is one more than the one before, the
// first is the segment's name. A segment is deleted once every entry in it
// is integrated.
const (
	walDir          = "wal"
	walMagic        = "custos-audit-wal-v1\n"
	walSuffix       = ".wal"
	walRecordHeader = 16
)

// walSegmentTarget is the size past which a new segment begins; a variable
// so that tests can make segments small.
var walSegmentTarget int64 = 64 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// walRecord is one entry of the WAL.
type walRecord struct {
	index uint64
	data  []byte
}

// appendWALRecord appends the encoding of (index, data) to b.
func appendWALRecord(b []byte, index uint64, data []byte) []byte {
	var h [walRecordHeader]byte
	binary.LittleEndian.PutUint32(h[0:4], uint32(len(data)))
	binary.LittleEndian.PutUint64(h[8:16], index)
	crc := crc32.Update(crc32.Update(0, castagnoli, h[8:16]), castagnoli, data)
	binary.LittleEndian.PutUint32(h[4:8], crc)
	return append(append(b, h[:]...), data...)
}

// errTorn marks where a segment stops holding whole, intact records.
var errTorn = errors.New("torn or corrupt record")

// parseWALSegment parses a segment's bytes, which must begin with walMagic
// and hold records from first on. It returns the intact records and the
// offset just past the last one; when the bytes after it are not an intact
// record, err wraps errTorn. The records' data alias b.
func parseWALSegment(b []byte, first uint64) (recs []walRecord, end int, err error) {
	if !bytes.HasPrefix(b, []byte(walMagic)) {
		return nil, 0, errors.New("not an audit WAL segment")
	}
	off := len(walMagic)
	for next := first; off < len(b); next++ {
		rest := b[off:]
		if len(rest) < walRecordHeader {
			return recs, off, fmt.Errorf("%w: %d bytes of a record header at offset %d", errTorn, len(rest), off)
		}
		n := binary.LittleEndian.Uint32(rest[0:4])
		idx := binary.LittleEndian.Uint64(rest[8:16])
		switch {
		case n > custos.MaxAuditEntrySize:
			return recs, off, fmt.Errorf("%w: record at offset %d claims %d bytes", errTorn, off, n)
		case uint64(len(rest)-walRecordHeader) < uint64(n):
			return recs, off, fmt.Errorf("%w: record at offset %d is cut short", errTorn, off)
		}
		data := rest[walRecordHeader : walRecordHeader+int(n)]
		crc := crc32.Update(crc32.Update(0, castagnoli, rest[8:16]), castagnoli, data)
		switch {
		case crc != binary.LittleEndian.Uint32(rest[4:8]):
			return recs, off, fmt.Errorf("%w: checksum mismatch at offset %d", errTorn, off)
		case idx != next:
			return recs, off, fmt.Errorf("%w: record at offset %d has index %d, want %d", errTorn, off, idx, next)
		}
		recs = append(recs, walRecord{index: idx, data: data})
		off += walRecordHeader + int(n)
	}
	return recs, off, nil
}

func walSegmentName(first uint64) string {
	return fmt.Sprintf("%020d%s", first, walSuffix)
}

// walSegments returns the first indexes of the segments in the WAL
// directory, in order.
func walSegments(root *os.Root) ([]uint64, error) {
	ents, err := fs.ReadDir(root.FS(), walDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("couldn't list the audit WAL: %w", err)
	}
	var firsts []uint64
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), walSuffix)
		if !ok || len(name) != 20 {
			continue
		}
		first, err := strconv.ParseUint(name, 10, 64)
		if err != nil {
			continue
		}
		firsts = append(firsts, first)
	}
	slices.Sort(firsts)
	return firsts, nil
}

// recoverWAL reads the WAL and returns the entries from index integrated
// on, which are yet to be integrated. A torn tail of the last segment
// (a group whose write was cut by a crash, so never acknowledged) is cut
// off; damage anywhere else, or a gap between what the tree holds and what
// the WAL holds, is an error: entries acknowledged as durable would be
// lost.
func recoverWAL(root *os.Root, integrated uint64) (pending []walRecord, cut int64, err error) {
	firsts, err := walSegments(root)
	if err != nil {
		return nil, 0, err
	}
	next := integrated
	for i, first := range firsts {
		last := i == len(firsts)-1
		name := walDir + "/" + walSegmentName(first)
		b, err := root.ReadFile(name)
		if err != nil {
			return nil, 0, fmt.Errorf("couldn't read audit WAL segment %s: %w", name, err)
		}
		recs, end, err := parseWALSegment(b, first)
		if err != nil {
			if !last || !errors.Is(err, errTorn) {
				return nil, 0, fmt.Errorf("audit WAL segment %s is damaged, entries acknowledged as durable may be lost: %w", name, err)
			}
			if err := truncate(root, name, int64(end)); err != nil {
				return nil, 0, err
			}
			cut = int64(len(b) - end)
		}
		if len(recs) == 0 {
			continue
		}
		if first > next {
			return nil, 0, fmt.Errorf("audit WAL segment %s begins at entry %d but the log holds %d entries: entries %d to %d are missing", name, first, next, next, first-1)
		}
		for _, r := range recs {
			if r.index == next {
				pending = append(pending, r)
				next++
			}
		}
	}
	return pending, cut, nil
}

func truncate(root *os.Root, name string, size int64) error {
	f, err := root.OpenFile(name, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("couldn't cut the torn tail of audit WAL segment %s: %w", name, err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("couldn't cut the torn tail of audit WAL segment %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("couldn't cut the torn tail of audit WAL segment %s: %w", name, err)
	}
	return nil
}

// walWriter appends records to the current segment. It is used by one
// goroutine at a time.
type walWriter struct {
	root *os.Root
	f    *os.File
	size int64
	buf  []byte
}

// startSegment closes the current segment, if any, and begins a new one at
// index first, durably: the file, its header and its directory entry are
// synced before any record is appended to it.
func (w *walWriter) startSegment(first uint64) error {
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
	if err := w.root.Mkdir(walDir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("couldn't create the audit WAL: %w", err)
	}
	name := walDir + "/" + walSegmentName(first)
	f, err := w.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("couldn't create audit WAL segment: %w", err)
	}
	if _, err := io.WriteString(f, walMagic); err != nil {
		f.Close()
		return fmt.Errorf("couldn't write audit WAL segment: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("couldn't sync audit WAL segment: %w", err)
	}
	if err := syncDir(w.root, walDir); err != nil {
		f.Close()
		return err
	}
	w.f, w.size = f, int64(len(walMagic))
	return nil
}

// write appends the entries as records from index first and syncs them.
// The segment is full when it returns true: the next write must start a
// new one.
func (w *walWriter) write(first uint64, entries [][]byte) (full bool, err error) {
	w.buf = w.buf[:0]
	for i, e := range entries {
		w.buf = appendWALRecord(w.buf, first+uint64(i), e)
	}
	n, err := w.f.Write(w.buf)
	w.size += int64(n)
	if err != nil {
		return false, fmt.Errorf("couldn't write the audit WAL: %w", err)
	}
	if err := w.f.Sync(); err != nil {
		return false, fmt.Errorf("couldn't sync the audit WAL: %w", err)
	}
	return w.size >= walSegmentTarget, nil
}

func (w *walWriter) close() {
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
}

// removeIntegrated deletes the segments whose entries are all below
// integrated; lastEnd is one past the last entry of the last segment, or
// math.MaxUint64 while it is being written. It returns how many segments
// it removed.
func removeIntegrated(root *os.Root, integrated, lastEnd uint64) (int, error) {
	firsts, err := walSegments(root)
	if err != nil {
		return 0, err
	}
	for i, first := range firsts {
		end := lastEnd
		if i+1 < len(firsts) {
			end = firsts[i+1]
		}
		if end > integrated {
			return i, nil
		}
		if err := root.Remove(walDir + "/" + walSegmentName(first)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return i, fmt.Errorf("couldn't remove integrated audit WAL segment: %w", err)
		}
	}
	return len(firsts), nil
}

func syncDir(root *os.Root, name string) error {
	d, err := root.Open(name)
	if err != nil {
		return fmt.Errorf("couldn't sync the audit WAL directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("couldn't sync the audit WAL directory: %w", err)
	}
	return nil
}
