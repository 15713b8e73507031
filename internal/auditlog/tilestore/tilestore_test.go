package tilestore

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/api/layout"
	"github.com/transparency-dev/tessera/storage/posix"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

const (
	testOrigin = "custos.test/tiles"
	testSKey   = "PRIVATE+KEY+custos.test/audit+501aced1+AVcf7L/aaQLcOs9Uxpt8RaFG9rcLWnEIGGKNuUNSuWHA"
	testVKey   = "custos.test/audit+501aced1+ASVhDUeuC2uAOw5Y+L/GNO/2HZ6hi6vv4HpbZIwTVtwp"
)

func testOptions(t testing.TB) *tessera.AppendOptions {
	t.Helper()
	s, err := note.NewSigner(testSKey)
	if err != nil {
		t.Fatal(err)
	}
	return tessera.NewAppendOptions().WithCheckpointSigner(s).
		WithCheckpointInterval(100*time.Millisecond).WithBatching(1024, 10*time.Millisecond)
}

// openStore opens the log in dir with a new Storage, stopped at cleanup.
func openStore(t testing.TB, dir string) (*Storage, *tessera.Appender) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return openStoreCtx(t, ctx, dir)
}

// openStoreCtx opens the log in dir with a new Storage, stopped with ctx.
func openStoreCtx(t testing.TB, ctx context.Context, dir string) (*Storage, *tessera.Appender) {
	t.Helper()
	s := New(Config{Path: dir})
	app, _, _, err := tessera.NewAppender(ctx, s, testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	return s, app
}

func leaf(i int) []byte {
	return fmt.Appendf(nil, "entry %d %s", i, strings.Repeat("x", i%97))
}

// memHashes is tlog's independent record of a tree: every stored hash.
type memHashes []tlog.Hash

func (m memHashes) ReadHashes(ix []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(ix))
	for i, x := range ix {
		if x >= int64(len(m)) {
			return nil, fmt.Errorf("hash %d not stored", x)
		}
		out[i] = m[x]
	}
	return out, nil
}

// tree is the expected state of a log: its leaves, and tlog's hashes.
type tree struct {
	leaves [][]byte
	hashes memHashes
}

func (tr *tree) add(t testing.TB, leaves ...[]byte) {
	t.Helper()
	for _, l := range leaves {
		hs, err := tlog.StoredHashes(int64(len(tr.leaves)), l, tr.hashes)
		if err != nil {
			t.Fatal(err)
		}
		tr.hashes = append(tr.hashes, hs...)
		tr.leaves = append(tr.leaves, l)
	}
}

func (tr *tree) root(t testing.TB, n int) []byte {
	t.Helper()
	h, err := tlog.TreeHash(int64(n), tr.hashes)
	if err != nil {
		t.Fatal(err)
	}
	return h[:]
}

