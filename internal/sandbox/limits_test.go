package sandbox

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestLimitsDefaults(t *testing.T) {
	l, err := Limits{}.WithDefaults()
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
		if _, err := bad.WithDefaults(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestForbiddenImport(t *testing.T) {
	e := wantCode(t, Check(context.Background(), guest(t, "forbidden").Wasm), CodeForbiddenImport)
	if !strings.Contains(e.Message, "env.something") {
		t.Errorf("message %q does not name env.something", e.Message)
	}
}

func TestCheckAcceptsGuest(t *testing.T) {
	if err := Check(context.Background(), guest(t, "compute").Wasm); err != nil {
		t.Fatal(err)
	}
}

func TestNewError(t *testing.T) {
	e := NewError(CodeTrap, "bad\x00news"+strings.Repeat("x", 2000), []byte(strings.Repeat("e", 5000)))
	if strings.ContainsRune(e.Message, 0) || len(e.Message) > maxMessage+3 {
		t.Errorf("message %q is not printable and bounded", e.Message)
	}
	if len(e.Stderr) != StderrBytes {
		t.Errorf("Stderr holds %d bytes, want %d", len(e.Stderr), StderrBytes)
	}
}
