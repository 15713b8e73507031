package sandbox

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"
)

// The engine: compiling, validating and running a module with wazero, in
// whatever process calls it.

// CaptureBytes caps what is kept of a module's stdout and of its stderr.
const CaptureBytes = 64 << 10

// HostConfig configures a Host.
type HostConfig struct {
	// Checked compiles with wazero's context checks (WithCloseOnContextDone),
	// so that a done context stops the module. Hosts that differ in it must
	// not share a compilation cache: wazero's cache key ignores it.
	Checked bool
	// Cache keeps compiled code, nil for none. Its contents run as machine
	// code: only the custodian may write where it keeps them.
	Cache wazero.CompilationCache
}

// Host is a wazero runtime with the WASI functions a module may import. It
// is safe for concurrent use.
type Host struct {
	rt       wazero.Runtime
	wasi     map[string]api.FunctionDefinition
	memories memoryPool
}

// NewHost starts a Host.
func NewHost(ctx context.Context, c HostConfig) (*Host, error) {
	// The memory limit is not the runtime's (WithMemoryLimitPages): a grow
	// wazero refuses leaves no trace the host could see, so a module that
	// then fails could not be told from one that trapped. Each instance's
	// memory is a memoryLimiter instead, which refuses and remembers; the
	// runtime keeps wasm's own cap of 4 GiB.
	cfg := wazero.NewRuntimeConfig().
		WithCoreFeatures(api.CoreFeaturesV2).
		WithMemoryLimitPages(maxPages).
		WithCloseOnContextDone(c.Checked).
		WithDebugInfoEnabled(false)
	if c.Cache != nil {
		cfg = cfg.WithCompilationCache(c.Cache)
	}
	rt := wazero.NewRuntimeWithConfig(ctx, cfg)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		rt.Close(ctx)
		return nil, err
	}
	wasi := rt.Module(wasiModule).ExportedFunctionDefinitions()
	return &Host{rt: rt, wasi: wasi}, nil
}

// Close releases the runtime and every Program compiled by it.
func (h *Host) Close(ctx context.Context) {
	h.rt.Close(ctx)
	h.memories.close()
}

// Program is a module compiled and validated by a Host. It is safe for
// concurrent use.
type Program struct {
	h      *Host
	cm     wazero.CompiledModule
	memMin uint32 // pages the module's memory starts with
	// initialized is set when cm is the module pre-initialized (see
	// preinit.go): its instances start where _initialize stopped, with the
	// clocks at clocks.
	initialized bool
	clocks      clocks
}

// Compile validates wasm as an algorithm module, as far as it can without
// running it, and compiles it. It returns nil or an *Error. It does not
// check wasm against a digest: that is the caller's to do.
//
// If the module exports _initialize, Compile also pre-initializes it: it
// runs _initialize once, with seed 0, and compiles a second module that
// starts in the state _initialize left, so that entry calls skip it (see
// preinit.go). What _initialize writes to stdout and stderr then goes
// nowhere. On a Host without context checks an _initialize that never
// returns holds Compile until the process is killed; Check refuses such a
// module, since it runs _initialize under a timeout.
func (h *Host) Compile(ctx context.Context, wasm []byte) (*Program, error) {
	p, e := h.compile(ctx, wasm, true)
	if e != nil {
		return nil, e
	}
	return p, nil
}

// compile validates and compiles wasm, and pre-initializes it if asked to
// and possible.
func (h *Host) compile(ctx context.Context, wasm []byte, preinit bool) (*Program, *Error) {
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
	// A module that can be pre-initialized is compiled as its probe, which
	// differs from it only in exporting its globals.
	src, pl := wasm, (*preinitLayout)(nil)
	if preinit {
		if l, err := scanPreinit(wasm); err == nil {
			if probe, err := l.probe(); err == nil {
				src, pl = probe, l
			}
		}
	}
	cm, err := h.rt.CompileModule(ctx, src)
	if err != nil {
		return nil, errorf(CodeInvalidModule, "the module does not compile: %s", firstLine(err))
	}
	if e := checkSignatures(cm, h.wasi); e != nil {
		cm.Close(ctx)
		return nil, e
	}
	p := &Program{h: h, cm: cm, memMin: layout.memMin}
	if _, ok := cm.ExportedFunctions()[exportInitialize]; ok && pl != nil {
		p.preinitialize(ctx, pl)
	}
	return p, nil
}

