package auditlog

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// writeSegment writes a WAL segment of entries from index first, as the
// writer would have before a crash kept them from being integrated.
func writeSegment(t *testing.T, dir string, first uint64, entries [][]byte, tail []byte) string {
	t.Helper()
	b := []byte(walMagic)
	for i, e := range entries {
		b = appendWALRecord(b, first+uint64(i), e)
	}
	b = append(b, tail...)
	if err := os.MkdirAll(filepath.Join(dir, walDir), 0o700); err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(dir, walDir, walSegmentName(first))
	if err := os.WriteFile(name, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return name
}

// seedLog creates a log holding n entries and closes it, returning them.
func seedLog(t *testing.T, cfg Config, n int) [][]byte {
	t.Helper()
	l, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var want [][]byte
	for i := range n {
		if _, err := l.Record(context.Background(), entry(i)); err != nil {
			t.Fatal(err)
		}
		want = append(want, mustMarshal(t, entry(i)))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return want
}

func entriesFrom(t *testing.T, from, n int) [][]byte {
	var out [][]byte
	for i := from; i < from+n; i++ {
		out = append(out, mustMarshal(t, entry(i)))
	}
	return out
}

// TestWALReplay checks that Open integrates what the WAL holds beyond the
// tree, at the indexes the WAL gave it, and that a torn tail (a write cut
// by a crash, never acknowledged) is cut off rather than refused.
func TestWALReplay(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	want := seedLog(t, cfg, 3)
	if segs, _ := os.ReadDir(filepath.Join(dir, walDir)); len(segs) != 0 {
		t.Fatalf("Close left %d WAL segments, want none", len(segs))
	}
	// Entries 1 and 2 again (integrated already: skipped), then 3 to 9, then
	// half a record.
	more := entriesFrom(t, 3, 7)
	torn := appendWALRecord(nil, 10, mustMarshal(t, entry(10)))
	writeSegment(t, dir, 1, append(want[1:3:3], more...), torn[:len(torn)/2])
	want = append(want, more...)

	l := openLog(t, cfg)
	if got := l.Size(); got != 10 {
		t.Fatalf("Size after replay = %d, want 10", got)
	}
	cp := waitCheckpoint(t, l, 10)
	got := readAll(t, l, cp.Size)
	if len(got) != len(want) {
		t.Fatalf("log holds %d entries, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("entry %d = %q, want %q", i, got[i], want[i])
		}
	}
	if root := rootOf(t, got); !bytes.Equal(root, cp.Hash) {
		t.Fatalf("entries rebuild root %x, checkpoint says %x", root, cp.Hash)
	}
	idx, err := l.Record(context.Background(), entry(10))
	if err != nil || idx != 10 {
		t.Fatalf("Record after replay = %d, %v; want 10", idx, err)
	}
}

// TestWALRefusesLoss checks that Open refuses a WAL that would lose
// acknowledged entries: damage before the last segment's tail, or a gap
// between the tree and the WAL.
func TestWALRefusesLoss(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write func(t *testing.T, dir string)
		want  string
	}{{
		name: "damaged segment",
		write: func(t *testing.T, dir string) {
			name := writeSegment(t, dir, 2, entriesFrom(t, 2, 3), nil)
			b, _ := os.ReadFile(name)
			b[len(walMagic)+walRecordHeader+5] ^= 1 // inside entry 2's data
			os.WriteFile(name, b, 0o600)
			writeSegment(t, dir, 5, entriesFrom(t, 5, 2), nil)
		},
		want: "damaged",
	}, {
		name: "gap",
		write: func(t *testing.T, dir string) {
			writeSegment(t, dir, 4, entriesFrom(t, 4, 2), nil)
		},
		want: "entries 2 to 3 are missing",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := testConfig(t, dir)
			seedLog(t, cfg, 2)
			tc.write(t, dir)
			l, err := Open(context.Background(), cfg)
			if err == nil {
				l.Close()
				t.Fatal("Open accepted a WAL that loses entries")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open = %v, want it to say %q", err, tc.want)
			}
		})
	}
}

