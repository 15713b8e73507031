package auditlog

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// helperDirEnv names the log directory of TestHelperAppender.
const helperDirEnv = "CUSTOS_AUDITLOG_HELPER_DIR"

// TestHelperAppender is not a test: TestSIGKILLDurability runs the test
// binary with it as a child that appends until killed, printing each index
// and entry as soon as Record acknowledged it.
func TestHelperAppender(t *testing.T) {
	dir := os.Getenv(helperDirEnv)
	if dir == "" {
		t.Skip("helper process only")
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
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperAppender$", "-test.v=false")
	cmd.Env = append(os.Environ(), helperDirEnv+"="+dir)
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
	time.Sleep(time.Second)
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if len(acked) == 0 {
		t.Fatalf("the child acknowledged nothing; stderr:\n%s", stderr.String())
	}
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
}