// checkFiles checks every tile and entry bundle in dir against what tlog
// computes from the leaves: no file is torn, stale or beyond the tree of
// size n, and every one that size implies exists.
func (tr *tree) checkFiles(t testing.TB, dir string, n int) {
	t.Helper()
	seen := map[string]bool{}
	err := filepath.WalkDir(filepath.Join(dir, "tile"), func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // a partial one collected since it was listed
		}
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		got, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		seen[rel] = true
		want, err := tr.expect(rel, n)
		if err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		if !bytes.Equal(got, want) {
			return fmt.Errorf("%s holds %d bytes that differ from the expected %d", rel, len(got), len(want))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for level := uint64(0); uint64(n)>>(8*level) > 0; level++ {
		s := uint64(n) >> (8 * level)
		for i := uint64(0); i <= s/256; i++ {
			p := layout.PartialTileSize(level, i, uint64(n))
			if i == s/256 && p == 0 {
				break
			}
			if want := layout.TilePath(level, i, p); !seen[want] && !(p != 0 && seen[layout.TilePath(level, i, 0)]) {
				t.Fatalf("tile %s missing for tree size %d", want, n)
			}
			if level == 0 {
				if want := layout.EntriesPath(i, p); !seen[want] {
					t.Fatalf("bundle %s missing for tree size %d", want, n)
				}
			}
		}
	}
}

// expect returns what the tile or bundle at path p must hold, from the
// first n leaves.
func (tr *tree) expect(p string, n int) ([]byte, error) {
	rest, ok := strings.CutPrefix(p, "tile/")
	if !ok {
		return nil, errors.New("not a tile path")
	}
	kind, index, _ := strings.Cut(rest, "/")
	i, w, err := layout.ParseTileIndexPartial(index)
	if err != nil {
		return nil, err
	}
	width := int64(w)
	if width == 0 {
		width = 256
	}
	if layout.EntriesPath(i, w) != p && kind == "entries" {
		return nil, errors.New("not canonical")
	}
	if kind == "entries" {
		if int(i)*256+int(width) > n {
			return nil, fmt.Errorf("bundle beyond the tree of %d", n)
		}
		var b []byte
		for _, l := range tr.leaves[int(i)*256 : int(i)*256+int(width)] {
			b = append(b, tessera.NewEntry(l).MarshalBundleData(0)...)
		}
		return b, nil
	}
	level, err := layout.ParseTileLevel(kind)
	if err != nil || layout.TilePath(level, i, w) != p {
		return nil, errors.New("not canonical")
	}
	if (uint64(i)*256+uint64(width))<<(8*level) > uint64(n) {
		return nil, fmt.Errorf("tile beyond the tree of %d", n)
	}
	return tlog.ReadTileData(tlog.Tile{H: 8, L: int(level), N: int64(i), W: int(width)}, tr.hashes)
}

func integrate(t testing.TB, s *Storage, tr *tree, leaves [][]byte) {
	t.Helper()
	first := uint64(len(tr.leaves))
	size, err := s.Integrate(context.Background(), first, leaves)
	if err != nil {
		t.Fatal(err)
	}
	tr.add(t, leaves...)
	if size != uint64(len(tr.leaves)) || s.Size() != size {
		t.Fatalf("Integrate = %d, Size = %d; want %d", size, s.Size(), len(tr.leaves))
	}
	if root := s.state.Load().Root; !bytes.Equal(root, tr.root(t, len(tr.leaves))) {
		t.Fatalf("root at size %d = %x, tlog says %x", size, root, tr.root(t, len(tr.leaves)))
	}
}

func leaves(from, n int) [][]byte {
	var out [][]byte
	for i := from; i < from+n; i++ {
		out = append(out, leaf(i))
	}
	return out
}

// TestRFC6962Vectors integrates the RFC 6962 test leaves one at a time and
// checks each root against the published vectors.
func TestRFC6962Vectors(t *testing.T) {
	vectorLeaves := []string{"", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"}
	vectorRoots := []string{
		"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
		"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
		"aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
		"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
		"4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
		"76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
		"ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
		"5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
	}
	s, _ := openStore(t, t.TempDir())
	if got := hex.EncodeToString(s.state.Load().Root); got != "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Fatalf("empty root = %s", got)
	}
	for i, l := range vectorLeaves {
		b, _ := hex.DecodeString(l)
		if _, err := s.Integrate(context.Background(), uint64(i), [][]byte{b}); err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(s.state.Load().Root); got != vectorRoots[i] {
			t.Fatalf("root of %d leaves = %s, want %s", i+1, got, vectorRoots[i])
		}
	}
}

// TestIntegrateMatchesTlog integrates batches of many sizes, reopening the
// store now and then, and checks every root and every file against
// golang.org/x/mod/sumdb/tlog.
func TestIntegrateMatchesTlog(t *testing.T) {
	total := 70_000 // past 65536: three levels of tiles
	if testing.Short() {
		total = 3000
	}
	dir := t.TempDir()
	s, _ := openStore(t, dir)
	var tr tree
	sizes := []int{1, 2, 253, 256, 1, 255, 300, 511, 4096, 7, 16384, 1000}
	for k := 0; len(tr.leaves) < total; k++ {
		n := min(sizes[k%len(sizes)], total-len(tr.leaves))
		integrate(t, s, &tr, leaves(len(tr.leaves), n))
		if k%5 == 4 {
			s, _ = openStore(t, dir)
		}
	}
	tr.checkFiles(t, dir, len(tr.leaves))
}

// TestCrashBeforeTreeState stops batches after their files are synced and
// before the tree state is written, as a crash would; tears (empties) the
// files they wrote, as losing unsynced data would; and checks that
// integrating the same entries again, in other batches, leaves every file
// as tlog computes it and no partial one for a size that was never
// integrated.
func TestCrashBeforeTreeState(t *testing.T) {
	for _, tc := range []struct{ base, crashed int }{{0, 5}, {300, 1000}, {256, 512}, {65530, 300}, {1000, 20000}} {
		t.Run(fmt.Sprintf("%d+%d", tc.base, tc.crashed), func(t *testing.T) {
			if testing.Short() && tc.base+tc.crashed > 5000 {
				t.Skip("large")
			}
			dir := t.TempDir()
			s, _ := openStore(t, dir)
			var tr tree
			integrate(t, s, &tr, leaves(0, tc.base))
			before := listFiles(t, dir)
			errCrash := errors.New("crash")
			SetTestHookBeforeTreeState(func() error { return errCrash })
			_, err := s.Integrate(context.Background(), uint64(tc.base), leaves(tc.base, tc.crashed))
			SetTestHookBeforeTreeState(nil)
			if !errors.Is(err, errCrash) {
				t.Fatalf("Integrate = %v, want the crash", err)
			}
			if _, err := s.Integrate(context.Background(), uint64(tc.base), leaves(tc.base, 1)); err == nil {
				t.Fatal("a failed storage integrated more")
			}
			for p := range listFiles(t, dir) {
				if !before[p] && strings.HasPrefix(p, "tile/") {
					if err := os.Truncate(filepath.Join(dir, p), 0); err != nil {
						t.Fatal(err)
					}
				}
			}
			s, _ = openStore(t, dir)
			if s.Size() != uint64(tc.base) {
				t.Fatalf("size after the crash = %d, want %d", s.Size(), tc.base)
			}
			tr.checkFiles(t, dir, tc.base)
			// The entries again, in two batches that end elsewhere.
			half := tc.crashed/2 + 1
			integrate(t, s, &tr, leaves(tc.base, half))
			integrate(t, s, &tr, leaves(tc.base+half, tc.crashed-half+3))
			tr.checkFiles(t, dir, len(tr.leaves))
		})
	}
}

func listFiles(t testing.TB, dir string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out[filepath.ToSlash(rel)] = true
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestPosixInterop moves one log between Tessera's POSIX driver and this
// one, both ways, each continuing where the other stopped.
func TestPosixInterop(t *testing.T) {
	dir := t.TempDir()
	var tr tree
	posixAdd(t, dir, &tr, leaves(0, 700))
	ctx, stop := context.WithCancel(context.Background())
	s, _ := openStoreCtx(t, ctx, dir)
	if s.Size() != 700 {
		t.Fatalf("size = %d, want 700", s.Size())
	}
	integrate(t, s, &tr, leaves(700, 333))
	tr.checkFiles(t, dir, len(tr.leaves))
	// Let the checkpoint catch up before the other driver takes over.
	if err := s.Publish(context.Background()); err != nil {
		t.Fatal(err)
	}
	stop()
	posixAdd(t, dir, &tr, leaves(1033, 500))
	s, _ = openStore(t, dir)
	integrate(t, s, &tr, leaves(1533, 20))
	tr.checkFiles(t, dir, len(tr.leaves))
}

// posixAdd appends leaves to the log in dir with Tessera's POSIX driver.
func posixAdd(t testing.TB, dir string, tr *tree, leaves [][]byte) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d, err := posix.New(ctx, posix.Config{Path: dir})
	if err != nil {
		t.Fatal(err)
	}
	app, shutdown, r, err := tessera.NewAppender(ctx, d, testOptions(t).WithBatching(97, 5*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	var fs []tessera.IndexFuture
	for _, l := range leaves {
		fs = append(fs, app.Add(ctx, tessera.NewEntry(l)))
	}
	for i, f := range fs {
		idx, err := f()
		if err != nil || idx.Index != uint64(len(tr.leaves)+i) {
			t.Fatalf("posix Add = %v, %v; want %d", idx, err, len(tr.leaves)+i)
		}
	}
	if err := shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	tr.add(t, leaves...)
	if n, _ := r.IntegratedSize(ctx); n != uint64(len(tr.leaves)) {
		t.Fatalf("posix size = %d, want %d", n, len(tr.leaves))
	}
}

// TestAppenderAdd adds entries through Tessera's appender and checks the
// futures, the checkpoint and the reader.
func TestAppenderAdd(t *testing.T) {
	dir := t.TempDir()
	s, app := openStore(t, dir)
	var tr tree
	tr.add(t, leaves(0, 600)...)
	var fs []tessera.IndexFuture
	for _, l := range tr.leaves {
		fs = append(fs, app.Add(context.Background(), tessera.NewEntry(l)))
	}
	for i, f := range fs {
		if idx, err := f(); err != nil || idx.Index != uint64(i) {
			t.Fatalf("future %d = %v, %v", i, idx, err)
		}
	}
	if err := s.Publish(context.Background()); err != nil {
		t.Fatal(err)
	}
	raw, err := s.ReadCheckpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	v, _ := note.NewVerifier(testVKey)
	cp, _, _, err := log.ParseCheckpoint(raw, v.Name(), v)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size != 600 || !bytes.Equal(cp.Hash, tr.root(t, 600)) {
		t.Fatalf("checkpoint %d %x, want 600 %x", cp.Size, cp.Hash, tr.root(t, 600))
	}
	b, err := s.ReadEntryBundle(context.Background(), 2, 600%256)
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := tr.expect(layout.EntriesPath(2, 600%256), 600); !bytes.Equal(b, want) {
		t.Fatal("ReadEntryBundle differs")
	}
	tr.checkFiles(t, dir, 600)
}

// TestOpenRefusesMismatchedTiles checks that a tree state whose root the
// tiles do not rebuild is refused.
func TestOpenRefusesMismatchedTiles(t *testing.T) {
	dir := t.TempDir()
	s, _ := openStore(t, dir)
	var tr tree
	integrate(t, s, &tr, leaves(0, 300))
	p := filepath.Join(dir, layout.TilePath(0, 1, 300-256))
	b, _ := os.ReadFile(p)
	b[3] ^= 1
	os.WriteFile(p, b, 0o644)
	_, _, _, err := tessera.NewAppender(context.Background(), New(Config{Path: dir}), testOptions(t))
	if err == nil || !strings.Contains(err.Error(), "rebuild root") {
		t.Fatalf("open = %v, want a root mismatch", err)
	}
}

func FuzzParseTreeState(f *testing.F) {
	f.Add(marshalTreeState(0, make([]byte, 32)))
	f.Add(marshalTreeState(1<<40, bytes.Repeat([]byte{7}, 32)))
	f.Add([]byte(`{"size":3,"root":"AAAA"}`))
	f.Add([]byte(`{"size":-1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		size, root, err := parseTreeState(b)
		if err != nil {
			return
		}
		if len(root) != 32 {
			t.Fatalf("root of %d bytes accepted", len(root))
		}
		size2, root2, err := parseTreeState(marshalTreeState(size, root))
		if err != nil || size2 != size || !bytes.Equal(root2, root) {
			t.Fatalf("round trip of %d %x = %d %x, %v", size, root, size2, root2, err)
		}
	})
}

// BenchmarkIntegrate measures the storage alone: one caller integrating
// batches of batch entries of about 200 bytes, each durable before the
// next.
//
//	go test ./internal/auditlog/tilestore/ -run '^$' -bench Integrate -benchtime 1000000x
func BenchmarkIntegrate(b *testing.B) {
	for _, batch := range []int{256, 4096, 16384} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			s, _ := openStore(b, b.TempDir())
			data := make([][]byte, batch)
			for i := range data {
				data[i] = bytes.Repeat([]byte{'a' + byte(i%26)}, 200)
			}
			b.ResetTimer()
			start := time.Now()
			n := 0
			for ; n < b.N; n += batch {
				if _, err := s.Integrate(context.Background(), uint64(n), data); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)/time.Since(start).Seconds(), "entries/s")
		})
	}
}

// TestHashes checks the allocation-free hashes against the merkle module's
// RFC 6962 hasher.
func TestHashes(t *testing.T) {
	var buf []byte
	right := bytes.Repeat([]byte{3}, 32)
	for _, d := range [][]byte{nil, {0}, []byte("custos"), bytes.Repeat([]byte{9}, 1000)} {
		var h []byte
		h, buf = hashLeaf(buf, d)
		if want := rfc6962.DefaultHasher.HashLeaf(d); !bytes.Equal(h, want) {
			t.Fatalf("hashLeaf(%x) = %x, want %x", d, h, want)
		}
		if want := rfc6962.DefaultHasher.HashChildren(h, right); !bytes.Equal(hashChildren(h, right), want) {
			t.Fatalf("hashChildren differs")
		}
	}
}

func FuzzParseGCState(f *testing.F) {
	f.Add([]byte(`{"fromSize":65536}`))
	f.Add([]byte(`{"fromSize":-1}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := parseGCState(b)
		if err != nil {
			return
		}
		again, _ := json.Marshal(gcState{FromSize: n})
		if m, err := parseGCState(again); err != nil || m != n {
			t.Fatalf("round trip of %d = %d, %v", n, m, err)
		}
	})
}
