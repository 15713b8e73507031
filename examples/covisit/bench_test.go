package covisit_test

import (
	"context"
	"testing"

	"github.com/custos/custos/algo/guest"
	"github.com/custos/custos/examples/covisit"
	"github.com/custos/custos/internal/algotest"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// The benchmarks compare the module, in wazero's compiler (which wazero
// picks on amd64 and arm64), with the same code compiled natively, each doing an entry call's work: decoding the
// JSON input, then training or recommending. Instantiation is measured on
// its own.

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
		h := newHost(b, algotest.Build(b, wasmPkg))
		for range b.N {
			b.StopTimer()
			m, p := h.prepare(b, in)
			b.StartTimer()
			enter(b, m, "custos_train", p...)
		}
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
		h := newHost(b, algotest.Build(b, wasmPkg))
		for range b.N {
			b.StopTimer()
			m, p := h.prepare(b, model, req)
			b.StartTimer()
			enter(b, m, "custos_recommend", p...)
		}
	})
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

// enter makes the entry call, then closes m off the clock.
func enter(b *testing.B, m api.Module, fn string, params ...uint64) {
	if _, err := m.ExportedFunction(fn).Call(context.Background(), params...); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	m.Close(context.Background())
	b.StartTimer()
}
