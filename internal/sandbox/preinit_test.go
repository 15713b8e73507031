package sandbox

import (
	"bytes"
	"context"
	"errors"
	"testing"
)

// TestPreinit runs a Go module pre-initialized and as it is: both give the
// same outputs, and calls to the pre-initialized one skip _initialize.
func TestPreinit(t *testing.T) {
	ctx := context.Background()
	h, err := NewHost(ctx, HostConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(ctx)
	wasm := guest(t, "echo").Wasm
	plain, e := h.compile(ctx, wasm, false)
	if e != nil {
		t.Fatal(e)
	}
	pre, e := h.compile(ctx, wasm, true)
	if e != nil {
		t.Fatal(e)
	}
	if plain.initialized || !pre.initialized {
		t.Fatalf("initialized: plain %v, pre-initialized %v", plain.initialized, pre.initialized)
	}
	if pre.memMin <= plain.memMin {
		t.Errorf("the pre-initialized module starts with %d pages, no more than the module's %d", pre.memMin, plain.memMin)
	}
	input := []byte(`{"abi":1,"seed":"1","collections":{}}`)
	for _, p := range []*Program{plain, pre} {
		out := p.Run(ctx, Call{Entry: Train, Input: input})
		if out.Err != nil || !bytes.Equal(out.Output, input) {
			t.Errorf("initialized %v: train = %q, %v", p.initialized, out.Output, out.Err)
		}
	}
	// The pre-initialized module is a function of the module's bytes:
	// outputs are too, seed by seed.
	again, e := h.compile(ctx, wasm, true)
	if e != nil {
		t.Fatal(e)
	}
	for seed := range uint64(3) {
		c := Call{Entry: Recommend, Model: []byte("m"), Input: []byte(`{"subject":"s","k":3}`), Seed: seed}
		a, b := pre.Run(ctx, c), again.Run(ctx, c)
		if a.Err != nil || b.Err != nil || !bytes.Equal(a.Output, b.Output) {
			t.Errorf("seed %d: %q, %v and %q, %v", seed, a.Output, a.Err, b.Output, b.Err)
		}
	}
}

// TestPreinitFailure keeps a module whose _initialize fails as it is: each
// call fails as it would have.
func TestPreinitFailure(t *testing.T) {
	m := okModule()
	m.initialize = []byte{0x00} // unreachable
	out := run(t, m.bytes(), Call{Entry: Train, Input: []byte("x")})
	e := wantCode(t, out.Err, CodeTrap)
	if !bytes.Contains([]byte(e.Message), []byte("unreachable")) {
		t.Errorf("message %q does not say unreachable", e.Message)
	}
}

func TestScanPreinit(t *testing.T) {
	ok := okModule().bytes()
	if _, err := scanPreinit(ok); err != nil {
		t.Fatal(err)
	}
	start := append(bytes.Clone(ok), wasmSection(sectionStart, uleb(0))...)
	dataCount := append(bytes.Clone(ok), wasmSection(sectionDataCount, uleb(0))...)
	passive := append(bytes.Clone(ok), wasmSection(sectionData, wasmVec(append([]byte{1}, wasmName("x")...)))...)
	refGlobal := append(bytes.Clone(ok), wasmSection(sectionGlobal, wasmVec([]byte{0x70, 1, 0xd0, 0x70, 0x0b}))...)
	for name, b := range map[string][]byte{"start": start, "data count": dataCount, "passive data": passive, "mutable funcref": refGlobal} {
		if _, err := scanPreinit(b); !errors.Is(err, errNotPreinit) {
			t.Errorf("%s: got %v, want errNotPreinit", name, err)
		}
	}
}

func TestDataSegments(t *testing.T) {
	mem := make([]byte, 3*maxSegmentGap)
	mem[1], mem[2] = 7, 8
	mem[3+maxSegmentGap] = 9 // joined to the first: a gap of maxSegmentGap
	mem[len(mem)-1] = 5      // a segment of its own
	r := &wasmReader{b: dataSegments(mem)}
	got := make([]byte, len(mem))
	n := r.u32()
	if n != 2 {
		t.Fatalf("%d segments, want 2", n)
	}
	for range n {
		if r.byte() != 0 || r.byte() != 0x41 {
			t.Fatal("not an active segment at an i32.const")
		}
		off := r.u32() // as unsigned: these offsets encode alike signed
		r.byte()       // end
		copy(got[off:], r.bytes(int(r.u32())))
	}
	if r.err != nil || !bytes.Equal(got, mem) {
		t.Errorf("segments rebuild another memory (err %v)", r.err)
	}
}

// FuzzScanPreinit checks that reading and rewriting any bytes never
// panics: scanPreinit sees a module before wazero has validated it.
func FuzzScanPreinit(f *testing.F) {
	f.Add(okModule().bytes())
	withGlobal := append(okModule().bytes(), wasmSection(sectionGlobal, wasmVec([]byte{typeI32, 1, 0x41, 5, 0x0b}))...)
	f.Add(withGlobal)
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := scanPreinit(b)
		if err != nil {
			return
		}
		l.probe()
		mem := make([]byte, pageSize)
		mem[7] = 1
		l.rewrite(snapshot{globals: map[int]uint64{0: 1}, memory: mem}, 1)
	})
}
