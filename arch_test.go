package custos_test

import (
	"go/ast"
	"go/build"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/custos/custos"

// imports returns the packages pkg imports, test files excluded: only its
// own imports when direct, else also those through packages of this module.
func imports(t *testing.T, pkg string, direct bool) []string {
	t.Helper()
	seen := map[string]bool{}
	var walk func(string)
	walk = func(p string) {
		if seen[p] {
			return
		}
		seen[p] = true
		if p != module && !strings.HasPrefix(p, module+"/") {
			return
		}
		dir := filepath.Join(".", strings.TrimPrefix(strings.TrimPrefix(p, module), "/"))
		bp, err := build.ImportDir(dir, 0)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		for _, i := range bp.Imports {
			if direct {
				seen[i] = true
				continue
			}
			walk(i)
		}
	}
	walk(pkg)
	delete(seen, pkg)
	out := make([]string, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// TestBoundaries checks the dependency rules the design rests on.
func TestBoundaries(t *testing.T) {
	rules := []struct {
		pkg       string
		direct    bool
		forbidden []string
		why       string
	}{
		{module, false, []string{module + "/", "net/http", "database/sql", "os"}, "the domain package does no I/O and depends on no implementation"},
		{module + "/internal/store/sqlite", false, []string{module + "/internal/vault", module + "/internal/keys", module + "/internal/token"}, "a store only ever holds ciphertext and pseudonyms"},
		{module + "/internal/store/postgres", false, []string{module + "/internal/vault", module + "/internal/keys", module + "/internal/token"}, "a store only ever holds ciphertext and pseudonyms"},
		{module + "/internal/gateway", true, []string{module + "/internal/store", module + "/internal/vault", module + "/internal/keys", "database/sql"}, "the gateway reaches data only through custody"},
		{module + "/internal/policy", false, []string{module + "/internal/vault", module + "/internal/keys", module + "/internal/store", "net/http"}, "decisions see classes, never values"},
		{module + "/internal/vault", false, []string{module + "/internal/store/", "net/http"}, "the vault depends on the Store contract, not on a backend"},
		{module + "/internal/custody", false, []string{module + "/internal/store/", module + "/internal/keys", "net/http"}, "custody depends on contracts, not on backends or HTTP"},
		{module + "/internal/sandbox", false, sandboxForbidden, "the sandbox confines modules and does no I/O: processes are internal/sandbox/worker's"},
	}
	for _, r := range rules {
		for _, imp := range imports(t, r.pkg, r.direct) {
			for _, f := range r.forbidden {
				if imp == f || (strings.HasSuffix(f, "/") && strings.HasPrefix(imp, f)) {
					t.Errorf("%s imports %s: %s", r.pkg, imp, r.why)
				}
			}
		}
	}
}

// sandboxForbidden are the packages through which the sandbox could reach
// files, processes or the network.
var sandboxForbidden = []string{"os", "os/exec", "os/signal", "net", "net/", "io/fs", "plugin", "golang.org/x/sys/", "runtime/cgo"}

// sandboxSyscalls are what of package syscall the sandbox may use: mapping
// memory for modules, nothing that makes, signals or waits for a process.
var sandboxSyscalls = map[string]bool{
	"Mmap": true, "Munmap": true, "PROT_READ": true, "PROT_WRITE": true,
	"MAP_PRIVATE": true, "MAP_ANONYMOUS": true, "MAP_NORESERVE": true,
}

// TestSandboxSyscalls checks every use of package syscall in the sandbox's
// files, for every platform, against sandboxSyscalls.
func TestSandboxSyscalls(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("internal", "sandbox", "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		local := ""
		for _, im := range f.Imports {
			if path, _ := strconv.Unquote(im.Path.Value); path == "syscall" {
				local = "syscall"
				if im.Name != nil {
					local = im.Name.Name
				}
			}
		}
		if local == "" {
			continue
		}
		ast.Inspect(f, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if id, ok := sel.X.(*ast.Ident); ok && id.Name == local && !sandboxSyscalls[sel.Sel.Name] {
				t.Errorf("%s: the sandbox uses syscall.%s: it may only map memory", fset.Position(sel.Pos()), sel.Sel.Name)
			}
			return true
		})
	}
}
