package sandbox

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"
)

// The engine: compiling, validating and running a module with wazero, in
// whatever process calls it. Workers run it without context checks; Check
// and the benchmarks run it in-process too.

// captureBytes caps what is kept of a module's stdout and of its stderr.
const captureBytes = 64 << 10

// hostConfig configures a host.
type hostConfig struct {
	// checked compiles with wazero's context checks (WithCloseOnContextDone),
	// so that a done context stops the module. Runtimes that differ in it
	// must not share a compilation cache: wazero's cache key ignores it.
	checked bool
	cache   wazero.CompilationCache // nil for none
}

// host is a wazero runtime with WASI.
type host struct {
	rt   wazero.Runtime
	wasi map[string]api.FunctionDefinition
}

func newHost(ctx context.Context, c hostConfig) (*host, error) {
	// The memory limit is not the runtime's (WithMemoryLimitPages): a grow
	// wazero refuses leaves no trace the host could see, so a module that
	// then fails could not be told from one that trapped. Each instance's
	// memory is a memoryLimiter instead, which refuses and remembers; the
	// runtime keeps wasm's own cap of 4 GiB.
	cfg := wazero.NewRuntimeConfig().
		WithCoreFeatures(api.CoreFeaturesV2).
		WithMemoryLimitPages(maxPages).
		WithCloseOnContextDone(c.checked).
		WithDebugInfoEnabled(false)
	if c.cache != nil {
		cfg = cfg.WithCompilationCache(c.cache)
	}
	rt := wazero.NewRuntimeWithConfig(ctx, cfg)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		rt.Close(ctx)
		return nil, err
	}
	wasi := rt.Module(wasiModule).ExportedFunctionDefinitions()
	return &host{rt: rt, wasi: wasi}, nil
}

func (h *host) close(ctx context.Context) { h.rt.Close(ctx) }

// program is a module compiled and validated by a host.
type program struct {
	h      *host
	cm     wazero.CompiledModule
	memMin uint32 // pages the module's memory starts with
}

// compile validates wasm as far as it can without running it and compiles it.
func (h *host) compile(ctx context.Context, wasm []byte) (*program, *Error) {
	if len(wasm) > MaxModuleBytes {
		return nil, errorf(CodeInvalidModule, "the module is over %d bytes", MaxModuleBytes)
	}
	layout, err := scanModule(wasm)
	if err != nil {
		return nil, errorf(CodeInvalidModule, "the module does not decode: %s", firstLine(err))
	}
	if e := checkImports(layout.imports); e != nil {
		return nil, e
	}
	cm, err := h.rt.CompileModule(ctx, wasm)
	if err != nil {
		return nil, errorf(CodeInvalidModule, "the module does not compile: %s", firstLine(err))
	}
	if e := checkSignatures(cm, h.wasi); e != nil {
		cm.Close(ctx)
		return nil, e
	}
	return &program{h: h, cm: cm, memMin: layout.memMin}, nil
}

func (p *program) close(ctx context.Context) { p.cm.Close(ctx) }

type entry byte

const (
	entryTrain     entry = 1
	entryRecommend entry = 2
)

// call is one entry call.
type call struct {
	entry        entry
	model, input []byte // model only for recommend
	seed         uint64
	pages        uint32 // memory limit
	outputBytes  int
}

// outcome is what a run produced. stdout and stderr are kept when it failed.
type outcome struct {
	output         []byte
	stdout, stderr []byte
	err            *Error
}

// run makes the call in a fresh instance of p, per the ABI's calling sequence.
func (p *program) run(ctx context.Context, c call) outcome {
	in, e := p.start(ctx, c.seed, c.pages)
	defer in.close(ctx)
	var out []byte
	if e == nil {
		out, e = in.call(ctx, c)
	}
	return outcome{output: out, stdout: in.stdout.b, stderr: in.stderr.b, err: e}
}

