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

// TestUnsignedReloadRefused checks what SIGHUP does: a policy file edited
// on disk without a signed proposal, valid or not, is refused and
// recorded, and the signed policies stay in force.
func TestUnsignedReloadRefused(t *testing.T) {
	d := testDeployment(t)
	ctx := context.Background()
	monitor := custos.Principal{ID: "aud", Org: "monitor", Loc: "US"}
	country := []policy.Field{{Collection: "users", Name: "country", Class: custos.ClassBusinessMetric, Type: custos.TypeString}}
	if f := d.policy.Forms(monitor, policy.Context{}, country); f[0] != custos.FormClear {
		t.Fatalf("starter policy gives the monitor country as %s", f[0])
	}
	v0 := d.policy.Version()
	dir := d.cfg.Path(d.cfg.Policies)
	if err := d.reload(ctx); err != nil {
		t.Fatalf("reload with the signed files on disk: %v", err)
	}
	for _, tc := range []struct{ name, file, text string }{
		{"invalid", "broken.cedar", "permit (principal, action, resource) when { principal.nope"},
		{"valid", "zz-forbid.cedar", "@id(\"no-monitor\")\nforbid (principal, action, resource) when { principal.org == \"monitor\" };\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.file)
			if err := os.WriteFile(path, []byte(tc.text), 0o644); err != nil {
				t.Fatal(err)
			}
			defer os.Remove(path)
			n0 := d.log.Size()
			err := d.reload(ctx)
			if err == nil || !strings.Contains(err.Error(), "custos propose") {
				t.Fatalf("reload of an unsigned file: %v, want a refusal with a hint", err)
			}
			if d.policy.Version() != v0 {
				t.Fatal("an unsigned policy file was put in force")
			}
			if d.log.Size() != n0+1 {
				t.Fatal("the refusal was not recorded")
			}
			if f := d.policy.Forms(monitor, policy.Context{}, country); f[0] != custos.FormClear {
				t.Fatalf("after the refusal the monitor gets country as %s", f[0])
			}
		})
	}
}
