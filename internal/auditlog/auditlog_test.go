package auditlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/custos/custos"
	f_log "github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/storage/posix"
	"golang.org/x/mod/sumdb/note"
)

const testOrigin = "custos.test/audit"

// testSKey and testVKey are a fixed key pair, so that a child process can
// open the log its parent checks.
const (
	testSKey = "PRIVATE+KEY+custos.test/audit+501aced1+AVcf7L/aaQLcOs9Uxpt8RaFG9rcLWnEIGGKNuUNSuWHA"
	testVKey = "custos.test/audit+501aced1+ASVhDUeuC2uAOw5Y+L/GNO/2HZ6hi6vv4HpbZIwTVtwp"
)

func testKeys(t testing.TB) (note.Signer, note.Verifier) {
	t.Helper()
	s, err := note.NewSigner(testSKey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(testVKey)
	if err != nil {
		t.Fatal(err)
	}
	return s, v
}

func testConfig(t testing.TB, dir string) Config {
	t.Helper()
	s, _ := testKeys(t)
	return Config{Dir: dir, Origin: testOrigin, Signer: s, CheckpointInterval: 100 * time.Millisecond}
}

func openLog(t testing.TB, cfg Config) *Log {
	t.Helper()
	l, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func entry(i int) custos.AuditEntry {
	return custos.AuditEntry{
		Time:   time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC),
		Action: "read", Decision: "allow", Org: "operator", Purpose: "feed",
		Subject: fmt.Sprintf("ap_%08d", i), Forms: map[string]string{"email": "token", "handle": "clear"},
		Detail: "policy v1",
	}
}

func mustMarshal(t testing.TB, e custos.AuditEntry) []byte {
	t.Helper()
	b, err := custos.MarshalAuditEntry(e)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// waitCheckpoint waits for a checkpoint of at least size entries and
// returns it verified.
func waitCheckpoint(t testing.TB, l *Log, size uint64) *f_log.Checkpoint {
	t.Helper()
	_, v := testKeys(t)
	deadline := time.Now().Add(10 * time.Second)
	for {
		raw, err := l.Checkpoint(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		cp, _, _, err := f_log.ParseCheckpoint(raw, testOrigin, v)
		if err != nil {
			t.Fatalf("checkpoint does not verify: %v\n%s", err, raw)
		}
		if cp.Size >= size {
			return cp
		}
		if time.Now().After(deadline) {
			t.Fatalf("checkpoint size %d, want at least %d", cp.Size, size)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// readAll returns the first n entries of l.
func readAll(t testing.TB, l *Log, n uint64) [][]byte {
	t.Helper()
	var got [][]byte
	err := l.Entries(context.Background(), 0, n, func(i uint64, e []byte) bool {
		if i != uint64(len(got)) {
			t.Fatalf("Entries yielded index %d, want %d", i, len(got))
		}
		got = append(got, bytes.Clone(e))
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	if uint64(len(got)) != n {
		t.Fatalf("Entries yielded %d, want %d", len(got), n)
	}
	return got
}

// recordInGroups records entries 0 to n-1 in concurrent groups of 1 to
// maxGroup entries, one group after the other: odd batch sizes leave partial
// tiles at sizes the proofs do not ask for.
func recordInGroups(t testing.TB, l *Log, n, maxGroup int) {
	t.Helper()
	var wg sync.WaitGroup
	for i := 0; i < n; {
		k := min(1+i%maxGroup, n-i)
		for j := range k {
			wg.Go(func() {
				if _, err := l.Record(context.Background(), entry(i+j)); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		i += k
	}
}

// rootOf recomputes the RFC 6962 root of leaves.
func rootOf(t testing.TB, leaves [][]byte) []byte {
	t.Helper()
	rf := compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	r := rf.NewEmptyRange(0)
	for _, e := range leaves {
		if err := r.Append(rfc6962.DefaultHasher.HashLeaf(e), nil); err != nil {
			t.Fatal(err)
		}
	}
	if len(leaves) == 0 {
		return rfc6962.DefaultHasher.EmptyRoot()
	}
	root, err := r.GetRootHash(nil)
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func TestRecordReadBackAndCheckpoint(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, testConfig(t, dir))
	ctx := context.Background()
	var want [][]byte
	for i := range 300 { // more than one entry bundle
		idx, err := l.Record(ctx, entry(i))
		if err != nil {
			t.Fatal(err)
		}
		if idx != uint64(i) {
			t.Fatalf("Record %d returned index %d", i, idx)
		}
		want = append(want, mustMarshal(t, entry(i)))
	}
	if l.Size() != 300 {
		t.Fatalf("Size = %d, want 300", l.Size())
	}
	cp := waitCheckpoint(t, l, 300)
	got := readAll(t, l, cp.Size)
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("entry %d = %q, want %q", i, got[i], want[i])
		}
		if _, err := custos.ParseAuditEntry(got[i]); err != nil {
			t.Fatalf("entry %d does not parse: %v", i, err)
		}
	}
	if root := rootOf(t, got); !bytes.Equal(root, cp.Hash) {
		t.Fatalf("recomputed root %x, checkpoint says %x", root, cp.Hash)
	}

	// Reopened, the log continues where it stopped.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Record(ctx, entry(0)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Record after Close = %v, want ErrClosed", err)
	}
	l2 := openLog(t, testConfig(t, dir))
	if idx, err := l2.Record(ctx, entry(300)); err != nil || idx != 300 {
		t.Fatalf("Record after reopen = %d, %v; want 300", idx, err)
	}
}

func TestConcurrentRecordsDistinctIndexes(t *testing.T) {
	l := openLog(t, testConfig(t, t.TempDir()))
	const n = 2000
	idx := make([]uint64, n)
	var wg sync.WaitGroup
	for g := range 50 {
		wg.Go(func() {
			for i := g; i < n; i += 50 {
				var err error
				if idx[i], err = l.Record(context.Background(), entry(i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	cp := waitCheckpoint(t, l, n)
	got := readAll(t, l, cp.Size)
	seen := make(map[uint64]bool)
	for i, x := range idx {
		if seen[x] {
			t.Fatalf("index %d given twice", x)
		}
		seen[x] = true
		if !bytes.Equal(got[x], mustMarshal(t, entry(i))) {
			t.Fatalf("entry %d at index %d = %q", i, x, got[x])
		}
	}
}

func TestOpenInUse(t *testing.T) {
	dir := t.TempDir()
	openLog(t, testConfig(t, dir))
	if _, err := Open(context.Background(), testConfig(t, dir)); !errors.Is(err, ErrInUse) {
		t.Fatalf("second Open = %v, want ErrInUse", err)
	}
}

func TestOpenRefusesMismatchedOrigin(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Origin = "another.example/log"
	if _, err := Open(context.Background(), cfg); err == nil {
		t.Fatal("Open accepted an origin that is not the signer's name")
	}
}

func TestRecordRefusesInvalidEntry(t *testing.T) {
	l := openLog(t, testConfig(t, t.TempDir()))
	if _, err := l.Record(context.Background(), custos.AuditEntry{Action: "READ", Decision: "allow"}); err == nil {
		t.Fatal("Record accepted an entry that does not encode")
	}
	if err := l.Err(); err != nil {
		t.Fatalf("an invalid entry made the log unhealthy: %v", err)
	}
}

// TestFailClosed breaks the directory the log writes entry bundles and
// tiles into (a file where a directory must be: permissions would not stop
// root) and checks that Record soon fails, Err reports it, the log refuses
// entries from then on, and every entry it acknowledged before failing is
// integrated once the directory is repaired and the log reopened.
func TestFailClosed(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	l, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := l.Record(ctx, entry(0)); err != nil {
		t.Fatal(err)
	}
	if err := l.waitIntegrated(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := l.Err(); err != nil {
		t.Fatalf("Err on a healthy log = %v", err)
	}
	tile := filepath.Join(dir, "tile")
	if err := os.Rename(tile, tile+".aside"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tile, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The WAL may acknowledge entries until the failure to integrate
	// them is known; those entries are durable and kept.
	acked := map[uint64][]byte{0: mustMarshal(t, entry(0))}
	for i := 1; ; i++ {
		idx, err := l.Record(ctx, entry(i))
		if errors.Is(err, context.DeadlineExceeded) {
			t.Fatal("the log did not fail on a broken directory")
		}
		if err != nil {
			break
		}
		acked[idx] = mustMarshal(t, entry(i))
	}
	if l.Err() == nil {
		t.Fatal("Err = nil after a failed write")
	}
	// Repairing the directory does not heal the log: it was unsound once.
	if err := os.Remove(tile); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tile+".aside", tile); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Record(ctx, entry(-1)); err == nil {
		t.Fatal("Record succeeded after a failure")
	}
	l.Close()

	l = openLog(t, cfg)
	cp := waitCheckpoint(t, l, uint64(len(acked)))
	got := readAll(t, l, cp.Size)
	for i, want := range acked {
		if !bytes.Equal(got[i], want) {
			t.Fatalf("acknowledged entry %d = %q, want %q", i, got[i], want)
		}
	}
}

func TestRecordHonoursContext(t *testing.T) {
	l := openLog(t, testConfig(t, t.TempDir()))
	release := make(chan struct{})
	hold := func() { <-release }
	testHookWrite.Store(&hold)
	defer testHookWrite.Store(nil)
	defer close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := l.Record(ctx, entry(0)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Record = %v, want deadline exceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Record returned after %v", d)
	}
	if err := l.Err(); err != nil {
		t.Fatalf("a caller's deadline made the log unhealthy: %v", err)
	}
}

func TestProve(t *testing.T) {
	l := openLog(t, testConfig(t, t.TempDir()))
	ctx := context.Background()
	const n = 700
	recordInGroups(t, l, n, 37)
	cp := waitCheckpoint(t, l, n)
	leaves := readAll(t, l, cp.Size)
	for _, size := range []uint64{1, 2, 3, 255, 256, 257, 300, 511, 512, 513, 699, cp.Size} {
		root := rootOf(t, leaves[:size])
		for _, idx := range []uint64{0, 1, size / 2, size - 1, 256, 511} {
			if idx >= size {
				continue
			}
			p, err := l.Prove(ctx, idx, size)
			if err != nil {
				t.Fatalf("Prove(%d, %d): %v", idx, size, err)
			}
			if err := proof.VerifyInclusion(rfc6962.DefaultHasher, idx, size, rfc6962.DefaultHasher.HashLeaf(leaves[idx]), p, root); err != nil {
				t.Fatalf("proof of %d in %d does not verify: %v", idx, size, err)
			}
			if idx > 0 {
				if err := proof.VerifyInclusion(rfc6962.DefaultHasher, idx-1, size, rfc6962.DefaultHasher.HashLeaf(leaves[idx]), p, root); err == nil {
					t.Fatalf("proof of %d in %d verifies for index %d", idx, size, idx-1)
				}
			}
		}
	}
	if !bytes.Equal(rootOf(t, leaves), cp.Hash) {
		t.Fatal("root of the entries differs from the checkpoint's")
	}
	for _, c := range []struct{ idx, size uint64 }{{5, 5}, {0, 0}, {0, cp.Size + 1000}} {
		if _, err := l.Prove(ctx, c.idx, c.size); err == nil {
			t.Errorf("Prove(%d, %d) succeeded", c.idx, c.size)
		}
	}
}

func TestEntriesRange(t *testing.T) {
	l := openLog(t, testConfig(t, t.TempDir()))
	ctx := context.Background()
	for i := range 260 {
		if _, err := l.Record(ctx, entry(i)); err != nil {
			t.Fatal(err)
		}
	}
	var got []uint64
	err := l.Entries(ctx, 250, 258, func(i uint64, e []byte) bool {
		if !bytes.Equal(e, mustMarshal(t, entry(int(i)))) {
			t.Fatalf("entry %d = %q", i, e)
		}
		got = append(got, i)
		return i < 255
	})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[250 251 252 253 254 255]" {
		t.Fatalf("yielded %v", got)
	}
	if err := l.Entries(ctx, 0, 261, func(uint64, []byte) bool { return true }); err == nil {
		t.Fatal("Entries beyond the log succeeded")
	}
	if err := l.Entries(ctx, 5, 4, func(uint64, []byte) bool { return true }); err == nil {
		t.Fatal("reversed Entries succeeded")
	}
}

// TestUnwritableStateFailsClosed makes the file that Tessera's POSIX
// driver locks before each batch, and the log probes before each write,
// impossible to open (a directory in its place: even root cannot open that
// for writing). That driver panics there; the log must fail closed
// instead, and the process stay up.
func TestUnwritableStateFailsClosed(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, testConfig(t, dir))
	ctx := context.Background()
	if _, err := l.Record(ctx, entry(0)); err != nil {
		t.Fatal(err)
	}
	lock := filepath.Join(dir, ".state", "treeState.lock")
	if err := os.Remove(lock); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(lock, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Record(ctx, entry(1)); err == nil {
		t.Fatal("Record succeeded with an unusable state lock")
	}
	if l.Err() == nil {
		t.Fatal("Err is nil after the failure")
	}
	l.Close()
	if _, err := Open(ctx, testConfig(t, dir)); err == nil {
		t.Fatal("Open succeeded with an unusable state lock")
	}
}

// TestOpenPosixLog opens a log written by Tessera's POSIX driver, as
// deployments made before package tilestore were, with partial bundles
// and tiles at its edge, and checks that it keeps growing from there.
func TestOpenPosixLog(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	driver, err := posix.New(ctx, posix.Config{Path: dir})
	if err != nil {
		t.Fatal(err)
	}
	s, _ := testKeys(t)
	app, shutdown, _, err := tessera.NewAppender(ctx, driver, tessera.NewAppendOptions().
		WithCheckpointSigner(s).WithBatching(113, 5*time.Millisecond).WithCheckpointInterval(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	var want [][]byte
	var futures []tessera.IndexFuture
	for i := range 700 {
		want = append(want, mustMarshal(t, entry(i)))
		futures = append(futures, app.Add(ctx, tessera.NewEntry(want[i])))
	}
	for i, f := range futures {
		if idx, err := f(); err != nil || idx.Index != uint64(i) {
			t.Fatalf("entry %d added at %v, %v", i, idx, err)
		}
	}
	if err := shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	cancel() // the POSIX driver's background work stops before the log opens
	ctx = context.Background()

	l := openLog(t, testConfig(t, dir))
	if l.Size() != 700 {
		t.Fatalf("Size of the POSIX log = %d, want 700", l.Size())
	}
	for i := range 300 {
		if _, err := l.Record(ctx, entry(i)); err != nil {
			t.Fatal(err)
		}
		want = append(want, mustMarshal(t, entry(i)))
	}
	cp := waitCheckpoint(t, l, 1000)
	got := readAll(t, l, cp.Size)
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("entry %d = %q, want %q", i, got[i], want[i])
		}
	}
	if root := rootOf(t, got); !bytes.Equal(root, cp.Hash) {
		t.Fatalf("entries rebuild root %x, checkpoint says %x", root, cp.Hash)
	}
	for _, idx := range []uint64{0, 699, 700, 999} {
		p, err := l.Prove(ctx, idx, cp.Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, idx, cp.Size, rfc6962.DefaultHasher.HashLeaf(got[idx]), p, cp.Hash); err != nil {
			t.Fatalf("proof of %d: %v", idx, err)
		}
	}
}