// checkVersion starts an instance of p to learn its ABI version.
func (p *program) checkVersion(ctx context.Context, pages uint32) *Error {
	in, e := p.start(ctx, 0, pages)
	in.close(ctx)
	if e != nil {
		e.Stderr = truncate(in.stderr.b, stderrBytes)
	}
	return e
}

// instance is one instantiation of a program, and what it wrote.
type instance struct {
	mod            api.Module
	mem            *memoryLimiter
	stdout, stderr capped
}

// start instantiates p with a memory limit of pages, initializes the
// instance and checks its ABI version. The instance is returned even on
// error, for its stderr.
func (p *program) start(ctx context.Context, seed uint64, pages uint32) (*instance, *Error) {
	in := &instance{
		mem:    &memoryLimiter{limit: uint64(pages) * pageSize},
		stdout: capped{max: captureBytes},
		stderr: capped{max: captureBytes},
	}
	if p.memMin > pages {
		return in, errorf(CodeMemoryLimit, "the module's initial memory of %d bytes is over the limit of %d",
			uint64(p.memMin)*pageSize, in.mem.limit)
	}
	cfg := wazero.NewModuleConfig().
		WithName("").
		WithStartFunctions(). // _initialize is called below, so its failure is classified like any other
		WithStdout(&in.stdout).
		WithStderr(&in.stderr).
		WithRandSource(seededRandom(seed)).
		WithNanosleep(func(int64) {})
	mod, err := p.h.rt.InstantiateModule(experimental.WithMemoryAllocator(ctx, in.mem), p.cm, cfg)
	if err != nil {
		return in, in.fail(err)
	}
	in.mod = mod
	if init := mod.ExportedFunction(exportInitialize); init != nil {
		if _, err := init.Call(ctx); err != nil {
			return in, in.fail(err)
		}
	}
	res, err := mod.ExportedFunction(exportVersion).Call(ctx)
	if err != nil {
		return in, in.fail(err)
	}
	if v := uint32(res[0]); v != abiVersion {
		return in, errorf(CodeInvalidModule, "the module speaks ABI version %d, not %d", v, abiVersion)
	}
	return in, nil
}

func (in *instance) close(ctx context.Context) {
	if in.mod != nil {
		in.mod.Close(ctx)
	}
}

// call passes the inputs and makes the entry call.
func (in *instance) call(ctx context.Context, c call) ([]byte, *Error) {
	name, args := exportTrain, []uint64(nil)
	if c.entry == entryRecommend {
		name = exportRecommend
		ptr, e := in.pass(ctx, c.model)
		if e != nil {
			return nil, e
		}
		args = append(args, ptr, uint64(len(c.model)))
	}
	ptr, e := in.pass(ctx, c.input)
	if e != nil {
		return nil, e
	}
	args = append(args, ptr, uint64(len(c.input)))
	res, err := in.mod.ExportedFunction(name).Call(ctx, args...)
	if err != nil {
		return nil, in.fail(err)
	}
	return in.result(res[0], c.outputBytes)
}

// pass copies b into a buffer the module allocates and returns its address.
func (in *instance) pass(ctx context.Context, b []byte) (uint64, *Error) {
	res, err := in.mod.ExportedFunction(exportAlloc).Call(ctx, uint64(len(b)))
	if err != nil {
		return 0, in.fail(err)
	}
	ptr := uint32(res[0])
	switch {
	case ptr == 0 && len(b) > 0 && in.mem.refused:
		return 0, in.memoryError()
	case ptr == 0 && len(b) > 0:
		return 0, errorf(CodeTrap, "%s could not allocate %d bytes", exportAlloc, len(b))
	case !in.mod.Memory().Write(ptr, b):
		return 0, errorf(CodeTrap, "%s returned a buffer outside the module's memory", exportAlloc)
	}
	return uint64(ptr), nil
}

