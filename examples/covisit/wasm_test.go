package covisit_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/custos/custos/algo/guest"
	"github.com/custos/custos/internal/algotest"
	"github.com/custos/custos/internal/sandbox"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"
)

const wasmPkg = "./examples/covisit/wasm"

// host runs a module the way the ABI says the custodian does: each entry
// call in a fresh instance, with no arguments, environment or files,
// output captured, wazero's fake clocks and randomness from a seed.
type host struct {
	rt  wazero.Runtime
	mod wazero.CompiledModule
}

// compiled saves the tests compiling the same module again and again.
var compiled = wazero.NewCompilationCache()

func newHost(tb testing.TB, wasm []byte) *host {
	tb.Helper()
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCompilationCache(compiled))
	tb.Cleanup(func() { rt.Close(ctx) })
	wasi_snapshot_preview1.MustInstantiate(ctx, rt)
	mod, err := rt.CompileModule(ctx, wasm)
	if err != nil {
		tb.Fatal(err)
	}
	return &host{rt: rt, mod: mod}
}

// instantiate returns a fresh instance, initialized, and its stderr.
func (h *host) instantiate(tb testing.TB, seed uint64) (api.Module, *bytes.Buffer) {
	tb.Helper()
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	var stdout, stderr bytes.Buffer
	cfg := wazero.NewModuleConfig().
		WithName(""). // anonymous, so that instances can coexist
		WithStdout(&stdout).
		WithStderr(&stderr).
		WithRandSource(rand.NewChaCha8(key)).
		WithStartFunctions("_initialize")
	m, err := h.rt.InstantiateModule(context.Background(), h.mod, cfg)
	if err != nil {
		tb.Fatalf("couldn't instantiate: %v; stderr: %s", err, stderr.String())
	}
	tb.Cleanup(func() { m.Close(context.Background()) })
	return m, &stderr
}

// call follows the ABI's calling sequence: each argument copied into a
// buffer from custos_alloc, then fn called with their places. It returns
// fn's output, or the error of the call and what the module wrote to
// stderr.
func (h *host) call(tb testing.TB, seed uint64, fn string, args ...[]byte) ([]byte, error) {
	tb.Helper()
	m, stderr := h.instantiate(tb, seed)
	res, err := m.ExportedFunction(fn).Call(context.Background(), pass(tb, m, args...)...)
	if err != nil {
		return nil, fmt.Errorf("%w; stderr: %s", err, stderr.String())
	}
	ptr, n := uint32(res[0]>>32), uint32(res[0])
	out, ok := m.Memory().Read(ptr, n)
	if !ok {
		tb.Fatalf("%s returned %#x, length %d, outside memory", fn, ptr, n)
	}
	return bytes.Clone(out), nil
}

// pass copies each of args into a buffer from m's custos_alloc and returns
// the places of the buffers, as the parameters of an entry call.
func pass(tb testing.TB, m api.Module, args ...[]byte) []uint64 {
	tb.Helper()
	var params []uint64
	for _, a := range args {
		res, err := m.ExportedFunction("custos_alloc").Call(context.Background(), uint64(len(a)))
		if err != nil || uint32(res[0]) == 0 {
			tb.Fatalf("custos_alloc(%d) failed: %v", len(a), err)
		}
		p := uint32(res[0])
		if !m.Memory().Write(p, a) {
			tb.Fatalf("custos_alloc(%d) returned %#x, outside memory", len(a), p)
		}
		params = append(params, uint64(p), uint64(len(a)))
	}
	return params
}

func mustJSON(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestWasmReproducible(t *testing.T) {
	a := algotest.Build(t, wasmPkg)
	var env []string
	if !testing.Short() {
		// A build cache of its own, so that nothing of the first build is
		// reused: both are made from source.
		env = append(env, "GOCACHE="+t.TempDir())
	}
	if b := algotest.BuildFresh(t, wasmPkg, env...); !bytes.Equal(a, b) {
		t.Fatalf("two builds differ: %d and %d bytes", len(a), len(b))
	}
}

// TestWasmInterface checks the module as the custodian does before
// approving one: imports, exports and ABI version.
func TestWasmInterface(t *testing.T) {
	wasm := algotest.Build(t, wasmPkg)
	if err := sandbox.Check(context.Background(), wasm); err != nil {
		t.Fatal(err)
	}
	// The ABI makes _initialize optional; a c-shared Go module needs it
	// for its init functions, which register the algorithm.
	if _, ok := newHost(t, wasm).mod.ExportedFunctions()["_initialize"]; !ok {
		t.Error("does not export _initialize")
	}
}

// sandboxed returns the module compiled by the sandbox, which
// pre-initializes it.
func sandboxed(t *testing.T) *sandbox.Program {
	t.Helper()
	ctx := context.Background()
	h, err := sandbox.NewHost(ctx, sandbox.HostConfig{Cache: compiled})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(ctx) })
	p, err := h.Compile(ctx, algotest.Build(t, wasmPkg))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestWasmMatchesNative runs the module on the synthetic world and checks
