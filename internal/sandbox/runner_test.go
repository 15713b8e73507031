package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go/build"
	"strings"
	"sync"
	"testing"
	"time"
)

// wantCode fails t unless err is an *Error with code.
func wantCode(t testing.TB, err error, code Code) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("got error %v, want an *Error with code %s", err, code)
	}
	if e.Code != code {
		t.Fatalf("got %v, want code %s", err, code)
	}
	return e
}

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
	r, echo := runner(t), guest(t, "echo")
	ctx := context.Background()
	input := []byte(`{"abi":1,"seed":"1","collections":{}}`)
	model, err := r.Train(ctx, echo, input, 1, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(model, input) {
		t.Fatalf("train returned %q, want its input", model)
	}
	out := func(seed uint64) []byte {
		out, err := r.Recommend(ctx, echo, []byte("model-1"), []byte(recommendInput), seed, Limits{})
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
	r := runner(t)
	loop, echo := guest(t, "loop"), guest(t, "echo")
	ctx := context.Background()
	_, err := r.Train(ctx, loop, []byte("x"), 1, Limits{Timeout: time.Second})
	wantCode(t, err, CodeTimeout)
	if _, err := r.Train(ctx, echo, []byte("after"), 1, Limits{}); err != nil {
		t.Fatalf("echo after a timeout: %v", err)
	}
}

func TestContextCancelStopsRun(t *testing.T) {
	r, loop := runner(t), guest(t, "loop")
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	_, err := r.Recommend(ctx, loop, nil, []byte("x"), 1, Limits{Timeout: time.Minute})
	wantCode(t, err, CodeTimeout)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want it to wrap context.Canceled", err)
	}
}

func TestGrowHitsMemoryLimit(t *testing.T) {
	r, grow := runner(t), guest(t, "grow")
	_, err := r.Train(context.Background(), grow, []byte("x"), 1, Limits{MemoryBytes: 32 << 20})
	e := wantCode(t, err, CodeMemoryLimit)
	if !strings.Contains(e.Message, fmt.Sprint(32<<20)) {
		t.Errorf("message %q does not name the limit", e.Message)
	}
}

func TestInputsOverMemoryLimit(t *testing.T) {
	r, echo := runner(t), guest(t, "echo")
	_, err := r.Train(context.Background(), echo, make([]byte, 2<<20), 1, Limits{MemoryBytes: 1 << 20})
	wantCode(t, err, CodeMemoryLimit)
}

func TestTrap(t *testing.T) {
	r, trap := runner(t), guest(t, "trap")
	ctx := context.Background()
	secret := "tok_4f1d-secret-input"
	_, err := r.Train(ctx, trap, []byte(secret), 1, Limits{})
	e := wantCode(t, err, CodeTrap)
	if strings.Contains(e.Error(), secret) {
		t.Errorf("error %q holds input bytes", e.Error())
	}
	if !strings.Contains(e.Stderr, "panic: trap guest got") {
		t.Errorf("Stderr = %q, want the module's panic", e.Stderr)
	}
	_, err = r.Recommend(ctx, trap, nil, []byte("x"), 1, Limits{})
	e = wantCode(t, err, CodeTrap)
	if !strings.Contains(e.Stderr, "integer divide by zero") {
		t.Errorf("Stderr = %q, want the module's panic", e.Stderr)
	}
}

func TestBadOutput(t *testing.T) {
	r, bad := runner(t), guest(t, "badout")
	ctx := context.Background()
	_, err := r.Train(ctx, bad, []byte("x"), 1, Limits{})
	e := wantCode(t, err, CodeTrap)
	if e.Stderr != strings.Repeat("e", stderrBytes) {
		t.Errorf("Stderr holds %d bytes, want the first %d the module wrote", len(e.Stderr), stderrBytes)
	}
	_, err = r.Recommend(ctx, bad, nil, []byte("x"), 1, Limits{})
	wantCode(t, err, CodeOutputTooLarge)
	if _, err := r.Recommend(ctx, bad, nil, []byte("x"), 1, Limits{OutputBytes: 4 << 20}); err != nil {
		t.Errorf("2 MiB under a 4 MiB limit: %v", err)
	}
}

