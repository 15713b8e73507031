package sandbox

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
	"sync"
	"time"
)

// Config configures a Runner.
type Config struct {
	// Command returns a fresh command that starts a worker: a process whose
	// main calls MaybeWorker, with CUSTOS_SANDBOX_WORKER=1 in its
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
	// loadTimeout bounds compiling a module in a worker; a 3.5 MB module
	// takes about a second (BenchmarkLoad).
	loadTimeout = 2 * time.Minute
	// maxVerified caps the verified modules a Runner keeps a copy of.
	maxVerified = 16
)

// Runner runs modules in a pool of worker processes. It is safe for
// concurrent use; calls beyond the pool's size wait for a worker.
type Runner struct {
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
	rejected *Error
}

// New starts a Runner and its first worker, to learn early that workers
// can start.
func New(cfg Config) (*Runner, error) {
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
	r := &Runner{cfg: cfg, log: cfg.Logger, busy: make(chan struct{}, cfg.Workers),
		done: make(chan struct{}), procs: map[*proc]bool{}, verified: map[[32]byte]*verified{}}
	p, err := r.start()
	if err != nil {
		return nil, err
	}
	r.idle = append(r.idle, p)
	return r, nil
}

// Train runs the module's custos_train on input and returns the model.
func (r *Runner) Train(ctx context.Context, m Module, input []byte, seed uint64, lim Limits) ([]byte, error) {
	return r.run(ctx, m, call{entry: entryTrain, input: input, seed: seed}, lim)
}

// Recommend runs the module's custos_recommend on model and input and
// returns its output. The output is not checked against the ABI's encoding.
func (r *Runner) Recommend(ctx context.Context, m Module, model, input []byte, seed uint64, lim Limits) ([]byte, error) {
	return r.run(ctx, m, call{entry: entryRecommend, model: model, input: input, seed: seed}, lim)
}

// Close kills the workers, running or idle, and waits for them to exit.
// Calls in flight fail with CodeUnavailable.
func (r *Runner) Close() error {
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

func (r *Runner) run(ctx context.Context, m Module, c call, lim Limits) ([]byte, error) {
	lim, err := lim.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("invalid sandbox limits: %w", err)
	}
	c.pages, c.outputBytes = lim.pages(), lim.OutputBytes
	v, e := r.verify(m)
	if e != nil {
		return nil, e
	}
	if e := r.rejected(v); e != nil {
		return nil, e
	}
	if n := uint64(len(c.model) + len(c.input)); n > maxInputs || n > lim.MemoryBytes {
		return nil, errorf(CodeMemoryLimit, "the inputs of %d bytes do not fit in the memory limit of %d", n, lim.MemoryBytes)
	}
	p, e := r.acquire(ctx)
	if e != nil {
		return nil, e
	}
	defer r.release(p)
	start := time.Now()
	out, e := r.runOn(ctx, p, m.Digest, v, c, lim)
	r.logRun(m.Digest, c, out, e, time.Since(start))
	if e != nil {
		return nil, e
	}
	return out.output, nil
}

