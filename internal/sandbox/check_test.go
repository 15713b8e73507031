package sandbox

import (
	"bytes"
	"context"
	"flag"
	"os"
	"strings"
	"testing"
)

// A few hand-assembled modules, to check what Go guests cannot show.

func wasmName(s string) []byte { return append(uleb(uint64(len(s))), s...) }

func wasmVec(items ...[]byte) []byte {
	return append(uleb(uint64(len(items))), bytes.Join(items, nil)...)
}

func wasmSection(id byte, body []byte) []byte {
	return append(append([]byte{id}, uleb(uint64(len(body)))...), body...)
}

// Function types of abiModule, by index.
const (
	typeVI    = 0 // () -> i32
	typeII    = 1 // (i32) -> i32
	typeIIL   = 2 // (i32, i32) -> i64
	typeIIIIL = 3 // (i32, i32, i32, i32) -> i64
	typeVV    = 4 // () -> ()
)

// abiModule describes a module that follows the ABI unless told otherwise.
// Its train returns its input in place; recommend traps.
type abiModule struct {
	version     byte     // what custos_abi_version returns
	imports     [][]byte // import entries; function imports must be of type typeVV
	trainType   byte
	memPages    uint64
	noMemory    bool   // do not export the memory
	noRecommend bool   // do not export custos_recommend
	initialize  []byte // body of _initialize (without end), nil for none
	initType    byte
}

func okModule() abiModule {
	return abiModule{version: 1, trainType: typeIIL, memPages: 1, initType: typeVV}
}

func (m abiModule) bytes() []byte {
	types := wasmVec(
		[]byte{0x60, 0, 1, 0x7f},
		[]byte{0x60, 1, 0x7f, 1, 0x7f},
		[]byte{0x60, 2, 0x7f, 0x7f, 1, 0x7e},
		[]byte{0x60, 4, 0x7f, 0x7f, 0x7f, 0x7f, 1, 0x7e},
		[]byte{0x60, 0, 0},
	)
	nimp := uint64(0)
	for _, im := range m.imports {
		mod := 1 + int(im[0]) // names are short: their length is one byte
		if im[mod+1+int(im[mod])] == kindFunc {
			nimp++
		}
	}
	body := func(code ...byte) []byte {
		b := append([]byte{0}, append(code, 0x0b)...) // no locals
		return append(uleb(uint64(len(b))), b...)
	}
	funcs := [][]byte{{typeVI}, {typeII}, {m.trainType}, {typeIIIIL}}
	codes := [][]byte{
		body(0x41, m.version),
		body(append([]byte{0x41}, sleb(1024)...)...),
		body(append(append([]byte{0x20, 1, 0xad, 0x42}, sleb(1024<<32)...), 0x84)...),
		body(0x00),
	}
	exports := [][]byte{
		append(wasmName(exportVersion), append([]byte{kindFunc}, uleb(nimp)...)...),
		append(wasmName(exportAlloc), append([]byte{kindFunc}, uleb(nimp+1)...)...),
		append(wasmName(exportTrain), append([]byte{kindFunc}, uleb(nimp+2)...)...),
	}
	if !m.noRecommend {
		exports = append(exports, append(wasmName(exportRecommend), append([]byte{kindFunc}, uleb(nimp+3)...)...))
	}
	if m.initialize != nil {
		funcs = append(funcs, []byte{m.initType})
		codes = append(codes, body(m.initialize...))
		exports = append(exports, append(wasmName(exportInitialize), append([]byte{kindFunc}, uleb(nimp+4)...)...))
	}
	if !m.noMemory {
		exports = append(exports, append(wasmName(exportMemory), kindMemory, 0))
	}
	var b []byte
	b = append(b, "\x00asm\x01\x00\x00\x00"...)
	b = append(b, wasmSection(1, types)...)
	if len(m.imports) > 0 {
		b = append(b, wasmSection(2, wasmVec(m.imports...))...)
	}
	b = append(b, wasmSection(3, wasmVec(funcs...))...)
	b = append(b, wasmSection(5, wasmVec(append([]byte{0}, uleb(m.memPages)...)))...)
	b = append(b, wasmSection(7, wasmVec(exports...))...)
	b = append(b, wasmSection(10, wasmVec(codes...))...)
	return b
}

