// Package worker runs sandboxed algorithm modules in worker processes, so
// that a module can be stopped at its deadline without wazero's context
// checks, which make loop-heavy code about fourteen times slower.
//
// A Pool hands each call to a worker: a process of the same binary (see
// MaybeRun) running an unchecked sandbox.Host. When a call outlives its
// deadline, or its caller gives up, the Pool kills the worker and starts
// another. A module that spins therefore never holds a thread of the
// serving process, where Go could not preempt it. On Linux a worker dies
// with the process that started it.
//
// What the package guarantees, on top of what package sandbox does: a
// module runs only if its bytes hash to the digest the caller approved, in
// the worker as in the parent; a call fails with sandbox.CodeTimeout at
// Limits.Timeout at the latest, plus the time to kill a process; every
// failure is a *sandbox.Error, and what crosses the pipe from a worker is
// bounded and parsed before it is believed.
//
// What it trusts: the worker binary, the compilation cache directory and
// the pipes to the workers, which belong to the custodian.
package worker

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/custos/custos/internal/sandbox"
)

// Config configures a Pool.
type Config struct {
	// Command returns a fresh command that starts a worker: a process whose
	// main calls MaybeRun, with CUSTOS_SANDBOX_WORKER=1 in its
	// environment. Default: this executable, with that variable and the Go
	// runtime's settings as its whole environment.
	Command func() *exec.Cmd
	// Workers is how many modules may run at once, each in a process of its
	// own; default runtime.NumCPU().
	Workers int
	// CacheDir keeps wazero's compiled code for workers to come, so that a
	// fresh worker does not compile a module from scratch. Its contents run
	// as machine code: only the custodian may write there, and nothing but
	// workers may use it. Default: none.
	CacheDir string
	// Logger gets worker failures and what modules write to stdout and
	// stderr. Default: slog.Default().
	Logger *slog.Logger
}

const (
	// startTimeout bounds a worker's start, until it answers hello.
	startTimeout = 30 * time.Second
	// loadTimeout bounds loading a module in a worker: compiling it,
	// running its _initialize and compiling it pre-initialized. A 3.5 MB
	// module takes about two seconds, 0.1 s from the cache directory
	// (BenchmarkLoad in internal/sandbox). A module whose _initialize never
	// returns is stopped here; Check refuses such a module at admission.
	loadTimeout = 2 * time.Minute
	// maxVerified caps the verified modules a Pool keeps a copy of.
	maxVerified = 16
)

// Pool runs modules in worker processes. It is safe for concurrent use;
// calls beyond Config.Workers wait for a worker.
type Pool struct {
	cfg  Config
	log  *slog.Logger
	busy chan struct{} // a token per worker in use, or being started
	done chan struct{} // closed by Close

	mu     sync.Mutex
	closed bool
	// idle are workers waiting for a call, the most recently used last: it
	// goes first, with its caches warm, and the others can stay asleep.
	idle     []*proc
	procs    map[*proc]bool // started and not yet discarded
	starting sync.WaitGroup
	verified map[[32]byte]*verified
	order    [][32]byte // verified, oldest first
}

// verified is a copy of a module known to match its digest and, once a
// worker refused to load it, why: the same bytes are refused again at once.
type verified struct {
	wasm     []byte
	rejected *sandbox.Error
}

// New starts a Pool and its first worker, to learn early that workers can
// start.
func New(cfg Config) (*Pool, error) {
	if cfg.Command == nil {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("couldn't find the worker executable: %w", err)
		}
		cfg.Command = func() *exec.Cmd {
			cmd := exec.Command(exe)
			cmd.Env = workerEnviron()
			return cmd
		}
	}
	if cfg.Workers <= 0 {
		cfg.Workers = max(runtime.NumCPU(), 1)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	r := &Pool{cfg: cfg, log: cfg.Logger, busy: make(chan struct{}, cfg.Workers),
		done: make(chan struct{}), procs: map[*proc]bool{}, verified: map[[32]byte]*verified{}}
	p, err := r.start()
	if err != nil {
		return nil, err
	}
	r.idle = append(r.idle, p)
	return r, nil
}

// Train runs the module's custos_train on input and returns the model.
// Its errors are *sandbox.Error, but for invalid limits.
func (r *Pool) Train(ctx context.Context, m sandbox.Module, input []byte, seed uint64, lim sandbox.Limits) ([]byte, error) {
	return r.run(ctx, m, sandbox.Call{Entry: sandbox.Train, Input: input, Seed: seed, Limits: lim})
}

// Recommend runs the module's custos_recommend on model and input and
// returns its output. The output is not checked against the ABI's encoding.
// Its errors are *sandbox.Error, but for invalid limits.
func (r *Pool) Recommend(ctx context.Context, m sandbox.Module, model, input []byte, seed uint64, lim sandbox.Limits) ([]byte, error) {
	return r.run(ctx, m, sandbox.Call{Entry: sandbox.Recommend, Model: model, Input: input, Seed: seed, Limits: lim})
}

