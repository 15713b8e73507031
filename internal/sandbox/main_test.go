package sandbox

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/custos/custos/internal/algotest"
)

func TestMain(m *testing.M) {
	MaybeWorker()
	code := m.Run()
	if sharedRunner != nil {
		sharedRunner.Close()
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

// guest returns the module built from testdata/guests/name, once per test
// process.
func guest(t testing.TB, name string) Module {
	t.Helper()
	return NewModule(algotest.Build(t, "./internal/sandbox/testdata/guests/"+name))
}

var (
	sharedOnce   sync.Once
	sharedRunner *Runner
	sharedErr    error
)

// runner returns a Runner shared by the tests of this process.
func runner(t testing.TB) *Runner {
	t.Helper()
	sharedOnce.Do(func() {
		sharedRunner, sharedErr = New(Config{
			Workers:  2,
			CacheDir: filepath.Join(scratchDir(t), "cache"),
			Logger:   quietLogger(),
		})
	})
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return sharedRunner
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
