package sandbox

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
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

// testDir holds the guests built by this test process and the workers'
// compilation cache.
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

var guests sync.Map // name → *guestBuild

type guestBuild struct {
	once sync.Once
	m    Module
	err  error
}

// guest builds testdata/guests/name for wasip1, once per test process.
func guest(t testing.TB, name string) Module {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go is not on PATH: cannot build the test guests")
	}
	v, _ := guests.LoadOrStore(name, &guestBuild{})
	g := v.(*guestBuild)
	g.once.Do(func() { g.m, g.err = buildGuest(goTool, scratchDir(t), name) })
	if g.err != nil {
		t.Fatal(g.err)
	}
	return g.m
}

func buildGuest(goTool, dir, name string) (Module, error) {
	out := filepath.Join(dir, name+".wasm")
	cmd := exec.Command(goTool, "build", "-trimpath", "-buildmode=c-shared", "-o", out, "./testdata/guests/"+name)
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return Module{}, fmt.Errorf("building guest %s: %v\n%s", name, err, msg)
	}
	wasm, err := os.ReadFile(out)
	if err != nil {
		return Module{}, err
	}
	return NewModule(wasm), nil
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
