//go:build unix

package worker

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/custos/custos/internal/sandbox"
)

// pids returns the process ids of r's live workers.
func pids(r *Pool) []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []int
	for p := range r.procs {
		out = append(out, p.cmd.Process.Pid)
	}
	return out
}

func TestCloseStopsWorkers(t *testing.T) {
	echo, loop := guest(t, "echo"), guest(t, "loop")
	r, err := New(Config{Workers: 2, CacheDir: scratchDir(t) + "/cache", Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// One worker busy in a module that never returns when Close comes, the
	// other idle.
	busy := make(chan error, 1)
	go func() {
		_, err := r.Train(ctx, loop, []byte("x"), 1, sandbox.Limits{Timeout: time.Minute})
		busy <- err
	}()
	waitFor(t, func() bool { return idleCount(r) == 0 })
	if _, err := r.Train(ctx, echo, []byte("x"), 1, sandbox.Limits{}); err != nil {
		t.Fatal(err)
	}
	ps := pids(r)
	if len(ps) != 2 {
		t.Fatalf("%d workers, want 2", len(ps))
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	for _, pid := range ps {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("worker %d still exists after Close (kill 0: %v)", pid, err)
		}
	}
	wantCode(t, <-busy, sandbox.CodeUnavailable)
	_, err = r.Train(ctx, echo, []byte("x"), 1, sandbox.Limits{})
	wantCode(t, err, sandbox.CodeUnavailable)
}

// TestWorkerDeath kills workers behind the Pool's back: an idle one is
// replaced unnoticed, a busy one fails its run with sandbox_unavailable, and
// the Pool keeps serving.
func TestWorkerDeath(t *testing.T) {
	echo, loop := guest(t, "echo"), guest(t, "loop")
	r, err := New(Config{Workers: 1, CacheDir: scratchDir(t) + "/cache", Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx := context.Background()
	syscall.Kill(pids(r)[0], syscall.SIGKILL)
	waitFor(t, func() bool { return idleExited(r) })
	if _, err := r.Train(ctx, echo, []byte("x"), 1, sandbox.Limits{}); err != nil {
		t.Fatalf("after an idle worker died: %v", err)
	}
	busy := make(chan error, 1)
	go func() {
		_, err := r.Train(ctx, loop, []byte("x"), 1, sandbox.Limits{Timeout: time.Minute})
		busy <- err
	}()
	time.Sleep(500 * time.Millisecond) // into the loop, or loading it
	syscall.Kill(pids(r)[0], syscall.SIGKILL)
	wantCode(t, <-busy, sandbox.CodeUnavailable)
	if _, err := r.Train(ctx, echo, []byte("x"), 1, sandbox.Limits{}); err != nil {
		t.Fatalf("after a busy worker died: %v", err)
	}
}

func idleCount(r *Pool) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.idle)
}

// idleExited reports whether r's idle worker has exited.
func idleExited(r *Pool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.idle) == 1 && r.idle[0].hasExited()
}