// TestWALSegments checks that the writer begins new segments and that
// those whose entries are integrated are removed.
func TestWALSegments(t *testing.T) {
	defer func(n int64) { walSegmentTarget = n }(walSegmentTarget)
	walSegmentTarget = 2048
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	l := openLog(t, cfg)
	ctx := context.Background()
	const n = 200
	for i := range n {
		if _, err := l.Record(ctx, entry(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.waitIntegrated(ctx, n); err != nil {
		t.Fatal(err)
	}
	// One more group makes the integrator look at the segments again.
	if _, err := l.Record(ctx, entry(n)); err != nil {
		t.Fatal(err)
	}
	if err := l.waitIntegrated(ctx, n+1); err != nil {
		t.Fatal(err)
	}
	segs, err := os.ReadDir(filepath.Join(dir, walDir))
	if err != nil {
		t.Fatal(err)
	}
	// 201 entries of about 200 bytes fill some 20 segments of 2 KiB.
	if len(segs) > 2 {
		t.Fatalf("%d WAL segments left after integration, want at most 2", len(segs))
	}
	for _, s := range segs {
		if s.Name() == walSegmentName(0) {
			t.Fatal("the first WAL segment is still there: no new segment began, or it was not removed")
		}
	}
	got := readAll(t, l, n+1)
	for i, e := range got {
		if want := mustMarshal(t, entry(i)); !bytes.Equal(e, want) {
			t.Fatalf("entry %d = %q, want %q", i, e, want)
		}
	}
}

func FuzzParseWALSegment(f *testing.F) {
	seg := []byte(walMagic)
	for i := range 3 {
		seg = appendWALRecord(seg, 7+uint64(i), []byte(strings.Repeat("x", i*10)))
	}
	f.Add(seg, uint64(7))
	f.Add(seg[:len(seg)-3], uint64(7))
	f.Add([]byte(walMagic), uint64(0))
	f.Add([]byte("garbage"), uint64(0))
	f.Fuzz(func(t *testing.T, b []byte, first uint64) {
		recs, end, err := parseWALSegment(b, first)
		if end > len(b) {
			t.Fatalf("end %d past %d bytes", end, len(b))
		}
		if err == nil && end != len(b) {
			t.Fatalf("no error but %d bytes left over", len(b)-end)
		}
		if len(recs) == 0 {
			return
		}
		// The intact records are exactly the bytes up to end.
		again := []byte(walMagic)
		for i, r := range recs {
			if r.index != first+uint64(i) {
				t.Fatalf("record %d has index %d, want %d", i, r.index, first+uint64(i))
			}
			again = appendWALRecord(again, r.index, r.data)
		}
		if !bytes.Equal(again, b[:end]) {
			t.Fatal("records do not re-encode to the bytes they came from")
		}
	})
}

// TestConcurrentRecordsKeepTheirIndexes checks, under many concurrent
// writers, that every entry integrated sits at the index Record
// acknowledged for it. Integration batches must never reorder what the
// WAL sequenced: a client holding Custos-Audit-Index i must find its own
// entry at i.
func TestConcurrentRecordsKeepTheirIndexes(t *testing.T) {
	n, writers := 1_000_000, 256
	if testing.Short() {
		n = 20_000
	}
	l := openLog(t, testConfig(t, t.TempDir()))
	ctx := context.Background()
	got := make([]uint64, n) // entry i was acknowledged at got[i]
	var next atomic.Int64
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				idx, err := l.Record(ctx, entry(i))
				if err != nil {
					t.Error(err)
					return
				}
				got[i] = idx
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if err := l.waitIntegrated(ctx, uint64(n)); err != nil {
		t.Fatal(err)
	}
	at := make(map[uint64]int, n)
	for i, idx := range got {
		at[idx] = i
	}
	err := l.Entries(ctx, 0, uint64(n), func(index uint64, data []byte) bool {
		want, ok := at[index]
		if !ok {
			t.Errorf("entry %d was never acknowledged", index)
			return false
		}
		if w := mustMarshal(t, entry(want)); !bytes.Equal(data, w) {
			t.Errorf("entry %d on the log is not the one acknowledged at that index", index)
			return false
		}
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
}