// preinitialize runs _initialize in an instance of p, compiled from the
// probe of l, and makes p's module the one that starts where it stopped.
// If _initialize fails, p stays as it is: each run fails the same way in
// its own instance, and reports it.
func (p *Program) preinitialize(ctx context.Context, l *preinitLayout) {
	in, e := p.start(ctx, 0, defaultMemory/pageSize)
	defer in.close(ctx)
	if e != nil {
		return
	}
	s := snapshot{globals: map[int]uint64{}}
	for i, g := range l.globals {
		if !g.mutable {
			continue
		}
		exported := in.mod.ExportedGlobal(globalPrefix + strconv.Itoa(i))
		if exported == nil {
			return
		}
		s.globals[i] = exported.Get()
	}
	mem := in.mod.Memory()
	s.memory, _ = mem.Read(0, mem.Size())
	pages := mem.Size() / pageSize
	wasm, err := l.rewrite(s, pages)
	if err != nil {
		return
	}
	cm, err := p.h.rt.CompileModule(ctx, wasm)
	if err != nil {
		return
	}
	p.cm.Close(ctx)
	p.cm, p.memMin, p.initialized, p.clocks = cm, pages, true, *in.clocks
}

// Close releases the compiled code.
func (p *Program) Close(ctx context.Context) { p.cm.Close(ctx) }

// Entry is an entry call of the ABI.
type Entry byte

// The entry calls.
const (
	Train     Entry = 1 // custos_train
	Recommend Entry = 2 // custos_recommend
)

// String returns the name of the entry's export.
func (e Entry) String() string {
	switch e {
	case Train:
		return exportTrain
	case Recommend:
		return exportRecommend
	}
	return "unknown entry"
}

// Call is one entry call.
type Call struct {
	Entry Entry
	Model []byte // for Recommend only
	Input []byte
	Seed  uint64
	// Limits bound the call's memory and output. Their Timeout is not
	// enforced by Run: that is the context's, on a checked Host, or the
	// caller's.
	Limits Limits
}

// Outcome is what a run produced. Stdout and Stderr are what the module
// wrote, at most CaptureBytes of each; Err is nil or why the run failed,
// with Err.Stderr set.
type Outcome struct {
	Output         []byte
	Stdout, Stderr []byte
	Err            *Error
}

// Run makes the call in a fresh instance of p, per the ABI's calling
// sequence. On a checked Host a done ctx stops the module; on an unchecked
// one nothing does.
func (p *Program) Run(ctx context.Context, c Call) Outcome {
	lim, err := c.Limits.WithDefaults()
	if err != nil {
		return Outcome{Err: errorf(CodeUnavailable, "the sandbox was given invalid limits: %v", err)}
	}
	in, e := p.start(ctx, c.Seed, lim.pages())
	defer in.close(ctx)
	var out []byte
	if e == nil {
		out, e = in.call(ctx, c, lim.OutputBytes)
	}
	if e != nil {
		e.Stderr = truncate(in.stderr.b, StderrBytes)
	}
	return Outcome{Output: out, Stdout: in.stdout.b, Stderr: in.stderr.b, Err: e}
}

// checkVersion starts an instance of p to learn its ABI version.
func (p *Program) checkVersion(ctx context.Context, pages uint32) *Error {
	in, e := p.start(ctx, 0, pages)
	in.close(ctx)
	if e != nil {
		e.Stderr = truncate(in.stderr.b, StderrBytes)
	}
	return e
}

// instance is one instantiation of a program, and what it wrote.
type instance struct {
	mod            api.Module
	mem            *memoryLimiter
	clocks         *clocks
	stdout, stderr capped
}

