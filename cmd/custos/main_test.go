package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/custos/custos"
	"github.com/custos/custos/internal/auditlog"
	"github.com/custos/custos/internal/sandbox/worker"
	"github.com/custos/custos/internal/verifier"
	"github.com/rogpeppe/go-internal/testscript"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// TestMain lets the scripts run the real program as "custos": the test
// binary, started under that name, runs Main.
func TestMain(m *testing.M) {
	// The server's sandbox starts its workers from this binary.
	worker.MaybeRun()
	testscript.Main(m, map[string]func(){
		"custos": func() {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			code := Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
			stop()
			os.Exit(code)
		},
	})
}

// TestScripts runs the end-to-end scripts in testdata/script.
func TestScripts(t *testing.T) {
	t.Parallel()
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		RequireUniqueNames:  true,
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"freeport":   cmdFreeport,
			"waithttp":   cmdWaitHTTP,
			"auditcount": cmdAuditCount,
			"cosigned":   cmdCosigned,
			"tamper":     cmdTamper,
			"http":       cmdHTTP,
			"mode":       cmdMode,
			"replace":    cmdReplace,
			"signal":     cmdSignal,
			"receipt":    cmdReceipt,
			"sleep":      cmdSleep,
			"capture":    cmdCapture,
		},
	})
}

// cmdFreeport sets the variable named by its argument to a local address
// with a port nothing listens on.
//
//	freeport VAR
func cmdFreeport(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: freeport VAR")
	}
	addr, err := freeAddr()
	ts.Check(err)
	ts.Setenv(args[0], addr)
}

// freeAddr returns a local address with a port nothing listens on.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	return ln.Addr().String(), ln.Close()
}

// cmdWaitHTTP polls a URL until it answers 200, for up to 10 seconds.
//
//	waithttp URL
func cmdWaitHTTP(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: waithttp URL")
	}
	if err := waitHTTP(args[0]); err != nil {
		ts.Fatalf("%v", err)
	}
}