// verify returns what is known of m once its bytes are known to hash to
// m.Digest. Comparing with a copy verified before is cheaper than hashing.
func (r *Runner) verify(m Module) (*verified, *Error) {
	r.mu.Lock()
	v := r.verified[m.Digest]
	r.mu.Unlock()
	if v != nil && bytes.Equal(v.wasm, m.Wasm) {
		return v, nil
	}
	if len(m.Wasm) > MaxModuleBytes {
		return nil, errorf(CodeInvalidModule, "the module is over %d bytes", MaxModuleBytes)
	}
	if sha256.Sum256(m.Wasm) != m.Digest {
		return nil, errorf(CodeInvalidModule, "the module's bytes do not match its digest %x", m.Digest[:8])
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
func (r *Runner) acquire(ctx context.Context) (*proc, *Error) {
	select {
	case <-r.done:
		return nil, errClosed()
	default:
	}
	select {
	case r.busy <- struct{}{}:
	case <-ctx.Done():
		e := errorf(CodeTimeout, "the caller gave up waiting for a worker: %v", ctx.Err())
		e.cause = ctx.Err()
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
func (r *Runner) popIdle() *proc {
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
func (r *Runner) release(p *proc) {
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

// park makes p an idle worker, or discards it if the Runner is closed.
func (r *Runner) park(p *proc) {
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
func (r *Runner) replace() {
	defer r.starting.Done()
	defer func() { <-r.busy }()
	p, e := r.start()
	if e != nil {
		r.log.Warn("couldn't replace a sandbox worker", "err", e)
		return
	}
	r.park(p)
}

// start starts a worker, unless the Runner is closed.
func (r *Runner) start() (*proc, *Error) {
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
		return nil, errorf(CodeUnavailable, "couldn't start a sandbox worker")
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
func (r *Runner) forget(p *proc) {
	p.discard()
	r.mu.Lock()
	delete(r.procs, p)
	r.mu.Unlock()
	if p.why.Load() == killBroken {
		r.log.Warn("sandbox worker failed", "pid", p.cmd.Process.Pid, "err", p.err,
			"status", p.status(), "stderr", p.stderr.String())
	}
}

func errClosed() *Error { return errorf(CodeUnavailable, "the sandbox is closed") }

// runOn runs c on worker p, loading the module first if p lacks it.
func (r *Runner) runOn(ctx context.Context, p *proc, digest [32]byte, v *verified, c call, lim Limits) (*resultMsg, *Error) {
	req := &runMsg{digest: digest, call: c}
	answer := lim.OutputBytes + 2*captureBytes + maxText + 64
	for retried := false; ; retried = true {
		if !p.loaded[digest] {
			if e := r.load(ctx, p, digest, v); e != nil {
				return nil, e
			}
		}
		m, err := p.exchange(ctx, lim.Timeout, req, answer, lim.OutputBytes)
		if err != nil {
			return nil, r.failure(ctx, p, err, fmt.Sprintf("the module ran longer than %v", lim.Timeout))
		}
		switch m := m.(type) {
		case *resultMsg:
			if m.err != nil {
				m.err.Message = printable(m.err.Message, maxText)
				m.err.Stderr = truncate(m.stderr, stderrBytes)
			}
			return m, m.err
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
func (r *Runner) load(ctx context.Context, p *proc, digest [32]byte, v *verified) *Error {
	m, err := p.exchange(ctx, loadTimeout, &loadMsg{digest, v.wasm}, 2*captureBytes+maxText+64, 0)
	if err != nil {
		return r.failure(ctx, p, err, fmt.Sprintf("compiling the module took longer than %v", loadTimeout))
	}
	res, ok := m.(*resultMsg)
	if !ok {
		return r.failure(ctx, p, errProtocol, "")
	}
	if e := res.err; e != nil {
		e.Message = printable(e.Message, maxText)
		if e.Code == CodeInvalidModule || e.Code == CodeForbiddenImport {
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
func (r *Runner) rejected(v *verified) *Error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if v.rejected == nil {
		return nil
	}
	e := *v.rejected
	return &e
}

// failure turns a failed exchange with p into an *Error, killing p.
func (r *Runner) failure(ctx context.Context, p *proc, err error, timeout string) *Error {
	p.kill(killBroken)
	switch p.why.Load() {
	case killTimeout:
		return errorf(CodeTimeout, "%s", timeout)
	case killContext:
		e := errorf(CodeTimeout, "the caller gave up: %v", ctx.Err())
		e.cause = ctx.Err()
		return e
	case killClosed:
		return errClosed()
	}
	p.err = err // logged when p is discarded
	return errorf(CodeUnavailable, "the sandbox worker failed")
}

// logRun logs what the module wrote and how the run ended. The inputs and
// the output are never logged.
func (r *Runner) logRun(digest [32]byte, c call, res *resultMsg, e *Error, took time.Duration) {
	attrs := []any{"module", hex.EncodeToString(digest[:8]), "entry", entryName(c.entry),
		"seed", c.seed, "took", took}
	if res != nil && len(res.stdout) > 0 {
		attrs = append(attrs, "stdout", truncate(res.stdout, captureBytes))
	}
	if res != nil && len(res.stderr) > 0 {
		attrs = append(attrs, "stderr", truncate(res.stderr, captureBytes))
	}
	if e != nil {
		r.log.Warn("sandbox run failed", append(attrs, "code", e.Code, "err", e.Message)...)
		return
	}
	r.log.Debug("sandbox run", attrs...)
}

func entryName(e entry) string {
	if e == entryRecommend {
		return exportRecommend
	}
	return exportTrain
}