// that it learns the same model and recommends the same items, in the same
// order, as the same code compiled natively; and the same again when the
// sandbox runs it, pre-initialized.
func TestWasmMatchesNative(t *testing.T) {
	h := newHost(t, algotest.Build(t, wasmPkg))
	w := synthetic(300, 30, 200, 1)
	trainIn := mustJSON(t, w.train)
	pre := sandboxed(t)
	run := func(c sandbox.Call) []byte {
		t.Helper()
		out := pre.Run(context.Background(), c)
		if out.Err != nil {
			t.Fatalf("%v; stderr: %s", out.Err, out.Err.Stderr)
		}
		return out.Output
	}

	model, err := h.call(t, 42, "custos_train", trainIn)
	if err != nil {
		t.Fatal(err)
	}
	if again := run(sandbox.Call{Entry: sandbox.Train, Input: trainIn, Seed: 42}); !bytes.Equal(again, model) {
		t.Fatal("the sandbox's model differs from the module's")
	}
	in, err := guest.DecodeTrainInput(trainIn)
	if err != nil {
		t.Fatal(err)
	}
	if native := train(t, in); !bytes.Equal(model, native) {
		t.Fatalf("the module's model (%d bytes) differs from the native one (%d bytes)", len(model), len(native))
	}

	requests := []guest.RecommendInput{w.request("tk_user00000", 10), w.request("tk_user00001", 100), w.request("tk_cold", 7)}
	for _, req := range requests {
		b := mustJSON(t, req)
		out, err := h.call(t, 42, "custos_recommend", model, b)
		if err != nil {
			t.Fatal(err)
		}
		if again := run(sandbox.Call{Entry: sandbox.Recommend, Model: model, Input: b, Seed: 42}); !bytes.Equal(again, out) {
			t.Errorf("%s: the sandbox recommends %s, the module %s", req.Subject, again, out)
		}
		var got guest.RecommendOutput
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("output %s: %v", out, err)
		}
		decoded, err := guest.DecodeRecommendInput(b)
		if err != nil {
			t.Fatal(err)
		}
		want := recommend(t, model, decoded)
		if !slices.Equal(got.Items, want) || len(want) == 0 {
			t.Errorf("%s: module recommends %v, natively %v", req.Subject, got.Items, want)
		}
	}
}

func TestWasmFailures(t *testing.T) {
	h := newHost(t, algotest.Build(t, wasmPkg))
	w := synthetic(20, 5, 10, 1)
	model, err := h.call(t, 1, "custos_train", mustJSON(t, w.train))
	if err != nil {
		t.Fatal(err)
	}
	const subject = "tk_SECRET_SUBJECT"
	req := mustJSON(t, guest.RecommendInput{ABI: 1, Seed: "1", Subject: subject, K: 3, History: map[string][]guest.Record{
		"watch_events": {{"user": subject, "video": "cook-0001"}},
	}})
	for _, tc := range []struct {
		name   string
		fn     string
		args   [][]byte
		reason string
	}{
		{"garbage model", "custos_recommend", [][]byte{[]byte(subject), req}, "custos_recommend: recommendation failed: malformed model"},
		{"empty model", "custos_recommend", [][]byte{nil, req}, "malformed model"},
		{"abi 2", "custos_train", [][]byte{[]byte(`{"abi":2,"seed":"1","collections":{}}`)}, "custos_train: invalid train input: abi is 2, not 1"},
		{"k 0", "custos_recommend", [][]byte{model, bytes.Replace(req, []byte(`"k":3`), []byte(`"k":0`), 1)}, "k is 0"},
		{"not JSON", "custos_train", [][]byte{[]byte(subject)}, "custos_train: couldn't decode train input: malformed JSON at byte"},
		{"bad record", "custos_train", [][]byte{[]byte(`{"abi":1,"seed":"1","collections":{"videos":[{"id":true}]}}`)}, "videos record 0: id is a bool"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := h.call(t, 1, tc.fn, tc.args...)
			var exit *sys.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 2 {
				t.Fatalf("got %v, want exit code 2", err)
			}
			if msg := err.Error(); !strings.Contains(msg, tc.reason) || strings.Contains(msg, "SECRET") {
				t.Errorf("got %q, want the reason %q and no input data", msg, tc.reason)
			}
		})
	}

	// An entry call reads only what custos_alloc handed out.
	m, stderr := h.instantiate(t, 1)
	_, err = m.ExportedFunction("custos_train").Call(context.Background(), 1024, 16)
	if !strings.Contains(stderr.String(), "custos_train: input at 0x400, length 16, is not in a buffer from custos_alloc") {
		t.Errorf("got %v, stderr %q", err, stderr)
	}
}

// TestWasmLifetimes checks that custos_alloc's buffers are distinct and
// outlive the collections that later allocations cause, up to the entry
// call.
func TestWasmLifetimes(t *testing.T) {
	h := newHost(t, algotest.Build(t, wasmPkg))
	m, _ := h.instantiate(t, 1)
	ctx := context.Background()
	alloc := func(size uint64) uint32 {
		t.Helper()
		res, err := m.ExportedFunction("custos_alloc").Call(ctx, size)
		if err != nil {
			t.Fatalf("custos_alloc(%d): %v", size, err)
		}
		return uint32(res[0])
	}
	in := mustJSON(t, synthetic(50, 10, 20, 3).train)
	p := alloc(uint64(len(in)))
	m.Memory().Write(p, in)
	empty, one := alloc(0), alloc(1)
	if p == 0 || empty == 0 || one == 0 || empty == one || p == empty || p == one {
		t.Fatalf("custos_alloc handed out %#x, %#x, %#x", p, empty, one)
	}
	m.Memory().WriteByte(one, 0xff)
	if got := alloc(1 << 31); got != 0 {
		t.Errorf("custos_alloc(2 GiB) = %#x, want 0", got)
	}
	for range 4 {
		alloc(8 << 20) // enough for the collector to run
	}
	res, err := m.ExportedFunction("custos_train").Call(ctx, uint64(p), uint64(len(in)))
	if err != nil {
		t.Fatal(err)
	}
	out, _ := m.Memory().Read(uint32(res[0]>>32), uint32(res[0]))
	decoded, err := guest.DecodeTrainInput(in)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, train(t, decoded)) {
		t.Error("the module trained on something else than its input")
	}
}
