package auditlog

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/custos/custos/internal/auditlog/tilestore"
	"github.com/transparency-dev/tessera/api/layout"
)

// helperDirEnv names the log directory of TestHelperAppender;
// helperCrashEnv, when set, makes it kill itself after that many batches
// are integrated, once the next one's tiles and bundles are durable and
// before its tree state is written.
const (
	helperDirEnv   = "CUSTOS_AUDITLOG_HELPER_DIR"
	helperCrashEnv = "CUSTOS_AUDITLOG_HELPER_CRASH"
)

// TestHelperAppender is not a test: TestSIGKILLDurability runs the test
// binary with it as a child that appends until killed, printing each index
// and entry as soon as Record acknowledged it.
func TestHelperAppender(t *testing.T) {
	dir := os.Getenv(helperDirEnv)
	if dir == "" {
		t.Skip("helper process only")
	}
	if v := os.Getenv(helperCrashEnv); v != "" {
		batches, _ := strconv.Atoi(v)
		tilestore.SetTestHookBeforeTreeState(func() error {
			if batches--; batches < 0 {
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {}
			}
			return nil
		})
	}
	l, err := Open(context.Background(), testConfig(t, dir))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := range 64 {
		wg.Go(func() {
			for n := g; ; n += 64 {
				e := entry(n)
				idx, err := l.Record(context.Background(), e)
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(2)
				}
				line := fmt.Sprintf("ack %d %s\n", idx, base64.StdEncoding.EncodeToString(mustMarshal(t, e)))
				mu.Lock()
				os.Stdout.WriteString(line)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

// TestSIGKILLDurability kills a process appending concurrently and checks
// that every entry it acknowledged is on the reopened log, byte for byte,
// under a checkpoint whose root the entries rebuild.
func TestSIGKILLDurability(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a process")
	}
	dir := t.TempDir()
	acked := runHelper(t, dir, "", func(cmd *exec.Cmd) {
		time.Sleep(time.Second)
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
	})
	checkAcked(t, dir, acked)
}

// TestSIGKILLBeforeTreeState kills a process appending concurrently at the
// worst moment of a batch: its tiles and bundles are written and synced,
// and the tree state that would count them is not. Then, as if the machine
// had lost what was not synced, it empties every tile and bundle beyond
// the tree state. Every acknowledged entry must be on the reopened log.
func TestSIGKILLBeforeTreeState(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a process")
	}
	for _, batches := range []string{"0", "3"} {
		t.Run("after "+batches+" batches", func(t *testing.T) {
			dir := t.TempDir()
			acked := runHelper(t, dir, batches, func(*exec.Cmd) {})
			b, err := os.ReadFile(filepath.Join(dir, ".state", "treeState"))
			if err != nil {
				t.Fatal(err)
			}
			var st struct{ Size uint64 }
			if err := json.Unmarshal(b, &st); err != nil {
				t.Fatal(err)
			}
			torn := tearBeyond(t, dir, st.Size)
			t.Logf("tree state at %d, %d files beyond it emptied", st.Size, torn)
			if torn == 0 {
				t.Fatal("the crash left no file beyond the tree state: it did not hit the batch")
			}
			checkAcked(t, dir, acked)
		})
	}
}

// runHelper runs TestHelperAppender on dir, with crash as helperCrashEnv,
// calls stop, and returns what it acknowledged once it has died.
func runHelper(t *testing.T, dir, crash string, stop func(*exec.Cmd)) map[uint64][]byte {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperAppender$", "-test.v=false")
	cmd.Env = append(os.Environ(), helperDirEnv+"="+dir, helperCrashEnv+"="+crash)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := make(map[uint64][]byte)
	done := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 3 || f[0] != "ack" {
				continue
			}
			idx, err1 := strconv.ParseUint(f[1], 10, 64)
			e, err2 := base64.StdEncoding.DecodeString(f[2])
			if err1 != nil || err2 != nil {
				continue // a line cut by the kill
			}
			acked[idx] = e
		}
		done <- sc.Err()
	}()
	stop(cmd)
	var werr error
	select {
	case werr = <-done:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatal("the child did not die")
	}
	if werr != nil {
		t.Fatal(werr)
	}
	cmd.Wait()
	if len(acked) == 0 {
		t.Fatalf("the child acknowledged nothing; stderr:\n%s", stderr.String())
	}
	return acked
}

// checkAcked reopens the log in dir and checks that every acknowledged
// entry is on it, under a checkpoint whose root the entries rebuild, and
// that it grows on.
func checkAcked(t *testing.T, dir string, acked map[uint64][]byte) {
	t.Helper()
	var maxIdx uint64
	for i := range acked {
		maxIdx = max(maxIdx, i)
	}
	t.Logf("%d entries acknowledged before SIGKILL, highest index %d", len(acked), maxIdx)

	l := openLog(t, testConfig(t, dir))
	cp := waitCheckpoint(t, l, maxIdx+1)
	got := readAll(t, l, cp.Size)
	for i, want := range acked {
		if !bytes.Equal(got[i], want) {
			t.Fatalf("acknowledged entry %d = %q, want %q", i, got[i], want)
		}
	}
	if root := rootOf(t, got); !bytes.Equal(root, cp.Hash) {
		t.Fatalf("entries rebuild root %x, checkpoint says %x", root, cp.Hash)
	}
	// The reopened log goes on from where the child stopped.
	idx, err := l.Record(context.Background(), entry(-1))
	if err != nil || idx < cp.Size {
		t.Fatalf("Record after restart = %d, %v; want at least %d", idx, err, cp.Size)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

// tearBeyond empties every tile and entry bundle in dir that a tree of
// size n does not imply, and returns how many there were.
func tearBeyond(t *testing.T, dir string, n uint64) int {
	t.Helper()
	torn := 0
	err := filepath.WalkDir(filepath.Join(dir, "tile"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		kind, index, _ := strings.Cut(strings.TrimPrefix(filepath.ToSlash(rel), "tile/"), "/")
		i, w, err := layout.ParseTileIndexPartial(index)
		if err != nil {
			return nil // a temporary file
		}
		level := uint64(0)
		if kind != "entries" {
			if level, err = layout.ParseTileLevel(kind); err != nil {
				return err
			}
		}
		width := uint64(w)
		if w == 0 {
			width = layout.TileWidth
		}
		if (i*layout.TileWidth+width)<<(level*layout.TileHeight) > n {
			torn++
			return os.Truncate(p, 0)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return torn
}
