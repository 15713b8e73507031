package covisit_test

import (
	"context"
	"testing"

	"github.com/custos/custos/algo/guest"
	"github.com/custos/custos/examples/covisit"
	"github.com/custos/custos/internal/algotest"
	"github.com/custos/custos/internal/sandbox"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// The benchmarks compare the module, in wazero's compiler (which wazero
// picks on amd64 and arm64), with the same code compiled natively, each
// doing an entry call's work: decoding the JSON input, then training or
// recommending.
//
//   - native: the Go code, called directly.
//   - wasm: the entry call alone, in an instance made and initialized off
//     the clock: what the algorithm costs in wasm.
//   - sandbox: what the custodian pays per call, as the sandbox makes it
//     (sandbox.Program.Run): a fresh instance, its initialization, the
//     inputs copied in, the call, the output copied out. A worker process
//     adds its pipe, about 40 µs (internal/sandbox/worker's BenchmarkTiny).
//
//	go test ./examples/covisit -run '^$' -bench . -count 5

// benchWorld is 1,000 users with 50 watches each over 2,000 videos.
func benchWorld() world { return synthetic(1000, 50, 2000, 9) }

func BenchmarkTrain(b *testing.B) {
	in := mustJSON(b, benchWorld().train)
	b.Run("native", func(b *testing.B) {
		for b.Loop() {
			dec, err := guest.DecodeTrainInput(in)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := (covisit.Algorithm{}).Train(dec); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("wasm", func(b *testing.B) {
		benchCall(b, "custos_train", in)
	})
	b.Run("sandbox", func(b *testing.B) {
		benchSandbox(b, sandbox.Call{Entry: sandbox.Train, Input: in})
	})
}

func BenchmarkRecommend(b *testing.B) {
	w := benchWorld()
	model := train(b, w.train)
	req := mustJSON(b, w.request("tk_user00000", 10))
	b.Run("native", func(b *testing.B) {
		for b.Loop() {
			dec, err := guest.DecodeRecommendInput(req)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := (covisit.Algorithm{}).Recommend(model, dec); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("wasm", func(b *testing.B) {
		benchCall(b, "custos_recommend", model, req)
	})
	b.Run("sandbox", func(b *testing.B) {
		benchSandbox(b, sandbox.Call{Entry: sandbox.Recommend, Model: model, Input: req})
	})
}

// benchCall measures the entry call fn alone, each in a fresh instance
// made off the clock.
func benchCall(b *testing.B, fn string, args ...[]byte) {
	h := newHost(b, algotest.Build(b, wasmPkg))
	for b.Loop() {
		b.StopTimer()
		m, p := h.prepare(b, args...)
		b.StartTimer()
		if _, err := m.ExportedFunction(fn).Call(context.Background(), p...); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		m.Close(context.Background())
		b.StartTimer()
	}
}

// benchSandbox measures c made by the sandbox, on a Host without context
// checks, as a worker runs it.
func benchSandbox(b *testing.B, c sandbox.Call) {
	ctx := context.Background()
	h, err := sandbox.NewHost(ctx, sandbox.HostConfig{Cache: compiled})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close(ctx)
	p, err := h.Compile(ctx, algotest.Build(b, wasmPkg))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if out := p.Run(ctx, c); out.Err != nil {
			b.Fatal(out.Err)
		}
	}
}

// BenchmarkInstantiate measures what the custodian pays per entry call
// before the call itself: a fresh instance of the compiled module, with
// _initialize run.
func BenchmarkInstantiate(b *testing.B) {
	h := newHost(b, algotest.Build(b, wasmPkg))
	ctx := context.Background()
	for b.Loop() {
		m, err := h.rt.InstantiateModule(ctx, h.mod, wazero.NewModuleConfig().WithName("").WithStartFunctions("_initialize"))
		if err != nil {
			b.Fatal(err)
		}
		m.Close(ctx)
	}
}

// prepare instantiates the module and copies args into it, returning the
// parameters of the entry call.
func (h *host) prepare(b *testing.B, args ...[]byte) (api.Module, []uint64) {
	ctx := context.Background()
	m, err := h.rt.InstantiateModule(ctx, h.mod, wazero.NewModuleConfig().WithName("").WithStartFunctions("_initialize"))
	if err != nil {
		b.Fatal(err)
	}
	return m, pass(b, m, args...)
}