// Close kills the workers, running or idle, and waits for them to exit.
// Calls in flight fail with sandbox.CodeUnavailable.
func (r *Pool) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	close(r.done)
	procs := make([]*proc, 0, len(r.procs))
	for p := range r.procs {
		procs = append(procs, p)
	}
	r.mu.Unlock()
	for _, p := range procs {
		p.kill(killClosed)
	}
	r.starting.Wait()
	for _, p := range procs {
		<-p.exited
	}
	r.mu.Lock()
	idle := r.idle
	r.idle = nil
	r.mu.Unlock()
	for _, p := range idle {
		p.discard()
	}
	return nil
}

func (r *Pool) run(ctx context.Context, m sandbox.Module, c sandbox.Call) ([]byte, error) {
	lim, err := c.Limits.WithDefaults()
	if err != nil {
		return nil, fmt.Errorf("invalid sandbox limits: %w", err)
	}
	c.Limits = lim
	v, e := r.verify(m)
	if e != nil {
		return nil, e
	}
	if e := r.rejected(v); e != nil {
		return nil, e
	}
	if n := uint64(len(c.Model) + len(c.Input)); n > maxInputs || n > lim.MemoryBytes {
		return nil, errorf(sandbox.CodeMemoryLimit, "the inputs of %d bytes do not fit in the memory limit of %d", n, lim.MemoryBytes)
	}
	p, e := r.acquire(ctx)
	if e != nil {
		return nil, e
	}
	defer r.release(p)
	start := time.Now()
	out, e := r.runOn(ctx, p, m.Digest, v, c)
	r.logRun(m.Digest, c, out, e, time.Since(start))
	if e != nil {
		return nil, e
	}
	return out.Output, nil
}

// verify returns what is known of m once its bytes are known to hash to
// m.Digest. Comparing with a copy verified before is cheaper than hashing.
func (r *Pool) verify(m sandbox.Module) (*verified, *sandbox.Error) {
	r.mu.Lock()
	v := r.verified[m.Digest]
	r.mu.Unlock()
	if v != nil && bytes.Equal(v.wasm, m.Wasm) {
		return v, nil
	}
	if len(m.Wasm) > sandbox.MaxModuleBytes {
		return nil, errorf(sandbox.CodeInvalidModule, "the module is over %d bytes", sandbox.MaxModuleBytes)
	}
	if sha256.Sum256(m.Wasm) != m.Digest {
		return nil, errorf(sandbox.CodeInvalidModule, "the module's bytes do not match its digest %x", m.Digest[:8])
	}
	v = &verified{wasm: bytes.Clone(m.Wasm)}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.verified[m.Digest]; !ok {
		r.order = append(r.order, m.Digest)
	}
	r.verified[m.Digest] = v
	if len(r.order) > maxVerified {
		delete(r.verified, r.order[0])
		r.order = r.order[1:]
	}
	return v, nil
}

// acquire takes a worker from the pool, starting one if none is idle.
func (r *Pool) acquire(ctx context.Context) (*proc, *sandbox.Error) {
	select {
	case <-r.done:
		return nil, errClosed()
	default:
	}
	select {
	case r.busy <- struct{}{}:
	case <-ctx.Done():
		e := errorf(sandbox.CodeTimeout, "the caller gave up waiting for a worker: %v", ctx.Err())
		e.Cause = ctx.Err()
		return nil, e
	case <-r.done:
		return nil, errClosed()
	}
	for p := r.popIdle(); p != nil; p = r.popIdle() {
		if !p.hasExited() {
			return p, nil
		}
		r.forget(p) // it died while idle
	}
	p, e := r.start()
	if e != nil {
		<-r.busy
	}
	return p, e
}

// popIdle takes the most recently used idle worker, if any.
func (r *Pool) popIdle() *proc {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.idle) == 0 {
		return nil
	}
	p := r.idle[len(r.idle)-1]
	r.idle = r.idle[:len(r.idle)-1]
	return p
}

// release returns a worker to the pool. One that died is replaced in the
// background, so the next call finds a worker ready.
func (r *Pool) release(p *proc) {
	if p.dead() {
		r.forget(p)
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.closed {
			<-r.busy
			return
		}
		r.starting.Add(1)
		go r.replace()
		return
	}
	r.park(p)
	<-r.busy
}

// park makes p an idle worker, or discards it if the Pool is closed.
func (r *Pool) park(p *proc) {
	r.mu.Lock()
	closed := r.closed
	if !closed {
		r.idle = append(r.idle, p)
	}
	r.mu.Unlock()
	if closed {
		p.discard()
	}
}

// replace starts a worker for one that died, holding its token meanwhile.
func (r *Pool) replace() {
	defer r.starting.Done()
	defer func() { <-r.busy }()
	p, e := r.start()
	if e != nil {
		r.log.Warn("couldn't replace a sandbox worker", "err", e)
		return
	}
	r.park(p)
}