// waitHTTP polls url until it answers 200, for up to 10 seconds, and
// otherwise returns the last answer or failure.
func waitHTTP(url string) error {
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(10 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer 200 within 10s: %s", url, last)
}

// cmdHTTP makes a request and prints the response body to stdout and the
// status to stderr. It fails unless the status is the wanted one (200 by
// default). With --until, it repeats the request for up to 10 seconds until
// the body contains the text.
//
//	http METHOD URL [--token-file FILE] [--purpose P] [--body FILE] [--want STATUS] [--until TEXT]
func cmdHTTP(ts *testscript.TestScript, neg bool, args []string) {
	const use = "usage: http METHOD URL [--token-file FILE] [--purpose P] [--body FILE] [--want STATUS] [--until TEXT]"
	if neg {
		ts.Fatalf("unsupported: ! http; use --want STATUS")
	}
	var pos []string
	opts := map[string]string{}
	for i := 0; i < len(args); i++ {
		switch a := args[i]; a {
		case "--token-file", "--purpose", "--body", "--want", "--until":
			if i+1 == len(args) {
				ts.Fatalf("%s", use)
			}
			opts[a] = args[i+1]
			i++
		default:
			if strings.HasPrefix(a, "--") {
				ts.Fatalf("unknown flag %s; %s", a, use)
			}
			pos = append(pos, a)
		}
	}
	if len(pos) != 2 {
		ts.Fatalf("%s", use)
	}
	want := http.StatusOK
	if w, ok := opts["--want"]; ok {
		n, err := strconv.Atoi(w)
		ts.Check(err)
		want = n
	}
	until, repeat := opts["--until"]
	deadline := time.Now().Add(10 * time.Second)
	for {
		status, out := doHTTP(ts, pos[0], pos[1], opts)
		done := !repeat || (status == want && strings.Contains(string(out), until))
		if done || time.Now().After(deadline) {
			ts.Stdout().Write(out)
			fmt.Fprintf(ts.Stderr(), "%d %s\n", status, http.StatusText(status))
			if status != want {
				ts.Fatalf("%s %s: status %d, want %d: %s", pos[0], pos[1], status, want, out)
			}
			if !done {
				ts.Fatalf("%s %s: no %q in the body within 10s: %s", pos[0], pos[1], until, out)
			}
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func doHTTP(ts *testscript.TestScript, method, url string, opts map[string]string) (status int, body []byte) {
	var rd io.Reader
	if f, ok := opts["--body"]; ok {
		rd = strings.NewReader(ts.ReadFile(f))
	}
	req, err := http.NewRequest(method, url, rd)
	ts.Check(err)
	if f, ok := opts["--token-file"]; ok {
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(ts.ReadFile(f)))
	}
	if p, ok := opts["--purpose"]; ok {
		req.Header.Set("Custos-Purpose", p)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	ts.Check(err)
	defer resp.Body.Close()
	body, err = io.ReadAll(resp.Body)
	ts.Check(err)
	return resp.StatusCode, body
}

// cmdSleep waits for a duration, for effects the script cannot observe.
//
//	sleep 200ms
func cmdSleep(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: sleep DURATION")
	}
	d, err := time.ParseDuration(args[0])
	ts.Check(err)
	time.Sleep(d)
}

// cmdMode checks a file's permission bits.
//
//	mode FILE 0600
func cmdMode(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: mode FILE PERM")
	}
	want, err := strconv.ParseUint(args[1], 8, 32)
	ts.Check(err)
	fi, err := os.Stat(ts.MkAbs(args[0]))
	ts.Check(err)
	got := fi.Mode().Perm()
	if (got == os.FileMode(want)) == neg {
		ts.Fatalf("%s has mode %#o", args[0], got)
	}
}

// cmdReplace replaces every occurrence of OLD in a file with NEW; OLD must
// occur. In both, \n stands for a line break.
//
//	replace FILE OLD NEW
func cmdReplace(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: replace FILE OLD NEW")
	}
	path := ts.MkAbs(args[0])
	data, err := os.ReadFile(path)
	ts.Check(err)
	from, to := unescape(args[1]), unescape(args[2])
	if !bytes.Contains(data, from) {
		ts.Fatalf("%s does not contain %q", args[0], from)
	}
	data = bytes.ReplaceAll(data, from, to)
	ts.Check(os.WriteFile(path, data, 0o644))
}

func unescape(s string) []byte { return []byte(strings.ReplaceAll(s, `\n`, "\n")) }

// cmdSignal sends a signal to the commands running in the background.
//
//	signal HUP
func cmdSignal(ts *testscript.TestScript, neg bool, args []string) {
	sigs := map[string]os.Signal{"HUP": syscall.SIGHUP, "INT": os.Interrupt, "TERM": syscall.SIGTERM}
	if neg || len(args) != 1 || sigs[args[0]] == nil {
		ts.Fatalf("usage: signal HUP|INT|TERM")
	}
	cmds := ts.BackgroundCmds()
	if len(cmds) == 0 {
		ts.Fatalf("no command runs in the background")
	}
	for _, c := range cmds {
		ts.Check(c.Process.Signal(sigs[args[0]]))
	}
}

// cmdReceipt verifies the erasure receipt in the JSON body on stdout with
// the verifier key in VKEY and prints the signed text to stdout.
//
//	receipt VKEY
func cmdReceipt(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: receipt VKEY")
	}
	var body struct {
		Receipt string `json:"receipt"`
	}
	ts.Check(json.Unmarshal([]byte(ts.ReadFile("stdout")), &body))
	v, err := note.NewVerifier(strings.TrimSpace(ts.ReadFile(args[0])))
	ts.Check(err)
	n, err := note.Open([]byte(body.Receipt), note.VerifierList(v))
	if neg {
		if err == nil {
			ts.Fatalf("the receipt verifies with %s", args[0])
		}
		return
	}
	ts.Check(err)
	fmt.Fprint(ts.Stdout(), n.Text)
}

