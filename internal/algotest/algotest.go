// Package algotest builds algorithm modules from this module's source for
// tests, with the go tool on PATH, the way an operator builds them:
//
//	GOOS=wasip1 GOARCH=wasm go build -trimpath -buildmode=c-shared -buildvcs=false
//
// -buildvcs=false keeps the state of a checkout (its commit, uncommitted
// edits) out of the module, so that its bytes depend on the source alone.
// Nothing in it is for production use: custos bench builds the sample
// recommender it measures with Compile, and tests use the rest.
package algotest

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

// built caches one build per package for the process, since a build takes
// seconds and many tests want the same module.
var built struct {
	sync.Mutex
	m map[string]*build
}

type build struct {
	once sync.Once
	wasm []byte
	err  string // the failed build's output
}

// Build returns the module built from pkg, a package path relative to the
// module root such as "./examples/covisit/wasm", building it once per
// process. It skips tb if the go tool is not on PATH.
func Build(tb testing.TB, pkg string) []byte {
	tb.Helper()
	root := ModuleRoot(tb)
	built.Lock()
	if built.m == nil {
		built.m = make(map[string]*build)
	}
	b := built.m[pkg]
	if b == nil {
		b = new(build)
		built.m[pkg] = b
	}
	built.Unlock()
	b.once.Do(func() {
		b.wasm, b.err = compile(root, pkg, tb.TempDir())
	})
	if b.err != "" {
		tb.Fatalf("couldn't build %s: %s", pkg, b.err)
	}
	return b.wasm
}

// BuildFresh builds pkg as Build does, but every time, into a new
// directory, with env added to the go tool's environment. It is for tests
// of the build itself, such as its reproducibility.
func BuildFresh(tb testing.TB, pkg string, env ...string) []byte {
	tb.Helper()
	wasm, err := compile(ModuleRoot(tb), pkg, tb.TempDir(), env...)
	if err != "" {
		tb.Fatalf("couldn't build %s: %s", pkg, err)
	}
	return wasm
}

// Compile builds pkg, a package path relative to the module root, into dir
// as Build does, with env added to the go tool's environment, and returns
// the module. The module root is found from the working directory, which
// must be inside a checkout of this module, and the go tool must be on
// PATH.
func Compile(pkg, dir string, env ...string) ([]byte, error) {
	if _, err := exec.LookPath("go"); err != nil {
		return nil, errors.New("the go tool is not on PATH")
	}
	root, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	wasm, out := compile(root, pkg, dir, env...)
	if out != "" {
		return nil, fmt.Errorf("couldn't build %s: %s", pkg, strings.TrimSpace(out))
	}
	return wasm, nil
}

// Root returns the directory of this module's go.mod, found from the
// working directory with the go tool.
func Root() (string, error) { return moduleRoot() }

// ModuleRoot returns the directory of this module's go.mod. It skips tb if
// the go tool is not on PATH.
func ModuleRoot(tb testing.TB) string {
	tb.Helper()
	goTool(tb)
	root, err := moduleRoot()
	if err != nil {
		tb.Fatal(err)
	}
	return root
}

var moduleRoot = sync.OnceValues(func() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("couldn't run go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("not inside a Go module: go env GOMOD is %q", gomod)
	}
	return filepath.Dir(gomod), nil
})

func goTool(tb testing.TB) {
	tb.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		tb.Skip("the go tool is not on PATH: it builds the WebAssembly modules under test")
	}
}

// compile builds pkg into dir and returns the module, or the go tool's
// output if the build failed.
func compile(root, pkg, dir string, env ...string) ([]byte, string) {
	out := filepath.Join(dir, "module.wasm")
	cmd := exec.Command("go", "build", "-trimpath", "-buildmode=c-shared", "-buildvcs=false", "-o", out, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	cmd.Env = append(cmd.Env, env...)
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Run(); err != nil {
		return nil, err.Error() + "\n" + output.String()
	}
	wasm, err := os.ReadFile(out)
	if err != nil {
		return nil, err.Error()
	}
	return wasm, ""
}

// NewKey returns a new note key named name, as custos algo keygen makes
// one: its signer and its verifier key text.
func NewKey(tb testing.TB, name string) (note.Signer, string) {
	tb.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		tb.Fatal(err)
	}
	return s, vkey
}
