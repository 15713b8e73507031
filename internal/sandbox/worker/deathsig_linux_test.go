package worker

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/custos/custos/internal/sandbox"
)

const parentEnv = "SANDBOX_TEST_PARENT"

// TestWorkerDiesWithServer kills a server whose worker is busy in a module
// that never returns, and expects the worker to go too.
func TestWorkerDiesWithServer(t *testing.T) {
	if os.Getenv(parentEnv) == "1" {
		serveForever(t)
		return
	}
	guest(t, "loop") // built here, where failures show
	cmd := exec.Command(os.Args[0], "-test.run=^TestWorkerDiesWithServer$")
	cmd.Env = append(os.Environ(), parentEnv+"=1")
	// The server lives until its stdin closes: a test that dies takes it along.
	if _, err := cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	pids := make(chan int, 1)
	go func() {
		pid := 0
		for sc := bufio.NewScanner(out); pid == 0 && sc.Scan(); {
			fmt.Sscanf(sc.Text(), "busy worker %d", &pid)
		}
		pids <- pid
	}()
	var pid int
	select {
	case pid = <-pids:
	case <-time.After(time.Minute):
	}
	if pid == 0 {
		t.Fatal("the server never reported a busy worker")
	}
	cmd.Process.Kill()
	waitFor(t, func() bool { return gone(pid) })
}

// serveForever is the server of TestWorkerDiesWithServer: it runs a module
// that never returns until its stdin closes.
func serveForever(t *testing.T) {
	r, err := New(Config{Workers: 1, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, loop := context.Background(), guest(t, "loop")
	// Compile first, so that the worker is in the module's loop when killed.
	v, e := r.verify(loop)
	if e != nil {
		t.Fatal(e)
	}
	p, e := r.acquire(ctx)
	if e == nil {
		e = r.load(ctx, p, loop.Digest, v)
	}
	if e != nil {
		t.Fatal(e)
	}
	r.release(p)
	go r.Train(ctx, loop, nil, 1, sandbox.Limits{Timeout: time.Hour})
	waitFor(t, func() bool { return idleCount(r) == 0 })
	time.Sleep(100 * time.Millisecond)
	fmt.Printf("busy worker %d\n", pids(r)[0])
	io.Copy(io.Discard, os.Stdin)
	r.Close()
}

// gone reports whether a process has ended, reaped or not.
func gone(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return syscall.Kill(pid, 0) == syscall.ESRCH
	}
	// The state follows the command name in parentheses.
	_, after, _ := strings.Cut(string(stat), ") ")
	return strings.HasPrefix(after, "Z") || strings.HasPrefix(after, "X")
}
