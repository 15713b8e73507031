package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/custos/custos"
	"github.com/custos/custos/internal/config"
	"github.com/custos/custos/internal/policy"
	"github.com/custos/custos/internal/starter"
)

func testDeployment(t testing.TB) *deployment {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "dep")
	if err := initDeployment(dir, starter.Params{Name: "custos-test", Jurisdiction: "US", Location: "us-local", Issuer: "dev", ShredAfter: time.Hour}); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(filepath.Join(dir, "custos.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := openDeployment(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// TestPolicyReload checks what SIGHUP does: a valid change takes effect and
// is recorded; an invalid set never replaces the one in force.
func TestPolicyReload(t *testing.T) {
	d := testDeployment(t)
	ctx := context.Background()
	monitor := custos.Principal{ID: "aud", Org: "monitor", Loc: "US"}
	country := []policy.Field{{Collection: "users", Name: "country", Class: custos.ClassBusinessMetric, Type: custos.TypeString}}
	if f := d.policy.Forms(monitor, policy.Context{}, country); f[0] != custos.FormClear {
		t.Fatalf("starter policy gives the monitor country as %s", f[0])
	}
	v0, n0 := d.policy.Version(), d.log.Size()
	dir := d.cfg.Path(d.cfg.Policies)

	bad := filepath.Join(dir, "broken.cedar")
	if err := os.WriteFile(bad, []byte("permit (principal, action, resource) when { principal.nope"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := d.reloadPolicy(ctx)
	if err == nil || !strings.Contains(err.Error(), "broken.cedar") || !strings.Contains(err.Error(), v0) {
		t.Fatalf("invalid reload: %v, want an error naming the file and the version kept", err)
	}
	if d.policy.Version() != v0 || d.log.Size() != n0 {
		t.Fatal("an invalid policy set replaced the valid one")
	}
	os.Remove(bad)

	forbid := "@id(\"no-monitor\")\nforbid (principal, action, resource) when { principal.org == \"monitor\" };\n"
	if err := os.WriteFile(filepath.Join(dir, "zz-forbid.cedar"), []byte(forbid), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := d.reloadPolicy(ctx); err != nil {
		t.Fatal(err)
	}
	if d.policy.Version() == v0 {
		t.Fatal("version unchanged after a valid reload")
	}
	if d.log.Size() != n0+1 {
		t.Fatal("the policy load was not recorded")
	}
	if f := d.policy.Forms(monitor, policy.Context{}, country); f[0] != custos.FormWithheld {
		t.Fatalf("after reload the monitor still gets country as %s", f[0])
	}
}
