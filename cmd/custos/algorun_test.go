package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/custos/custos/internal/algotest"
	"github.com/rogpeppe/go-internal/testscript"
)

// TestAlgorithmScripts runs the scripts in testdata/algorithm, which train
// and run the sample recommender, built from this repository, in the
// server's sandbox: each script's directory holds covisit.wasm and the
// manifest in examples/covisit, and loop.wasm, a module that never returns.
func TestAlgorithmScripts(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the sample recommender and runs it in the sandbox")
	}
	wasm := algotest.Build(t, "./examples/covisit/wasm")
	loop := algotest.Build(t, "./internal/sandbox/testdata/guests/loop")
	manifest, err := os.ReadFile(filepath.Join(algotest.ModuleRoot(t), "examples", "covisit", "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/algorithm",
		RequireExplicitExec: true,
		RequireUniqueNames:  true,
		Setup: func(env *testscript.Env) error {
			if err := os.WriteFile(filepath.Join(env.WorkDir, "covisit.wasm"), wasm, 0o644); err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(env.WorkDir, "loop.wasm"), loop, 0o644); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(env.WorkDir, "manifest.json"), manifest, 0o644)
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"freeport":   cmdFreeport,
			"waithttp":   cmdWaitHTTP,
			"auditcount": cmdAuditCount,
			"replace":    cmdReplace,
			"loaddemo":   cmdLoadDemo,
			"capture":    cmdCapture,
		},
	})
}

// cmdLoadDemo loads the demo's sample users, videos and watch events into
// the server at URL through its API, as the operator's service whose token
// is in FILE.
//
//	loaddemo URL FILE
func cmdLoadDemo(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: loaddemo URL FILE")
	}
	ts.Check(loadDemo(context.Background(), args[0], strings.TrimSpace(ts.ReadFile(args[1]))))
}

// cmdCapture sets VAR to the first group of REGEXP in the last command's
// stdout, which must match.
//
//	capture VAR REGEXP
func cmdCapture(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: capture VAR REGEXP")
	}
	m := regexp.MustCompile(`(?m)` + args[1]).FindStringSubmatch(ts.ReadFile("stdout"))
	if len(m) < 2 {
		ts.Fatalf("stdout does not match %s", args[1])
	}
	ts.Setenv(args[0], m[1])
}
