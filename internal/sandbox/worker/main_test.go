package worker

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/custos/custos/internal/algotest"
	"github.com/custos/custos/internal/sandbox"
)

func TestMain(m *testing.M) {
	MaybeRun()
	code := m.Run()
	if sharedPool != nil {
		sharedPool.Close()
	}
	if testDir != "" {
		os.RemoveAll(testDir)
	}
	os.Exit(code)
}

// testDir holds the workers' compilation cache.
var (
	testDirOnce sync.Once
	testDir     string
	testDirErr  error
)

func scratchDir(t testing.TB) string {
	t.Helper()
	testDirOnce.Do(func() { testDir, testDirErr = os.MkdirTemp("", "sandbox-test-") })
	if testDirErr != nil {
		t.Fatal(testDirErr)
	}
	return testDir
}

// guest returns the module built from the sandbox's testdata/guests/name,
// once per test process.
func guest(t testing.TB, name string) sandbox.Module {
	t.Helper()
	return sandbox.NewModule(algotest.Build(t, "./internal/sandbox/testdata/guests/"+name))
}

// tiny returns the smallest module that follows the ABI, hand-assembled:
// its train returns its input in place and its recommend traps.
func tiny(t testing.TB) sandbox.Module {
	t.Helper()
	wasm, err := os.ReadFile("../testdata/tiny.wasm")
	if err != nil {
		t.Fatal(err)
	}
	return sandbox.NewModule(wasm)
}

var (
	sharedOnce sync.Once
	sharedPool *Pool
	sharedErr  error
)

// pool returns a Pool shared by the tests of this process.
func pool(t testing.TB) *Pool {
	t.Helper()
	sharedOnce.Do(func() {
		sharedPool, sharedErr = New(Config{
			Workers:  2,
			CacheDir: filepath.Join(scratchDir(t), "cache"),
			Logger:   quietLogger(),
		})
	})
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return sharedPool
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// wantCode fails t unless err is a *sandbox.Error with code.
func wantCode(t testing.TB, err error, code sandbox.Code) *sandbox.Error {
	t.Helper()
	var e *sandbox.Error
	if !errors.As(err, &e) {
		t.Fatalf("got error %v, want a *sandbox.Error with code %s", err, code)
	}
	if e.Code != code {
		t.Fatalf("got %v, want code %s", err, code)
	}
	return e
}
