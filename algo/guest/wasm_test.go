package guest_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/custos/custos/internal/algotest"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"
)

// load compiles wasm in a runtime that lives as long as t.
func load(t *testing.T, wasm []byte) (wazero.Runtime, wazero.CompiledModule) {
	t.Helper()
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	t.Cleanup(func() { rt.Close(ctx) })
	wasi_snapshot_preview1.MustInstantiate(ctx, rt)
	mod, err := rt.CompileModule(ctx, wasm)
	if err != nil {
		t.Fatal(err)
	}
	return rt, mod
}

// run calls fn of a fresh instance of mod with args, each passed in a
// buffer from custos_alloc as the ABI asks, and returns fn's output or the
// module's exit code and stderr.
func run(t *testing.T, rt wazero.Runtime, mod wazero.CompiledModule, fn string, args ...string) (out string, exit uint32, stderr string) {
	t.Helper()
	ctx := context.Background()
	var errBuf bytes.Buffer
	m, err := rt.InstantiateModule(ctx, mod, wazero.NewModuleConfig().WithName("").WithStderr(&errBuf).WithStartFunctions("_initialize"))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(ctx)
	var params []uint64
	for _, a := range args {
		res, err := m.ExportedFunction("custos_alloc").Call(ctx, uint64(len(a)))
		if err != nil {
			t.Fatal(err)
		}
		m.Memory().Write(uint32(res[0]), []byte(a))
		params = append(params, res[0], uint64(len(a)))
	}
	res, err := m.ExportedFunction(fn).Call(ctx, params...)
	var exitErr *sys.ExitError
	switch {
	case errors.As(err, &exitErr):
		return "", exitErr.ExitCode(), errBuf.String()
	case err != nil:
		t.Fatal(err)
	}
	b, ok := m.Memory().Read(uint32(res[0]>>32), uint32(res[0]))
	if !ok {
		t.Fatalf("%s returned %#x, outside memory", fn, res[0])
	}
	return string(b), 0, errBuf.String()
}

func trainInput(do string) string {
	return `{"abi":1,"seed":"4242","collections":{"do":[{"what":"` + do + `"}]}}`
}

const recommendInput = `{"abi":1,"seed":"4242","subject":"tk_s","k":1,"history":{}}`

func TestWasmEntries(t *testing.T) {
	rt, mod := load(t, algotest.Build(t, "./algo/guest/testdata/probe"))
	for _, tc := range []struct {
		name   string
		fn     string
		args   []string
		out    string // the output, or
		stderr string // the reason for exit code 2
	}{
		{"train", "custos_train", []string{trainInput("model")}, "model", ""},
		{"empty model", "custos_train", []string{trainInput("empty")}, "", ""},
		{"recommend", "custos_recommend", []string{"x", recommendInput}, `{"items":["x"]}`, ""},
		{"runtime error", "custos_train", []string{trainInput("index")}, "", "custos_train: panic: runtime error: index out of range [1] with length 0\n"},
		{"panic value", "custos_train", []string{trainInput("panic")}, "", "custos_train: panic with a value of type string\n"},
		{"error", "custos_train", []string{trainInput("error")}, "", "custos_train: training failed: probe failed\n"},
		{"more than k", "custos_recommend", []string{"many", recommendInput}, "", "custos_recommend: recommendation has 2 items, more than k = 1\n"},
		{"duplicate", "custos_recommend", []string{"twice", `{"abi":1,"seed":"4242","k":5}`}, "", "custos_recommend: recommendation repeats an item at position 1\n"},
		{"bad seed", "custos_recommend", []string{"x", `{"abi":1,"seed":"-4242","k":5}`}, "", "custos_recommend: invalid recommend input: seed is not a decimal uint64\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, exit, stderr := run(t, rt, mod, tc.fn, tc.args...)
			if tc.stderr == "" && (exit != 0 || out != tc.out) {
				t.Fatalf("got %q, exit code %d, stderr %q; want %q", out, exit, stderr, tc.out)
			}
			if tc.stderr != "" && (exit != 2 || stderr != tc.stderr) {
				t.Fatalf("got exit code %d, stderr %q; want 2, %q", exit, stderr, tc.stderr)
			}
			if strings.Contains(stderr, "4242") {
				t.Errorf("stderr %q holds input data", stderr)
			}
		})
	}
}

func TestWasmUnregistered(t *testing.T) {
	rt, mod := load(t, algotest.Build(t, "./algo/guest/testdata/unregistered"))
	_, exit, stderr := run(t, rt, mod, "custos_train", trainInput(""))
	if exit != 2 || !strings.HasPrefix(stderr, "custos_train: no algorithm registered") {
		t.Errorf("got exit code %d, stderr %q", exit, stderr)
	}
}