// start instantiates p with a memory limit of pages, initializes the
// instance and checks its ABI version. The instance is returned even on
// error, for its stderr.
func (p *Program) start(ctx context.Context, seed uint64, pages uint32) (*instance, *Error) {
	clocks := p.clocks
	in := &instance{
		mem:    &memoryLimiter{limit: uint64(pages) * pageSize, pool: &p.h.memories},
		clocks: &clocks,
		stdout: capped{max: CaptureBytes},
		stderr: capped{max: CaptureBytes},
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
		WithNanotime(in.clocks.nanotime, 1).
		WithWalltime(in.clocks.walltime, sys.ClockResolution(time.Microsecond)).
		WithNanosleep(func(int64) {})
	mod, err := p.h.rt.InstantiateModule(experimental.WithMemoryAllocator(ctx, in.mem), p.cm, cfg)
	if err != nil {
		return in, in.fail(err)
	}
	in.mod = mod
	if init := mod.ExportedFunction(exportInitialize); init != nil && !p.initialized {
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
func (in *instance) call(ctx context.Context, c Call, outputBytes int) ([]byte, *Error) {
	var args []uint64
	switch c.Entry {
	case Train:
		if len(c.Model) > 0 {
			return nil, errorf(CodeUnavailable, "the sandbox was given a model to train")
		}
	case Recommend:
		ptr, e := in.pass(ctx, c.Model)
		if e != nil {
			return nil, e
		}
		args = append(args, ptr, uint64(len(c.Model)))
	default:
		return nil, errorf(CodeUnavailable, "the sandbox was given entry %d", c.Entry)
	}
	ptr, e := in.pass(ctx, c.Input)
	if e != nil {
		return nil, e
	}
	args = append(args, ptr, uint64(len(c.Input)))
	res, err := in.mod.ExportedFunction(c.Entry.String()).Call(ctx, args...)
	if err != nil {
		return nil, in.fail(err)
	}
	return in.result(res[0], outputBytes)
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
	mapped  bool        // buf is a reservation from reserve, not on the Go heap
	pool    *memoryPool // where reservations come from and go back to; nil for none
}

var _ experimental.MemoryAllocator = (*memoryLimiter)(nil)
var _ experimental.LinearMemory = (*memoryLimiter)(nil)

func (m *memoryLimiter) Allocate(cap, _ uint64) experimental.LinearMemory {
	// Reserving the whole limit up front means growing never copies; a
	// module touches only what it uses. Where that is not possible, the
	// memory is on the Go heap.
	if b := m.pool.get(m.limit); b != nil {
		m.buf, m.mapped = b[:0], true
		return m
	}
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
	if m.mapped && !m.pool.put(m.buf) {
		release(m.buf[:cap(m.buf)])
	}
	m.buf = nil
}

// A memoryPool keeps the reservations of closed instances for the next
// instances with the same limit, zeroed: a fresh reservation costs a page
// fault for every page an instance touches, zeroing one a pass over the
// memory the last instance had. Nothing of an instance outlives it: a
// reservation goes back only once every byte its instance could reach is
// zero.
type memoryPool struct {
	mu   sync.Mutex
	free map[uint64][][]byte // by limit; len 0, cap the limit
}

const (
	// maxPooled caps the reservations kept per limit: a worker runs one
	// instance at a time.
	maxPooled = 2
	// maxPooledUsed is the largest memory whose reservation is zeroed and
	// kept; a larger one goes back to the system, which is cheaper, and
	// does not stay resident while the Host waits.
	maxPooledUsed = 16 << 20
)

// get returns a kept reservation of limit bytes, or nil.
func (p *memoryPool) get(limit uint64) []byte {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	free := p.free[limit]
	if len(free) == 0 {
		return nil
	}
	b := free[len(free)-1]
	p.free[limit] = free[:len(free)-1]
	return b
}

// put zeroes what an instance could reach of the reservation b, its
// memory b[:len(b)], and keeps it, unless there is no room or it is too
// large to be worth zeroing. It reports whether it kept b.
func (p *memoryPool) put(b []byte) bool {
	if p == nil || len(b) > maxPooledUsed {
		return false
	}
	limit := uint64(cap(b))
	p.mu.Lock()
	full := len(p.free[limit]) >= maxPooled
	p.mu.Unlock()
	if full {
		return false
	}
	clear(b)
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.free[limit]) >= maxPooled {
		return false
	}
	if p.free == nil {
		p.free = map[uint64][][]byte{}
	}
	p.free[limit] = append(p.free[limit], b[:0])
	return true
}

// close releases the kept reservations.
func (p *memoryPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, free := range p.free {
		for _, b := range free {
			release(b[:cap(b)])
		}
	}
	p.free = nil
}

// clocks are an instance's fake clocks, as wazero's own: each reading is a
// millisecond after the one before, the first monotonic reading 0 and the
// first wall-clock reading 2022-01-01 UTC. They hold the next readings.
type clocks struct {
	nanos, wallNanos int64
}

// fakeEpoch is the first wall-clock reading, in nanoseconds since 1970.
const fakeEpoch = 1640995200 * int64(time.Second)

func (c *clocks) nanotime() int64 {
	t := c.nanos
	c.nanos += int64(time.Millisecond)
	return t
}

func (c *clocks) walltime() (sec int64, nsec int32) {
	t := fakeEpoch + c.wallNanos
	c.wallNanos += int64(time.Millisecond)
	return t / 1e9, int32(t % 1e9)
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

// StderrBytes caps Error.Stderr.
const StderrBytes = 4 << 10

func truncate(b []byte, n int) string {
	return strings.ToValidUTF8(string(b[:min(len(b), n)]), "")
}