// result copies out the output an entry call returned as (ptr << 32) | len.
func (in *instance) result(r uint64, limit int) ([]byte, *Error) {
	ptr, n := uint32(r>>32), uint32(r)
	if uint64(n) > uint64(limit) {
		return nil, errorf(CodeOutputTooLarge, "the module's output of %d bytes is over the limit of %d", n, limit)
	}
	out, ok := in.mod.Memory().Read(ptr, n)
	if !ok {
		return nil, errorf(CodeTrap, "the module's output (%d bytes at offset %d) lies outside its memory of %d bytes",
			n, ptr, in.mod.Memory().Size())
	}
	return bytes.Clone(out), nil
}

// fail classifies an error from instantiating or calling the module.
func (in *instance) fail(err error) *Error {
	var exit *sys.ExitError
	isExit := errors.As(err, &exit)
	switch {
	case isExit && (exit.ExitCode() == sys.ExitCodeDeadlineExceeded || exit.ExitCode() == sys.ExitCodeContextCanceled):
		return errorf(CodeTimeout, "the module ran past its deadline")
	case in.mem.refused:
		return in.memoryError()
	case isExit:
		return errorf(CodeTrap, "the module exited with code %d", exit.ExitCode())
	}
	return errorf(CodeTrap, "the module trapped: %s", strings.TrimPrefix(firstLine(err), "wasm error: "))
}

func (in *instance) memoryError() *Error {
	return errorf(CodeMemoryLimit, "the module tried to grow its memory past the limit of %d bytes", in.mem.limit)
}

// memoryLimiter backs a module's linear memory and refuses to grow it past
// limit, remembering that it did.
type memoryLimiter struct {
	limit   uint64
	refused bool
	buf     []byte
	mapped  bool // buf is a reservation from reserve, not on the Go heap
}

var _ experimental.MemoryAllocator = (*memoryLimiter)(nil)
var _ experimental.LinearMemory = (*memoryLimiter)(nil)

func (m *memoryLimiter) Allocate(cap, _ uint64) experimental.LinearMemory {
	// Reserving the whole limit up front means growing never copies and
	// freeing gives the pages back at once; a module touches only what it
	// uses. Where that is not possible, the memory is on the Go heap.
	if b, ok := reserve(m.limit); ok {
		m.buf, m.mapped = b[:0], true
		return m
	}
	m.buf = make([]byte, 0, min(cap, m.limit))
	return m
}

func (m *memoryLimiter) Reallocate(size uint64) []byte {
	if size > m.limit {
		m.refused = true
		return nil
	}
	if size > uint64(cap(m.buf)) {
		// Double, as append would, but never past the limit.
		buf := make([]byte, size, max(size, min(2*uint64(cap(m.buf)), m.limit)))
		copy(buf, m.buf)
		m.buf = buf
	}
	m.buf = m.buf[:size]
	return m.buf
}

func (m *memoryLimiter) Free() {
	if m.mapped {
		release(m.buf[:cap(m.buf)])
	}
	m.buf = nil
}

// capped keeps the first max bytes written to it and drops the rest.
type capped struct {
	b   []byte
	max int
}

func (c *capped) Write(p []byte) (int, error) {
	if room := c.max - len(c.b); room > 0 {
		c.b = append(c.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// seededRandom is the stream random_get reads: ChaCha8 keyed by a hash of
// the seed, so that a run is a function of its seed.
func seededRandom(seed uint64) io.Reader {
	key := sha256.Sum256(binary.BigEndian.AppendUint64([]byte("custos sandbox random_get\x00"), seed))
	return rand.NewChaCha8(key)
}

// firstLine is the first line of err, bounded: wazero's errors go on with a
// stack trace.
func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return printable(s, 200)
}

// stderrBytes caps Error.Stderr.
const stderrBytes = 4 << 10

func truncate(b []byte, n int) string {
	return strings.ToValidUTF8(string(b[:min(len(b), n)]), "")
}
