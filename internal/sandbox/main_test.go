package sandbox

import (
	"context"
	"errors"
	"testing"

	"github.com/custos/custos/internal/algotest"
)

// guest returns the module built from testdata/guests/name, once per test
// process.
func guest(t testing.TB, name string) Module {
	t.Helper()
	return NewModule(algotest.Build(t, "./internal/sandbox/testdata/guests/"+name))
}

// run makes c in a fresh instance of wasm on an unchecked Host.
func run(t testing.TB, wasm []byte, c Call) Outcome {
	t.Helper()
	ctx := context.Background()
	h, err := NewHost(ctx, HostConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(ctx)
	p, err := h.Compile(ctx, wasm)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	return p.Run(ctx, c)
}

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