// start starts a worker, unless the Pool is closed.
func (r *Pool) start() (*proc, *sandbox.Error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, errClosed()
	}
	r.starting.Add(1)
	r.mu.Unlock()
	defer r.starting.Done()
	p, err := startProc(r.cfg.Command(), r.cfg.CacheDir, startTimeout)
	if err != nil {
		r.log.Error("couldn't start a sandbox worker", "err", err)
		return nil, errorf(sandbox.CodeUnavailable, "couldn't start a sandbox worker")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		p.discard()
		return nil, errClosed()
	}
	r.procs[p] = true
	return p, nil
}

// forget discards a dead worker, logging why it died.
func (r *Pool) forget(p *proc) {
	p.discard()
	r.mu.Lock()
	delete(r.procs, p)
	r.mu.Unlock()
	if p.why.Load() == killBroken {
		r.log.Warn("sandbox worker failed", "pid", p.cmd.Process.Pid, "err", p.err,
			"status", p.status(), "stderr", p.stderr.String())
	}
}

func errClosed() *sandbox.Error { return errorf(sandbox.CodeUnavailable, "the sandbox is closed") }

func errorf(code sandbox.Code, format string, args ...any) *sandbox.Error {
	return sandbox.NewError(code, fmt.Sprintf(format, args...), nil)
}

// runOn runs c on worker p, loading the module first if p lacks it.
func (r *Pool) runOn(ctx context.Context, p *proc, digest [32]byte, v *verified, c sandbox.Call) (*resultMsg, *sandbox.Error) {
	req := &runMsg{digest: digest, call: c}
	answer := c.Limits.OutputBytes + 2*sandbox.CaptureBytes + maxText + 64
	for retried := false; ; retried = true {
		if !p.loaded[digest] {
			if e := r.load(ctx, p, digest, v); e != nil {
				return nil, e
			}
		}
		m, err := p.exchange(ctx, c.Limits.Timeout, req, answer, c.Limits.OutputBytes)
		if err != nil {
			return nil, r.failure(ctx, p, err, fmt.Sprintf("the module ran longer than %v", c.Limits.Timeout))
		}
		switch m := m.(type) {
		case *resultMsg:
			if m.Err != nil {
				m.Err = sandbox.NewError(m.Err.Code, m.Err.Message, m.Stderr)
			}
			return m, m.Err
		case *missingMsg:
			if !retried {
				delete(p.loaded, digest) // the worker evicted it
				continue
			}
		}
		return nil, r.failure(ctx, p, errProtocol, "")
	}
}

// load has worker p compile the module.
func (r *Pool) load(ctx context.Context, p *proc, digest [32]byte, v *verified) *sandbox.Error {
	m, err := p.exchange(ctx, loadTimeout, &loadMsg{digest, v.wasm}, 2*sandbox.CaptureBytes+maxText+64, 0)
	if err != nil {
		return r.failure(ctx, p, err, fmt.Sprintf("loading the module took longer than %v", loadTimeout))
	}
	res, ok := m.(*resultMsg)
	if !ok {
		return r.failure(ctx, p, errProtocol, "")
	}
	if e := res.Err; e != nil {
		e = sandbox.NewError(e.Code, e.Message, res.Stderr)
		if e.Code == sandbox.CodeInvalidModule || e.Code == sandbox.CodeForbiddenImport {
			r.mu.Lock()
			v.rejected = e
			r.mu.Unlock()
		}
		return e
	}
	p.loaded[digest] = true
	return nil
}

// rejected returns why a worker refused the module, if one did.
func (r *Pool) rejected(v *verified) *sandbox.Error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if v.rejected == nil {
		return nil
	}
	e := *v.rejected
	return &e
}

// failure turns a failed exchange with p into a *sandbox.Error, killing p.
func (r *Pool) failure(ctx context.Context, p *proc, err error, timeout string) *sandbox.Error {
	p.kill(killBroken)
	switch p.why.Load() {
	case killTimeout:
		return errorf(sandbox.CodeTimeout, "%s", timeout)
	case killContext:
		e := errorf(sandbox.CodeTimeout, "the caller gave up: %v", ctx.Err())
		e.Cause = ctx.Err()
		return e
	case killClosed:
		return errClosed()
	}
	p.err = err // logged when p is discarded
	return errorf(sandbox.CodeUnavailable, "the sandbox worker failed")
}

// logRun logs what the module wrote and how the run ended. The inputs and
// the output are never logged.
func (r *Pool) logRun(digest [32]byte, c sandbox.Call, res *resultMsg, e *sandbox.Error, took time.Duration) {
	attrs := []any{"module", hex.EncodeToString(digest[:8]), "entry", c.Entry.String(),
		"seed", c.Seed, "took", took}
	if res != nil && len(res.Stdout) > 0 {
		attrs = append(attrs, "stdout", strings.ToValidUTF8(string(res.Stdout), ""))
	}
	if res != nil && len(res.Stderr) > 0 {
		attrs = append(attrs, "stderr", strings.ToValidUTF8(string(res.Stderr), ""))
	}
	if e != nil {
		r.log.Warn("sandbox run failed", append(attrs, "code", e.Code, "err", e.Message)...)
		return
	}
	r.log.Debug("sandbox run", attrs...)
}
