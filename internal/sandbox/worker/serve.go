package worker

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/custos/custos/internal/sandbox"
	"github.com/tetratelabs/wazero"
)

// workerEnv, set to 1, makes MaybeRun run the worker loop.
const workerEnv = "CUSTOS_SANDBOX_WORKER"

// MaybeRun turns the process into a sandbox worker if the environment says
// it was started as one (CUSTOS_SANDBOX_WORKER=1): it serves requests on
// stdin and stdout and exits. Otherwise it returns at once. A program that
// uses a Pool with the default Config.Command calls it first thing in main,
// and its tests call it first thing in TestMain.
func MaybeRun() {
	if os.Getenv(workerEnv) != "1" {
		return
	}
	in, out := os.Stdin, os.Stdout
	// stdout carries frames: anything else printed goes to stderr instead.
	os.Stdout = os.Stderr
	if err := serveWorker(context.Background(), in, out); err != nil {
		fmt.Fprintf(os.Stderr, "sandbox worker: %v\n", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// maxPrograms caps the compiled modules a worker keeps: the code compiled
// from a Go module takes tens of megabytes.
const maxPrograms = 8

// worker is the state of a worker process: a runtime without context
// checks, and the modules it compiled, most recently used last.
type worker struct {
	h        *sandbox.Host
	cache    wazero.CompilationCache
	programs []*loaded
}

type loaded struct {
	digest [32]byte
	p      *sandbox.Program
}

// serveWorker answers requests read from in on out until in ends.
func serveWorker(ctx context.Context, in io.Reader, out io.Writer) error {
	r, w := bufio.NewReader(in), bufio.NewWriter(out)
	wk, err := startWorker(ctx, r, w)
	if err != nil {
		return err
	}
	defer wk.close(ctx)
	for {
		frame, err := readFrame(r, maxRequest)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		m, err := parseMessage(frame, 0)
		if err != nil {
			return err
		}
		if err := writeFrame(w, wk.handle(ctx, m)); err != nil {
			return err
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}
}

// startWorker reads the config, starts the runtime and answers hello.
func startWorker(ctx context.Context, r io.Reader, w *bufio.Writer) (*worker, error) {
	frame, err := readFrame(r, maxRequest)
	if err != nil {
		return nil, fmt.Errorf("couldn't read config: %w", noEOF(err))
	}
	m, err := parseMessage(frame, 0)
	if err != nil {
		return nil, err
	}
	c, ok := m.(*configMsg)
	if !ok || c.version != protocolVersion {
		return nil, fmt.Errorf("%w: expected config of version %d", errProtocol, protocolVersion)
	}
	wk := &worker{cache: wazero.NewCompilationCache()}
	if c.cacheDir != "" {
		if wk.cache, err = wazero.NewCompilationCacheWithDir(c.cacheDir); err != nil {
			return nil, fmt.Errorf("couldn't open compilation cache: %w", err)
		}
	}
	if wk.h, err = sandbox.NewHost(ctx, sandbox.HostConfig{Cache: wk.cache}); err != nil {
		return nil, fmt.Errorf("couldn't start wazero: %w", err)
	}
	if err := writeFrame(w, &helloMsg{version: protocolVersion}); err != nil {
		return nil, err
	}
	return wk, w.Flush()
}

func (wk *worker) handle(ctx context.Context, m message) message {
	switch m := m.(type) {
	case *loadMsg:
		return &resultMsg{Err: wk.load(ctx, m)}
	case *runMsg:
		p := wk.program(m.digest)
		if p == nil {
			return &missingMsg{}
		}
		r := resultMsg(p.Run(ctx, m.call))
		return &r
	}
	return &resultMsg{Err: errorf(sandbox.CodeUnavailable, "unexpected request")}
}

// load compiles and keeps a module, once its bytes are checked against the
// digest: the worker runs only what the parent verified.
func (wk *worker) load(ctx context.Context, m *loadMsg) *sandbox.Error {
	if wk.program(m.digest) != nil {
		return nil
	}
	if sha256.Sum256(m.wasm) != m.digest {
		return errorf(sandbox.CodeInvalidModule, "the module's bytes do not match its digest")
	}
	p, err := wk.h.Compile(ctx, m.wasm)
	if e := (*sandbox.Error)(nil); errors.As(err, &e) {
		return e
	} else if err != nil {
		return errorf(sandbox.CodeUnavailable, "couldn't compile the module: %v", err)
	}
	wk.programs = append(wk.programs, &loaded{m.digest, p})
	if len(wk.programs) > maxPrograms {
		wk.programs[0].p.Close(ctx)
		wk.programs = slices.Delete(wk.programs, 0, 1)
	}
	return nil
}

// program returns the loaded program of a digest, marking it recently used.
func (wk *worker) program(digest [32]byte) *sandbox.Program {
	i := slices.IndexFunc(wk.programs, func(l *loaded) bool { return l.digest == digest })
	if i < 0 {
		return nil
	}
	l := wk.programs[i]
	wk.programs = append(slices.Delete(wk.programs, i, i+1), l)
	return l.p
}

func (wk *worker) close(ctx context.Context) {
	wk.h.Close(ctx)
	wk.cache.Close(ctx)
}
