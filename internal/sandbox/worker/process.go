package worker

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/custos/custos/internal/sandbox"
)

// Why a worker process was killed; the first reason sticks.
const (
	killNone    int32 = iota
	killTimeout       // the exchange outlived its time
	killContext       // the caller's context was done
	killClosed        // the Pool closed
	killBroken        // the worker died or broke the protocol
)

// proc is a worker process seen from the parent. One goroutine at a time
// uses it (the pool hands it out); kill may be called from anywhere.
type proc struct {
	cmd    *exec.Cmd
	stdin  *os.File
	stdout *os.File
	r      *bufio.Reader
	stderr *tail
	why    atomic.Int32
	// exited is closed once the process has been reaped; waitErr is set
	// before.
	exited  chan struct{}
	waitErr error
	// loaded is what the worker has compiled, as far as the parent knows.
	loaded map[[32]byte]bool
	// err is why the last exchange failed, for the log.
	err error
}

// startProc starts a worker and greets it.
func startProc(cmd *exec.Cmd, cacheDir string, timeout time.Duration) (*proc, error) {
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, err
	}
	p := &proc{cmd: cmd, stdin: inW, stdout: outR, r: bufio.NewReader(outR),
		stderr: &tail{max: sandbox.StderrBytes}, exited: make(chan struct{}), loaded: map[[32]byte]bool{}}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, p.stderr
	setDeathSignal(cmd)
	err = cmd.Start()
	inR.Close()
	outW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		return nil, err
	}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	if err := p.greet(cacheDir, timeout); err != nil {
		p.discard()
		return nil, err
	}
	return p, nil
}

func (p *proc) greet(cacheDir string, timeout time.Duration) error {
	m, err := p.exchange(context.Background(), timeout, &configMsg{protocolVersion, cacheDir}, 64, 0)
	if err != nil {
		return err
	}
	if h, ok := m.(*helloMsg); !ok || h.version != protocolVersion {
		return fmt.Errorf("%w: no hello of version %d", errProtocol, protocolVersion)
	}
	return nil
}

// exchange sends req and reads the answer, of at most maxAnswer bytes and
// an output of at most outputBytes. It kills the worker if the answer has
// not come within timeout or when ctx is done: the worker runs modules
// without context checks, so killing it is the only way to stop one.
func (p *proc) exchange(ctx context.Context, timeout time.Duration, req message, maxAnswer, outputBytes int) (message, error) {
	timer := time.AfterFunc(timeout, func() { p.kill(killTimeout) })
	defer timer.Stop()
	stop := context.AfterFunc(ctx, func() { p.kill(killContext) })
	defer stop()
	if err := writeFrame(p.stdin, req); err != nil {
		return nil, err
	}
	frame, err := readFrame(p.r, maxAnswer)
	if err != nil {
		return nil, noEOF(err)
	}
	return parseMessage(frame, outputBytes)
}

// kill kills the process, once, for the given reason.
func (p *proc) kill(why int32) {
	p.why.CompareAndSwap(killNone, why)
	p.cmd.Process.Kill()
}

// dead reports whether the process was killed or is to be.
func (p *proc) dead() bool { return p.why.Load() != killNone }

// hasExited reports whether the process has exited and been reaped.
func (p *proc) hasExited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// discard kills the process, reaps it and closes the pipes.
func (p *proc) discard() {
	p.kill(killBroken)
	<-p.exited
	p.stdin.Close()
	p.stdout.Close()
}

// status describes how the process ended, for the log.
func (p *proc) status() string {
	select {
	case <-p.exited:
		if p.waitErr != nil {
			return p.waitErr.Error()
		}
		return "exit status 0"
	case <-time.After(time.Second):
		return "still running"
	}
}

// tail keeps the last max bytes written to it: the end of a crashing
// worker's stderr says why.
type tail struct {
	mu  sync.Mutex
	b   []byte
	max int
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.ToValidUTF8(string(t.b), "")
}

// workerEnviron is the environment of a default worker: the switch that
// makes it one, and the Go runtime's settings; nothing else of the parent's.
func workerEnviron() []string {
	env := []string{workerEnv + "=1"}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "GOMAXPROCS", "GOGC", "GOMEMLIMIT", "GODEBUG", "GOTRACEBACK", "GORACE", "GOCOVERDIR", "TMPDIR":
			env = append(env, kv)
		}
	}
	return env
}