func importEntry(module, name string, desc ...byte) []byte {
	return append(append(wasmName(module), wasmName(name)...), desc...)
}

func TestCheck(t *testing.T) {
	with := func(f func(*abiModule)) []byte {
		m := okModule()
		f(&m)
		return m.bytes()
	}
	tests := []struct {
		name string
		wasm []byte
		code Code   // "" for none
		says string // in the message
	}{
		{"ok", okModule().bytes(), "", ""},
		{"initialize", with(func(m *abiModule) { m.initialize = []byte{} }), "", ""},
		{"allowed import", with(func(m *abiModule) {
			m.imports = [][]byte{importEntry(wasiModule, "sched_yield", kindFunc, typeVI)}
		}), "", ""},
		{"not wasm", []byte("\x7fELF"), CodeInvalidModule, "decode"},
		{"truncated", okModule().bytes()[:30], CodeInvalidModule, ""},
		{"version 2", with(func(m *abiModule) { m.version = 2 }), CodeInvalidModule, "version 2"},
		{"other module", with(func(m *abiModule) {
			m.imports = [][]byte{importEntry("env", "f", kindFunc, typeVV)}
		}), CodeForbiddenImport, "function env.f"},
		{"unlisted wasi", with(func(m *abiModule) {
			m.imports = [][]byte{importEntry(wasiModule, "sock_accept", kindFunc, typeVV)}
		}), CodeForbiddenImport, "wasi_snapshot_preview1.sock_accept"},
		{"memory import", with(func(m *abiModule) {
			m.imports = [][]byte{importEntry(wasiModule, "fd_write", kindMemory, 0, 1)}
		}), CodeForbiddenImport, "memory wasi_snapshot_preview1.fd_write"},
		{"global import", with(func(m *abiModule) {
			m.imports = [][]byte{importEntry("env", "g", kindGlobal, 0x7f, 0)}
		}), CodeForbiddenImport, "global env.g"},
		{"table import", with(func(m *abiModule) {
			m.imports = [][]byte{importEntry("env", "t", kindTable, 0x70, 0, 1)}
		}), CodeForbiddenImport, "table env.t"},
		{"import of the wrong type", with(func(m *abiModule) {
			m.imports = [][]byte{importEntry(wasiModule, "fd_write", kindFunc, typeVV)}
		}), CodeInvalidModule, "fd_write with the wrong type"},
		{"train of the wrong type", with(func(m *abiModule) { m.trainType = typeIIIIL }), CodeInvalidModule, "custos_train with the wrong type"},
		{"initialize of the wrong type", with(func(m *abiModule) {
			m.initialize, m.initType = []byte{0x41, 0}, typeVI
		}), CodeInvalidModule, "_initialize with the wrong type"},
		{"no recommend", with(func(m *abiModule) { m.noRecommend = true }), CodeInvalidModule, "does not export custos_recommend"},
		{"no memory export", with(func(m *abiModule) { m.noMemory = true }), CodeInvalidModule, "memory"},
		{"memory over the limit", with(func(m *abiModule) { m.memPages = defaultMemory/pageSize + 1 }), CodeMemoryLimit, "initial memory"},
		{"initialize traps", with(func(m *abiModule) { m.initialize = []byte{0x00} }), CodeTrap, "unreachable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Check(context.Background(), tc.wasm)
			if tc.code == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			e := wantCode(t, err, tc.code)
			if !strings.Contains(e.Message, tc.says) {
				t.Errorf("message %q does not say %q", e.Message, tc.says)
			}
		})
	}
}