func TestForbiddenImport(t *testing.T) {
	m := guest(t, "forbidden")
	e := wantCode(t, Check(context.Background(), m.Wasm), CodeForbiddenImport)
	if !strings.Contains(e.Message, "env.something") {
		t.Errorf("message %q does not name env.something", e.Message)
	}
	_, err := runner(t).Train(context.Background(), m, nil, 1, Limits{})
	wantCode(t, err, CodeForbiddenImport)
}

func TestMissingExport(t *testing.T) {
	r, m := runner(t), guest(t, "noabi")
	_, err := r.Train(context.Background(), m, nil, 1, Limits{})
	e := wantCode(t, err, CodeInvalidModule)
	if !strings.Contains(e.Message, exportRecommend) {
		t.Errorf("message %q does not name %s", e.Message, exportRecommend)
	}
	// Refused again without a worker compiling it again.
	v, _ := r.verify(m)
	if r.rejected(v) == nil {
		t.Error("the refusal is not remembered")
	}
	_, err = r.Recommend(context.Background(), m, nil, nil, 1, Limits{})
	wantCode(t, err, CodeInvalidModule)
}

func TestCheckAcceptsGuest(t *testing.T) {
	if err := Check(context.Background(), guest(t, "compute").Wasm); err != nil {
		t.Fatal(err)
	}
}

// TestDigestMismatch runs two valid modules one bit apart: each runs under
// its own digest, neither under the other's.
func TestDigestMismatch(t *testing.T) {
	r := runner(t)
	a := appendCustomSection(okModule().bytes(), "pad", []byte{0})
	b := appendCustomSection(okModule().bytes(), "pad", []byte{1})
	ctx := context.Background()
	for _, m := range []Module{NewModule(a), NewModule(b)} {
		if _, err := r.Train(ctx, m, []byte("in"), 1, Limits{}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := r.Train(ctx, Module{Digest: NewModule(a).Digest, Wasm: b}, []byte("in"), 1, Limits{})
	e := wantCode(t, err, CodeInvalidModule)
	if !strings.Contains(e.Message, "digest") {
		t.Errorf("message %q does not say the digest differs", e.Message)
	}
	// The runner keeps a verified copy of a; a caller's later change to the
	// bytes it hands over must not slip past it.
	c := bytes.Clone(a)
	c[len(c)-1] ^= 1
	_, err = r.Train(ctx, Module{Digest: NewModule(a).Digest, Wasm: c}, []byte("in"), 1, Limits{})
	wantCode(t, err, CodeInvalidModule)
}

func TestConcurrentCalls(t *testing.T) {
	r, echo := runner(t), guest(t, "echo")
	ctx := context.Background()
	want := map[uint64][]byte{}
	for seed := range uint64(4) {
		out, err := r.Recommend(ctx, echo, []byte("m"), []byte(recommendInput), seed, Limits{})
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
				out, err := r.Recommend(ctx, echo, []byte("m"), []byte(recommendInput), seed, Limits{})
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

func TestLimitsDefaults(t *testing.T) {
	l, err := Limits{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if l.MemoryBytes != 256<<20 || l.Timeout != 10*time.Second || l.OutputBytes != 1<<20 {
		t.Errorf("defaults are %+v", l)
	}
	for _, tc := range []struct {
		bytes uint64
		pages uint32
	}{{1, 1}, {pageSize, 1}, {pageSize*3 - 1, 2}, {256 << 20, 4096}} {
		if got := (Limits{MemoryBytes: tc.bytes}).pages(); got != tc.pages {
			t.Errorf("%d bytes: %d pages, want %d", tc.bytes, got, tc.pages)
		}
	}
	for _, bad := range []Limits{{MemoryBytes: 4<<30 + 1}, {Timeout: -1}, {OutputBytes: -1}, {OutputBytes: 2 << 30}} {
		if _, err := bad.withDefaults(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// TestNoNetwork guards what the package may reach for: WASI preview 1 has
// no sockets, and the host side has no business with the network either.
func TestNoNetwork(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range pkg.Imports {
		if imp == "net" || strings.HasPrefix(imp, "net/") {
			t.Errorf("the sandbox imports %s", imp)
		}
	}
}
