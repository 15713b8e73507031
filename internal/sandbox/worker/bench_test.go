package worker

import (
	"context"
	"testing"
	"time"

	"github.com/custos/custos/internal/sandbox"
)

// The benchmarks behind running modules in worker processes: each module
// runs (a) in this process with wazero's context checks, the other way to
// enforce a deadline, (b) in this process without them, (c) through the
// worker pool, without them. Every run is a fresh instance, as in service.
//
//	go test ./internal/sandbox/worker -run '^$' -bench . -benchtime 3s -count 5

// computeRounds makes the compute guest run for a few tens of milliseconds.
const computeRounds = "4000"

func BenchmarkCompute(b *testing.B) {
	benchModes(b, guest(b, "compute"), sandbox.Call{Entry: sandbox.Train, Input: []byte(computeRounds)})
}

func BenchmarkEcho(b *testing.B) {
	benchModes(b, guest(b, "echo"), sandbox.Call{Entry: sandbox.Recommend, Model: []byte("model"), Input: []byte(recommendInput)})
}

// BenchmarkTiny runs a hand-assembled module with no runtime to start: what
// is left is the cost of a call, in and out of a worker.
func BenchmarkTiny(b *testing.B) {
	benchModes(b, tiny(b), sandbox.Call{Entry: sandbox.Train, Input: []byte("hello")})
}

func benchModes(b *testing.B, m sandbox.Module, c sandbox.Call) {
	b.Run("inprocess-checked", func(b *testing.B) { benchInProcess(b, m, c, true) })
	b.Run("inprocess", func(b *testing.B) { benchInProcess(b, m, c, false) })
	b.Run("worker", func(b *testing.B) {
		p := pool(b)
		ctx := context.Background()
		run := func() error {
			if c.Entry == sandbox.Train {
				_, err := p.Train(ctx, m, c.Input, c.Seed, sandbox.Limits{})
				return err
			}
			_, err := p.Recommend(ctx, m, c.Model, c.Input, c.Seed, sandbox.Limits{})
			return err
		}
		if err := run(); err != nil { // load the module into a worker
			b.Fatal(err)
		}
		for b.Loop() {
			if err := run(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// benchInProcess runs c in this process, each run under a deadline, which
// only a checked Host can enforce. Each mode has its own Host and no shared
// compilation cache: wazero's cache does not tell them apart.
func benchInProcess(b *testing.B, m sandbox.Module, c sandbox.Call, checked bool) {
	ctx := context.Background()
	h, err := sandbox.NewHost(ctx, sandbox.HostConfig{Checked: checked})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close(ctx)
	p, err := h.Compile(ctx, m.Wasm)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close(ctx)
	for b.Loop() {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		out := p.Run(ctx, c)
		cancel()
		if out.Err != nil {
			b.Fatal(out.Err)
		}
	}
}

// BenchmarkVerify is the cost of checking a module against its digest on
// each call: hashing it, or comparing it with a copy verified before.
func BenchmarkVerify(b *testing.B) {
	m := guest(b, "echo")
	b.Run("first", func(b *testing.B) {
		r := &Pool{}
		b.SetBytes(int64(len(m.Wasm)))
		for b.Loop() {
			r.verified = map[[32]byte]*verified{}
			if _, e := r.verify(m); e != nil {
				b.Fatal(e)
			}
		}
	})
	b.Run("known", func(b *testing.B) {
		r := &Pool{verified: map[[32]byte]*verified{}}
		b.SetBytes(int64(len(m.Wasm)))
		for b.Loop() {
			if _, e := r.verify(m); e != nil {
				b.Fatal(e)
			}
		}
	})
}
