package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/custos/custos"
	"github.com/custos/custos/internal/auditlog"
	"github.com/custos/custos/internal/config"
	"github.com/custos/custos/internal/starter"
	"github.com/custos/custos/internal/verifier"
)

// TestKillUnderLoad kills a real server with SIGKILL while 32 clients write
// through it, restarts it, and checks that every request that got a 2xx has
// its entry on the log at the index it was given, and that the log verifies.
func TestKillUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and kills a real server")
	}
	bin := filepath.Join(t.TempDir(), "custos")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dir := filepath.Join(t.TempDir(), "dep")
	if err := initDeployment(dir, starter.Params{Name: "custos-kill", Jurisdiction: "US", Location: "us-local", Issuer: "dev", ShredAfter: time.Hour}); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "custos.yaml")
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	svcTok, err := mint(cfg, custos.Principal{ID: "feed", Org: "operator", Loc: "US", Roles: []string{"service"}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}

	srv, addr := startServer(t, bin, cfgPath)
	type ack struct {
		action string
		index  uint64
	}
	var mu sync.Mutex
	var acks []ack
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 5 * time.Second}
	for w := range 32 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				id := fmt.Sprintf("w%d-%d", w, i)
				for _, req := range []struct{ action, method, path, body string }{
					{"register", "PUT", "/v1/subjects/" + id, `{"residency":"US"}`},
					{"write", "POST", "/v1/records/users", `{"id":"` + id + `","fields":{"id":"` + id + `","email":"a@example.com"}}`},
				} {
					r, _ := http.NewRequestWithContext(ctx, req.method, "http://"+addr+req.path, strings.NewReader(req.body))
					r.Header.Set("Authorization", "Bearer "+svcTok)
					resp, err := client.Do(r)
					if err != nil {
						return // the server is gone
					}
					resp.Body.Close()
					if resp.StatusCode/100 != 2 {
						return
					}
					// A registration answers without an index: only writes
					// are checked by index.
					if h := resp.Header.Get("Custos-Audit-Index"); h != "" {
						n, err := strconv.ParseUint(h, 10, 64)
						if err != nil {
							t.Errorf("bad Custos-Audit-Index %q", h)
							return
						}
						mu.Lock()
						acks = append(acks, ack{req.action, n})
						mu.Unlock()
					}
				}
			}
		})
	}
	time.Sleep(1500 * time.Millisecond)
	if err := srv.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	srv.Wait()
	stop()
	wg.Wait()
	if len(acks) < 50 {
		t.Fatalf("only %d acknowledged writes before the kill", len(acks))
	}

	srv2, addr2 := startServer(t, bin, cfgPath)
	defer func() { srv2.Process.Signal(syscall.SIGINT); srv2.Wait() }()
	v, err := auditlog.ReadVerifier(filepath.Join(dir, "log.vkey"))
	if err != nil {
		t.Fatal(err)
	}
	var maxIdx uint64
	for _, a := range acks {
		maxIdx = max(maxIdx, a.index)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		got := map[uint64]string{}
		res, err := verifier.Verify(context.Background(), verifier.Config{
			LogURL: "http://" + addr2 + "/log/", Verifier: v,
			Each: func(i uint64, e custos.AuditEntry) { got[i] = e.Action },
		})
		if err == nil && res.Size > maxIdx {
			for _, a := range acks {
				if got[a.index] != a.action {
					t.Errorf("acknowledged %s at index %d, the log holds %q there", a.action, a.index, got[a.index])
				}
			}
			t.Logf("%d acknowledged writes, all on the verified log of %d entries", len(acks), res.Size)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the log does not cover index %d after the restart: %v", maxIdx, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// startServer runs `custos serve` on a free port and waits until it is ready.
func startServer(t *testing.T, bin, cfgPath string) (*exec.Cmd, string) {
	t.Helper()
	addr, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", "--config", cfgPath, "--listen", addr)
	if testing.Verbose() {
		cmd.Stderr = os.Stderr
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if err := waitHTTP("http://" + addr + "/healthz"); err != nil {
		t.Fatalf("server not ready: %v", err)
	}
	return cmd, addr
}
