package algotest_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/custos/custos/internal/algotest"
)

func TestModuleRoot(t *testing.T) {
	root := algotest.ModuleRoot(t)
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "internal", "algotest")); err != nil {
		t.Fatalf("%s is not this module's root: %v", root, err)
	}
}

func TestBuild(t *testing.T) {
	const pkg = "./examples/covisit/wasm"
	a := algotest.Build(t, pkg)
	if !bytes.HasPrefix(a, []byte("\x00asm\x01\x00\x00\x00")) {
		t.Fatalf("not a WebAssembly 1 module: % x", a[:min(8, len(a))])
	}
	if b := algotest.Build(t, pkg); &a[0] != &b[0] {
		t.Error("the second Build built again")
	}
}
