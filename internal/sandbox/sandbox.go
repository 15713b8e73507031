// Package sandbox runs operators' recommendation algorithms, WebAssembly
// modules speaking the custos algorithm ABI version 1, under the custodian's
// control.
//
// What a module gets: its inputs, a fresh instance for every entry call,
// started where the module's _initialize left it (run once per Program, with
// seed 0, see preinit.go), fake deterministic clocks, a sleep that returns at
// once, random bytes from a stream derived from the run's seed, empty stdin,
// and stdout and stderr that are captured (64 KiB each) for the custodian's
// log. It gets no arguments, no environment, no files and no network, and it
// may import nothing but the allowlisted wasi_snapshot_preview1 functions. A
// run is a pure function of the module's bytes, its inputs and the seed.
//
// What the package guarantees: a module runs only if its bytes hash to the
// digest the caller approved; it cannot grow its memory past Limits.MemoryBytes;
// it is stopped at Limits.Timeout; its output is at most Limits.OutputBytes
// and lies inside its memory; every failure is an *Error with a stable Code
// whose Message never holds input bytes or module output.
//
// How: a Host is a wazero runtime that runs Programs in whatever process
// calls it. It does no I/O of its own: no files, no processes, no network.
// Without context checks (HostConfig.Checked), which make loop-heavy code
// about fourteen times slower, a Host cannot stop a module at its deadline;
// package internal/sandbox/worker runs such Hosts in worker processes and
// kills a worker whose module outlives its deadline. Check and a checked
// Host stop a module themselves, at that price.
//
// What it trusts: wazero to confine a module to its linear memory and the
// imports it is given, and the compilation cache it is handed, whose
// contents run as machine code. It does not trust the module, its output or
// anything the module writes.
package sandbox

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"
)

// Code is a stable error code. Callers map it to a status and a problem type.
type Code string

// The codes an *Error carries.
const (
	// CodeInvalidModule: the module does not compile, lacks an export or has
	// one of the wrong type, speaks another ABI version, or its bytes do not
	// match its digest.
	CodeInvalidModule Code = "algo_invalid_module"
	// CodeForbiddenImport: the module imports something outside the allowlist.
	CodeForbiddenImport Code = "algo_forbidden_import"
	// CodeTimeout: the run outlived Limits.Timeout or the caller's context.
	CodeTimeout Code = "algo_timeout"
	// CodeTrap: the module trapped, exited, or returned a result outside
	// its memory.
	CodeTrap Code = "algo_trap"
	// CodeMemoryLimit: the module needed more memory than Limits.MemoryBytes.
	// A module that failed after a refused grow gets this code, whatever way
	// it then failed.
	CodeMemoryLimit Code = "algo_memory_limit"
	// CodeOutputTooLarge: the module's output is over Limits.OutputBytes.
	CodeOutputTooLarge Code = "algo_output_too_large"
	// CodeUnavailable: the sandbox itself failed: a worker did not start or
	// died unexpectedly, or the worker pool is closed.
	CodeUnavailable Code = "sandbox_unavailable"
)

// Error is a failed check or run.
type Error struct {
	Code Code
	// Message says what failed. It never holds input bytes, output bytes or
	// anything the module wrote.
	Message string
	// Stderr is the start of what the module wrote to stderr, at most
	// 4 KiB: for the custodian's log, never for the caller of the API.
	Stderr string
	// Cause is the context's error when the run stopped because the
	// caller's context was done, else nil.
	Cause error
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// Unwrap returns Cause: context.Canceled or context.DeadlineExceeded when
// the run stopped because the caller's context was done.
func (e *Error) Unwrap() error { return e.Cause }

// NewError returns an *Error whose Message is message, made printable and
// cut to about 1 KiB, and whose Stderr is the start of stderr, at most
// StderrBytes. It is for errors that crossed a boundary, such as a pipe
// from a worker process: message must not hold input bytes or output.
func NewError(code Code, message string, stderr []byte) *Error {
	return &Error{Code: code, Message: printable(message, maxMessage), Stderr: truncate(stderr, StderrBytes)}
}

// maxMessage bounds the Message of an Error from NewError.
const maxMessage = 1 << 10

func errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Module is an approved algorithm: its bytes and the digest they must hash to.
type Module struct {
	Digest [32]byte // SHA-256 of Wasm, as approved
	Wasm   []byte
}

// NewModule returns the Module for wasm, its digest computed.
func NewModule(wasm []byte) Module {
	return Module{Digest: sha256.Sum256(wasm), Wasm: wasm}
}

// MaxModuleBytes caps the size of a module.
const MaxModuleBytes = 64 << 20

// Limits bound one run. Zero fields take the defaults.
type Limits struct {
	// MemoryBytes caps the module's linear memory, rounded down to 64 KiB
	// pages (at least one); default 256 MiB, at most 4 GiB.
	MemoryBytes uint64
	// Timeout caps the run's wall-clock time; default 10 s. Program.Run
	// does not enforce it: package worker does, from the moment a worker
	// has the compiled module.
	Timeout time.Duration
	// OutputBytes caps the output; default 1 MiB, at most 1 GiB.
	OutputBytes int
}

const (
	pageSize       = 64 << 10
	defaultMemory  = 256 << 20
	defaultTimeout = 10 * time.Second
	defaultOutput  = 1 << 20
	maxPages       = 65536 // wasm's own cap

	maxOutput = 1 << 30
)

// WithDefaults fills in zero fields and rejects limits no run could honour.
func (l Limits) WithDefaults() (Limits, error) {
	if l.MemoryBytes == 0 {
		l.MemoryBytes = defaultMemory
	}
	if l.Timeout == 0 {
		l.Timeout = defaultTimeout
	}
	if l.OutputBytes == 0 {
		l.OutputBytes = defaultOutput
	}
	switch {
	case l.MemoryBytes > maxPages*pageSize:
		return l, fmt.Errorf("memory limit of %d bytes over %d", l.MemoryBytes, maxPages*pageSize)
	case l.Timeout < 0:
		return l, errors.New("negative timeout")
	case l.OutputBytes < 0 || l.OutputBytes > maxOutput:
		return l, fmt.Errorf("output limit of %d bytes outside 1..%d", l.OutputBytes, maxOutput)
	}
	return l, nil
}

// pages is the memory limit in wasm pages.
func (l Limits) pages() uint32 {
	return uint32(max(l.MemoryBytes/pageSize, 1))
}

// checkTimeout bounds the instance Check starts to ask the ABI version.
const checkTimeout = 5 * time.Second

// Check compiles and validates wasm as an algorithm module: imports from the
// allowlist only, the ABI's exports with their exact types, ABI version 1.
// It returns nil or an *Error. To learn the version it starts an instance in
// this process, with wazero's context checks on and a timeout of a few
// seconds, under the default memory limit.
func Check(ctx context.Context, wasm []byte) error {
	h, err := NewHost(ctx, HostConfig{Checked: true})
	if err != nil {
		return errorf(CodeUnavailable, "couldn't start wazero: %v", err)
	}
	defer h.Close(ctx)
	p, e := h.compile(ctx, wasm, false)
	if e != nil {
		return e
	}
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	if e := p.checkVersion(ctx, defaultMemory/pageSize); e != nil {
		return e
	}
	return nil
}
