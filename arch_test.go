package custos_test

import (
	"go/build"
	"path/filepath"
	"slices"
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
