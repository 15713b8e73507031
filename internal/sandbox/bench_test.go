package sandbox

import (
	"context"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
)

// The benchmarks behind running modules in worker processes: each module
// runs (a) in this process with wazero's context checks, the other way to
// enforce a deadline, (b) in this process without them, (c) through the
// worker pool, without them. Every run is a fresh instance, as in service.
//
//	go test ./internal/sandbox -run '^$' -bench . -benchtime 20x

// computeRounds makes the compute guest run for a few tens of milliseconds.
const computeRounds = "4000"

func BenchmarkCompute(b *testing.B) {
	benchModes(b, guest(b, "compute"), call{entry: entryTrain, input: []byte(computeRounds)})
}

func BenchmarkEcho(b *testing.B) {
	benchModes(b, guest(b, "echo"), call{entry: entryRecommend, model: []byte("model"), input: []byte(recommendInput)})
}

// BenchmarkTiny runs a hand-assembled module with no runtime to start: what
// is left is the cost of a call, in and out of a worker.
func BenchmarkTiny(b *testing.B) {
	benchModes(b, NewModule(okModule().bytes()), call{entry: entryTrain, input: []byte("hello")})
}

func benchModes(b *testing.B, m Module, c call) {
	c.pages, c.outputBytes = defaultMemory/pageSize, defaultOutput
	b.Run("inprocess-checked", func(b *testing.B) { benchInProcess(b, m, c, true) })
	b.Run("inprocess", func(b *testing.B) { benchInProcess(b, m, c, false) })
	b.Run("worker", func(b *testing.B) {
		r := runner(b)
		ctx := context.Background()
		run := func() error {
			if c.entry == entryTrain {
				_, err := r.Train(ctx, m, c.input, c.seed, Limits{})
				return err
			}
			_, err := r.Recommend(ctx, m, c.model, c.input, c.seed, Limits{})
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
// only a checked runtime can enforce. Each mode has its own runtime and no
// shared compilation cache: wazero's cache does not tell them apart.
func benchInProcess(b *testing.B, m Module, c call, checked bool) {
	ctx := context.Background()
	h, err := newHost(ctx, hostConfig{checked: checked})
	if err != nil {
		b.Fatal(err)
	}
	defer h.close(ctx)
	p, e := h.compile(ctx, m.Wasm)
	if e != nil {
		b.Fatal(e)
	}
	defer p.close(ctx)
	for b.Loop() {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		out := p.run(ctx, c)
		cancel()
		if out.err != nil {
			b.Fatal(out.err)
		}
	}
}

// BenchmarkVerify is the cost of checking a module against its digest on
// each call: hashing it, or comparing it with a copy verified before.
func BenchmarkVerify(b *testing.B) {
	m := guest(b, "echo")
	b.Run("first", func(b *testing.B) {
		r := &Runner{}
		b.SetBytes(int64(len(m.Wasm)))
		for b.Loop() {
			r.verified = map[[32]byte]*verified{}
			if _, e := r.verify(m); e != nil {
				b.Fatal(e)
			}
		}
	})
	b.Run("known", func(b *testing.B) {
		r := &Runner{verified: map[[32]byte]*verified{}}
		b.SetBytes(int64(len(m.Wasm)))
		for b.Loop() {
			if _, e := r.verify(m); e != nil {
				b.Fatal(e)
			}
		}
	})
}

// BenchmarkLoad is what a fresh worker pays to load a module: compiling it,
// or reading the code a worker compiled before from Config.CacheDir.
func BenchmarkLoad(b *testing.B) {
	m := guest(b, "echo")
	ctx := context.Background()
	load := func(b *testing.B, dir string) {
		b.Helper()
		cache := wazero.CompilationCache(nil)
		if dir != "" {
			var err error
			if cache, err = wazero.NewCompilationCacheWithDir(dir); err != nil {
				b.Fatal(err)
			}
			defer cache.Close(ctx)
		}
		h, err := newHost(ctx, hostConfig{cache: cache})
		if err != nil {
			b.Fatal(err)
		}
		defer h.close(ctx)
		if _, e := h.compile(ctx, m.Wasm); e != nil {
			b.Fatal(e)
		}
	}
	b.Run("compile", func(b *testing.B) {
		for b.Loop() {
			load(b, "")
		}
	})
	b.Run("cached", func(b *testing.B) {
		dir := b.TempDir()
		load(b, dir) // fill the cache
		for b.Loop() {
			load(b, dir)
		}
	})
}