// TestExitCodes checks what the scripts cannot: command-line mistakes exit
// 2 with the usage, failures exit 1, help exits 0.
func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args           []string
		code           int
		stdout, stderr string
	}{
		{nil, 2, "", "Usage:\n    custos init DIR"},
		{[]string{"help"}, 0, "Usage:\n    custos init DIR", ""},
		{[]string{"--help"}, 0, "Example:", ""},
		{[]string{"frobnicate"}, 2, "", `unknown command "frobnicate"`},
		{[]string{"init"}, 2, "", "Usage: custos init DIR"},
		{[]string{"init", dir + "/x", "--jurisdiction", "us"}, 1, "", "--jurisdiction must be an ISO 3166-1 alpha-2 code"},
		{[]string{"init", dir + "/y", "--nope"}, 2, "", "flag provided but not defined: -nope"},
		{[]string{"serve"}, 2, "", "Usage: custos serve"},
		{[]string{"serve", "--config", dir + "/none/custos.yaml", "--listen", "127.0.0.1:0"}, 1, "", "custos init DIR"},
		{[]string{"token"}, 2, "", "Usage: custos token mint"},
		{[]string{"token", "mint", "--sub", "x"}, 2, "", "Usage: custos token mint"},
		{[]string{"token", "mint", "-h"}, 2, "", "Usage: custos token mint"},
		{[]string{"keys"}, 2, "", "Usage: custos keys rotate"},
		{[]string{"keys", "rotate"}, 2, "", "Usage: custos keys rotate"},
		{[]string{"policy"}, 2, "", "Usage: custos policy test"},
		{[]string{"policy", "test", "--config", "c.yaml"}, 2, "", "Usage: custos policy test"},
		{[]string{"governance"}, 2, "", "Usage: custos governance keygen"},
		{[]string{"propose", "--server", "http://x", "--token", "t", "--kind", "policy", "--file", "f"}, 2, "", "Usage: custos propose"},
		{[]string{"propose", "--server", "http://x", "--token", "t", "--kind", "storage", "--file", "f"}, 2, "", "Usage: custos propose"},
		{[]string{"approve", "--proposal", "0123456789abcdef"}, 2, "", "Usage: custos approve"},
		{[]string{"suspend", "--server", "http://x", "--token", "t", "--key", "k"}, 2, "", "Usage: custos suspend"},
		{[]string{"lift"}, 2, "", "Usage: custos lift"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := Main(context.Background(), tc.args, &stdout, &stderr)
			if code != tc.code {
				t.Errorf("exit %d, want %d\nstderr:\n%s", code, tc.code, &stderr)
			}
			if !strings.Contains(stdout.String(), tc.stdout) || tc.stdout == "" && stdout.Len() > 0 {
				t.Errorf("stdout %q, want it to hold %q", &stdout, tc.stdout)
			}
			if !strings.Contains(stderr.String(), tc.stderr) || tc.stderr == "" && stderr.Len() > 0 {
				t.Errorf("stderr %q, want it to hold %q", &stderr, tc.stderr)
			}
		})
	}
}

// cmdAuditCount verifies the log served at URL with the verifier key VKEY
// and waits (10 s at most) until it holds exactly N entries of ACTION:
// entries reach the served log with the next checkpoint.
//
//	auditcount URL VKEY ACTION N
func cmdAuditCount(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 4 {
		ts.Fatalf("usage: auditcount URL VKEY ACTION N")
	}
	want, err := strconv.Atoi(args[3])
	ts.Check(err)
	v, err := auditlog.ReadVerifier(ts.MkAbs(args[1]))
	ts.Check(err)
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := 0
		_, err := verifier.Verify(context.Background(), verifier.Config{LogURL: args[0], Verifier: v,
			Each: func(_ uint64, e custos.AuditEntry) {
				if e.Action == args[2] {
					got++
				}
			}})
		if err == nil && got == want {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("log holds %d %s entries, want %d (last error: %v)", got, args[2], want, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// cmdTamper changes one byte on the log's disk: the first "allow" in the
// newest entry bundle under LOGDIR becomes "allox".
//
//	tamper LOGDIR
func cmdTamper(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: tamper LOGDIR")
	}
	var newest string
	var when time.Time
	filepath.WalkDir(filepath.Join(ts.MkAbs(args[0]), "tile", "entries"), func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil && !fi.ModTime().Before(when) {
				newest, when = p, fi.ModTime()
			}
		}
		return nil
	})
	if newest == "" {
		ts.Fatalf("no entry bundle under %s", args[0])
	}
	b, err := os.ReadFile(newest)
	ts.Check(err)
	i := bytes.Index(b, []byte(`"allow"`))
	if i < 0 {
		ts.Fatalf("no allow in %s", newest)
	}
	b[i+5] = 'x'
	ts.Check(os.WriteFile(newest, b, 0o644))
}

// cmdCosigned verifies the log served at URL with the verifier key VKEY and
// waits (20 s at most) until its checkpoint carries a valid cosignature of
// every witness key given and is at least SIZE entries: cosignatures reach
// the served checkpoint within a checkpoint interval or two of the
// witnesses answering.
//
//	cosigned URL VKEY SIZE WITNESSVKEY...
func cmdCosigned(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 4 {
		ts.Fatalf("usage: cosigned URL VKEY SIZE WITNESSVKEY...")
	}
	v, err := auditlog.ReadVerifier(ts.MkAbs(args[1]))
	ts.Check(err)
	size, err := strconv.ParseUint(args[2], 10, 64)
	ts.Check(err)
	cfg := verifier.Config{LogURL: args[0], Verifier: v}
	for _, path := range args[3:] {
		w, err := fnote.NewVerifierForCosignatureV1(strings.TrimSpace(ts.ReadFile(path)))
		ts.Check(err)
		cfg.Witnesses = append(cfg.Witnesses, w)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		res, err := verifier.Verify(context.Background(), cfg)
		if err == nil && res.Size >= size {
			fmt.Fprintf(ts.Stdout(), "size %d cosigned by %s\n", res.Size, strings.Join(res.Witnesses, ", "))
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("log not cosigned at size %d or more within 20s (size %d, last error: %v)", size, res.Size, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
