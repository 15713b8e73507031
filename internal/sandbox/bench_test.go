package sandbox

import (
	"context"
	"testing"

	"github.com/tetratelabs/wazero"
)

// BenchmarkLoad is what a fresh worker pays to load a module: compiling it,
// or reading the code a worker compiled before from a cache directory.
//
//	go test ./internal/sandbox -run '^$' -bench Load
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
		h, err := NewHost(ctx, HostConfig{Cache: cache})
		if err != nil {
			b.Fatal(err)
		}
		defer h.Close(ctx)
		if _, err := h.Compile(ctx, m.Wasm); err != nil {
			b.Fatal(err)
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

// BenchmarkInstance is what every call pays before its entry call: a fresh
// instance of a Go module (echo), initialized, and closing it; with the
// module as it is, or pre-initialized.
//
//	go test ./internal/sandbox -run '^$' -bench Instance -count 5
func BenchmarkInstance(b *testing.B) {
	ctx := context.Background()
	h, err := NewHost(ctx, HostConfig{})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close(ctx)
	wasm := guest(b, "echo").Wasm
	for _, preinit := range []bool{false, true} {
		p, e := h.compile(ctx, wasm, preinit)
		if e != nil {
			b.Fatal(e)
		}
		name := map[bool]string{false: "initialize", true: "preinitialized"}[preinit]
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				in, e := p.start(ctx, 1, defaultMemory/pageSize)
				if e != nil {
					b.Fatal(e)
				}
				in.close(ctx)
			}
		})
	}
}