func TestCheckStopsSpinningInitialize(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out the check timeout")
	}
	m := okModule()
	m.initialize = []byte{0x03, 0x40, 0x0c, 0x00, 0x0b} // loop br 0 end
	wantCode(t, Check(context.Background(), m.bytes()), CodeTimeout)
}

// TestRunHandAssembled runs a module that is not Go, so that the calling
// sequence is seen without a Go runtime in between.
func TestRunHandAssembled(t *testing.T) {
	wasm := okModule().bytes()
	out := run(t, wasm, Call{Entry: Train, Input: []byte("hello")})
	if out.Err != nil || string(out.Output) != "hello" {
		t.Fatalf("train = %q, %v", out.Output, out.Err)
	}
	out = run(t, wasm, Call{Entry: Recommend, Model: []byte("m"), Input: []byte("i")})
	wantCode(t, out.Err, CodeTrap)
	out = run(t, wasm, Call{Entry: Train, Model: []byte("m"), Input: []byte("i")})
	wantCode(t, out.Err, CodeUnavailable)
}

// update rewrites testdata/tiny.wasm.
var update = flag.Bool("update", false, "rewrite testdata/tiny.wasm")

// TestTinyModule keeps testdata/tiny.wasm, the smallest module that
// follows the ABI, the one okModule assembles: the worker's tests and
// benchmarks run it where this package's test helpers are out of reach.
func TestTinyModule(t *testing.T) {
	const path = "testdata/tiny.wasm"
	wasm := okModule().bytes()
	if *update {
		if err := os.WriteFile(path, wasm, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, wasm) {
		t.Errorf("%s differs from what okModule assembles; rerun with -update", path)
	}
}

func TestScanModule(t *testing.T) {
	m := okModule()
	m.imports = [][]byte{
		importEntry(wasiModule, "fd_write", kindFunc, typeVV),
		importEntry("env", "t", kindTable, 0x70, 1, 1, 2),
		importEntry("env", "g", kindGlobal, 0x7f, 1),
		importEntry("env", "m", kindMemory, 0, 3),
	}
	m.memPages = 7
	l, err := scanModule(m.bytes())
	if err != nil {
		t.Fatal(err)
	}
	want := []wasmImport{{wasiModule, "fd_write", kindFunc}, {"env", "t", kindTable}, {"env", "g", kindGlobal}, {"env", "m", kindMemory}}
	if len(l.imports) != len(want) {
		t.Fatalf("imports %v, want %v", l.imports, want)
	}
	for i := range want {
		if l.imports[i] != want[i] {
			t.Errorf("import %d is %v, want %v", i, l.imports[i], want[i])
		}
	}
	if l.memMin != 7 {
		t.Errorf("memory of %d pages, want 7", l.memMin)
	}
	for _, bad := range [][]byte{
		nil,
		[]byte("\x00asm\x02\x00\x00\x00"),
		append([]byte("\x00asm\x01\x00\x00\x00"), 2, 5, 1, 0xff, 0xff, 0xff, 0xff),       // name longer than the section
		append([]byte("\x00asm\x01\x00\x00\x00"), 2, 0x80, 0x80, 0x80, 0x80, 0x10),       // size over 32 bits
		append([]byte("\x00asm\x01\x00\x00\x00"), 2, 6, 1, 1, 'a', 1, 'b', 9),            // kind 9
		append([]byte("\x00asm\x01\x00\x00\x00"), 2, 7, 1, 1, 0xff, 1, 'b', kindFunc, 0), // not UTF-8
	} {
		if _, err := scanModule(bad); err == nil {
			t.Errorf("scanModule(%x) succeeded", bad)
		}
	}
}

func FuzzScanModule(f *testing.F) {
	m := okModule()
	m.imports = [][]byte{importEntry("env", "g", kindGlobal, 0x7f, 1)}
	f.Add(m.bytes())
	f.Add(okModule().bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := scanModule(b)
		if err != nil {
			return
		}
		if len(l.imports) > len(b) {
			t.Fatalf("%d imports from %d bytes", len(l.imports), len(b))
		}
	})
}
