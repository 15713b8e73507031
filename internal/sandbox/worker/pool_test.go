package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custos/custos/internal/sandbox"
)

const recommendInput = `{"abi":1,"seed":"7","subject":"tok_subject","k":3,"history":{}}`

func recommendItems(t testing.TB, out []byte) []string {
	t.Helper()
	var v struct{ Items []string }
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	return v.Items
}

func TestEcho(t *testing.T) {
	r, echo := pool(t), guest(t, "echo")
	ctx := context.Background()
	input := []byte(`{"abi":1,"seed":"1","collections":{}}`)
	model, err := r.Train(ctx, echo, input, 1, sandbox.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(model, input) {
		t.Fatalf("train returned %q, want its input", model)
	}
	out := func(seed uint64) []byte {
		out, err := r.Recommend(ctx, echo, []byte("model-1"), []byte(recommendInput), seed, sandbox.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	first := out(42)
	items := recommendItems(t, first)
	if len(items) != 3 || items[0] != "tok_subject" || items[1] != "model-1" || len(items[2]) != 16 {
		t.Fatalf("recommend returned %q", first)
	}
	if again := out(42); !bytes.Equal(first, again) {
		t.Errorf("same seed, different outputs: %q and %q", first, again)
	}
	if other := out(43); bytes.Equal(first, other) {
		t.Errorf("seeds 42 and 43 gave the same output %q", first)
	}
}

func TestLoopTimesOut(t *testing.T) {
	r := pool(t)
	loop, echo := guest(t, "loop"), guest(t, "echo")
	ctx := context.Background()
	_, err := r.Train(ctx, loop, []byte("x"), 1, sandbox.Limits{Timeout: time.Second})
	wantCode(t, err, sandbox.CodeTimeout)
	if _, err := r.Train(ctx, echo, []byte("after"), 1, sandbox.Limits{}); err != nil {
		t.Fatalf("echo after a timeout: %v", err)
	}
}

func TestContextCancelStopsRun(t *testing.T) {
	r, loop := pool(t), guest(t, "loop")
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	_, err := r.Recommend(ctx, loop, nil, []byte("x"), 1, sandbox.Limits{Timeout: time.Minute})
	wantCode(t, err, sandbox.CodeTimeout)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want it to wrap context.Canceled", err)
	}
}

func TestGrowHitsMemoryLimit(t *testing.T) {
	r, grow := pool(t), guest(t, "grow")
	_, err := r.Train(context.Background(), grow, []byte("x"), 1, sandbox.Limits{MemoryBytes: 32 << 20})
	e := wantCode(t, err, sandbox.CodeMemoryLimit)
	if !strings.Contains(e.Message, fmt.Sprint(32<<20)) {
		t.Errorf("message %q does not name the limit", e.Message)
	}
}

func TestInputsOverMemoryLimit(t *testing.T) {
	r, echo := pool(t), guest(t, "echo")
	_, err := r.Train(context.Background(), echo, make([]byte, 2<<20), 1, sandbox.Limits{MemoryBytes: 1 << 20})
	wantCode(t, err, sandbox.CodeMemoryLimit)
}

func TestTrap(t *testing.T) {
	r, trap := pool(t), guest(t, "trap")
	ctx := context.Background()
	secret := "tok_4f1d-secret-input"
	_, err := r.Train(ctx, trap, []byte(secret), 1, sandbox.Limits{})
	e := wantCode(t, err, sandbox.CodeTrap)
	if strings.Contains(e.Error(), secret) {
		t.Errorf("error %q holds input bytes", e.Error())
	}
	if !strings.Contains(e.Stderr, "panic: trap guest got") {
		t.Errorf("Stderr = %q, want the module's panic", e.Stderr)
	}
	_, err = r.Recommend(ctx, trap, nil, []byte("x"), 1, sandbox.Limits{})
	e = wantCode(t, err, sandbox.CodeTrap)
	if !strings.Contains(e.Stderr, "integer divide by zero") {
		t.Errorf("Stderr = %q, want the module's panic", e.Stderr)
	}
}

func TestBadOutput(t *testing.T) {
	r, bad := pool(t), guest(t, "badout")
	ctx := context.Background()
	_, err := r.Train(ctx, bad, []byte("x"), 1, sandbox.Limits{})
	e := wantCode(t, err, sandbox.CodeTrap)
	if e.Stderr != strings.Repeat("e", sandbox.StderrBytes) {
		t.Errorf("Stderr holds %d bytes, want the first %d the module wrote", len(e.Stderr), sandbox.StderrBytes)
	}
	_, err = r.Recommend(ctx, bad, nil, []byte("x"), 1, sandbox.Limits{})
	wantCode(t, err, sandbox.CodeOutputTooLarge)
	if _, err := r.Recommend(ctx, bad, nil, []byte("x"), 1, sandbox.Limits{OutputBytes: 4 << 20}); err != nil {
		t.Errorf("2 MiB under a 4 MiB limit: %v", err)
	}
}

func TestForbiddenImport(t *testing.T) {
	_, err := pool(t).Train(context.Background(), guest(t, "forbidden"), nil, 1, sandbox.Limits{})
	e := wantCode(t, err, sandbox.CodeForbiddenImport)
	if !strings.Contains(e.Message, "env.something") {
		t.Errorf("message %q does not name env.something", e.Message)
	}
}

func TestMissingExport(t *testing.T) {
	r, m := pool(t), guest(t, "noabi")
	_, err := r.Train(context.Background(), m, nil, 1, sandbox.Limits{})
	e := wantCode(t, err, sandbox.CodeInvalidModule)
	if !strings.Contains(e.Message, "custos_recommend") {
		t.Errorf("message %q does not name custos_recommend", e.Message)
	}
	// Refused again without a worker compiling it again.
	v, _ := r.verify(m)
	if r.rejected(v) == nil {
		t.Error("the refusal is not remembered")
	}
	_, err = r.Recommend(context.Background(), m, nil, nil, 1, sandbox.Limits{})
	wantCode(t, err, sandbox.CodeInvalidModule)
}

// TestDigestMismatch runs two valid modules one bit apart: each runs under
// its own digest, neither under the other's.
func TestDigestMismatch(t *testing.T) {
	r := pool(t)
	pad := func(b byte) []byte { // a custom section "pad" holding b
		return append(bytes.Clone(tiny(t).Wasm), 0, 5, 3, 'p', 'a', 'd', b)
	}
	a, b := pad(0), pad(1)
	ctx := context.Background()
	for _, m := range []sandbox.Module{sandbox.NewModule(a), sandbox.NewModule(b)} {
		if _, err := r.Train(ctx, m, []byte("in"), 1, sandbox.Limits{}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := r.Train(ctx, sandbox.Module{Digest: sandbox.NewModule(a).Digest, Wasm: b}, []byte("in"), 1, sandbox.Limits{})
	e := wantCode(t, err, sandbox.CodeInvalidModule)
	if !strings.Contains(e.Message, "digest") {
		t.Errorf("message %q does not say the digest differs", e.Message)
	}
	// The runner keeps a verified copy of a; a caller's later change to the
	// bytes it hands over must not slip past it.
	c := bytes.Clone(a)
	c[len(c)-1] ^= 1
	_, err = r.Train(ctx, sandbox.Module{Digest: sandbox.NewModule(a).Digest, Wasm: c}, []byte("in"), 1, sandbox.Limits{})
	wantCode(t, err, sandbox.CodeInvalidModule)
}

func TestConcurrentCalls(t *testing.T) {
	r, echo := pool(t), guest(t, "echo")
	ctx := context.Background()
	want := map[uint64][]byte{}
	for seed := range uint64(4) {
		out, err := r.Recommend(ctx, echo, []byte("m"), []byte(recommendInput), seed, sandbox.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		want[seed] = out
	}
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Go(func() {
			for i := range 4 {
				seed := uint64(g+i) % 4
				out, err := r.Recommend(ctx, echo, []byte("m"), []byte(recommendInput), seed, sandbox.Limits{})
				if err != nil {
					t.Error(err)
					return
				}
				if !bytes.Equal(out, want[seed]) {
					t.Errorf("seed %d: got %q, want %q", seed, out, want[seed])
				}
			}
		})
	}
	wg.Wait()
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within a minute")
		}
	}
}

// TestRunHandAssembled runs a module that is not Go, so that the calling
// sequence is seen without a Go runtime in between.
func TestRunHandAssembled(t *testing.T) {
	m, p := tiny(t), pool(t)
	out, err := p.Train(context.Background(), m, []byte("hello"), 0, sandbox.Limits{})
	if err != nil || string(out) != "hello" {
		t.Fatalf("train = %q, %v", out, err)
	}
	_, err = p.Recommend(context.Background(), m, []byte("m"), []byte("i"), 0, sandbox.Limits{})
	wantCode(t, err, sandbox.CodeTrap)
}
