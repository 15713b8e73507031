package config

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/custos/custos/internal/starter"
	"go.yaml.in/yaml/v3"
)

func starterConfig(t testing.TB) []byte {
	t.Helper()
	b, err := starter.Config(starter.Params{Name: "custos-us", Jurisdiction: "US", Location: "us-local", Issuer: "dev", ShredAfter: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestStarterConfigValid(t *testing.T) {
	c, err := Parse(starterConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	if c.Jurisdiction != "US" || c.Store.Driver != "sqlite" || c.Store.Location != "us-local" {
		t.Fatalf("config = %+v", c)
	}
	if c.Algorithms.Enabled() || c.Algorithms.Approvals != 2 || c.Algorithms.Dir != "algorithms" {
		t.Fatalf("algorithms = %+v, want none admitted, 2 approvals by default", c.Algorithms)
	}
	if time.Duration(c.Erasure.ShredAfter) != time.Hour || c.Limits.MaxBodyBytes != 1<<20 || c.Audit.Dir != "log" || c.Audit.Origin != "custos/custos-us" {
		t.Fatalf("defaults not applied: %+v", c)
	}
}

func TestLoadResolvesPaths(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "custos.yaml")
	if err := os.WriteFile(p, starterConfig(t), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Path(c.Keyring); got != filepath.Join(dir, "keyring.json") {
		t.Fatalf("keyring path = %s", got)
	}
	if got := c.Path("/abs/x"); got != "/abs/x" {
		t.Fatalf("absolute path changed: %s", got)
	}
}

func TestRefused(t *testing.T) {
	cases := []struct {
		name, old, new, want string
	}{
		{"unpermitted location", "location: us-local\n\n# Key", "location: eu-west-1\n\n# Key", "store.location"},
		{"bad jurisdiction", "jurisdiction: US", "jurisdiction: usa", "jurisdiction"},
		{"unknown key", "keyring: keyring.json", "keyring: keyring.json\nkeyrings: x", "field keyrings not found"},
		{"bad driver", "driver: sqlite", "driver: mongo", "store.driver"},
		{"postgres without dsn_env", "driver: sqlite", "driver: postgres", "store.dsn_env"},
		{"no issuers", "  issuers:\n    - name: dev\n      public_key: issuer.pub\n", "  issuers: []\n", "identity.issuers"},
		{"bad duration", "shred_after: 1h0m0s", "shred_after: soon", "invalid duration"},
		{"shred too long", "shred_after: 1h0m0s", "shred_after: 9000h", "erasure.shred_after"},
		{"tiny body cap", "max_body_bytes: 1048576", "max_body_bytes: 10", "limits.max_body_bytes"},
		{"bad name", "name: custos-us", "name: Custos US", "name"},
		{"detokenize beyond an entry", "max_detokenize: 100", "max_detokenize: 1000", "limits.max_detokenize"},
		{"more approvals than reviewers", "\nlimits:", "\nalgorithms:\n  operators: [op.vkey]\n  reviewers: [a.vkey]\nlimits:", "algorithms.approvals"},
		{"no approval needed", "\nlimits:", "\nalgorithms:\n  operators: [op.vkey]\n  reviewers: [a.vkey]\n  approvals: -1\nlimits:", "algorithms.approvals"},
		{"reviewers without operators", "\nlimits:", "\nalgorithms:\n  reviewers: [a.vkey, b.vkey]\nlimits:", "algorithms.operators"},
		{"required role without keys", "\nlimits:", "\ngovernance:\n  signers:\n    custodian: [c.vkey]\nlimits:", "governance.require"},
		{"no role required", "\nlimits:", "\ngovernance:\n  require: []\nlimits:", "governance.require"},
		{"suspender without keys", "\nlimits:", "\ngovernance:\n  signers:\n    custodian: [c.vkey]\n  require: [custodian]\nlimits:", "governance.suspender"},
		{"operators without reviewers", "\nlimits:", "\nalgorithms:\n  operators: [op.vkey]\nlimits:", "algorithms.reviewers"},
	}
	base := string(starterConfig(t))
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if !strings.Contains(base, c.old) {
				t.Fatalf("starter config lacks %q", c.old)
			}
			_, err := Parse([]byte(strings.Replace(base, c.old, c.new, 1)))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want one naming %q", err, c.want)
			}
		})
	}
}

func TestAlgorithms(t *testing.T) {
	base := string(starterConfig(t))
	c, err := Parse([]byte(strings.Replace(base, "\nlimits:", "\nalgorithms:\n  operators: [op.vkey]\n  reviewers: [a.vkey, b.vkey, c.vkey]\nlimits:", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Algorithms.Enabled() || c.Algorithms.Approvals != 2 || len(c.Algorithms.Reviewers) != 3 {
		t.Fatalf("algorithms = %+v", c.Algorithms)
	}
}

func TestGovernance(t *testing.T) {
	base := string(starterConfig(t))
	c, err := Parse([]byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if g := c.Governance; g.Dir != "governance" || strings.Join(g.Require, ",") != "custodian,monitor" || g.Suspender != "monitor" || len(g.Signers) != 0 {
		t.Fatalf("governance defaults = %+v", g)
	}
	c, err = Parse([]byte(strings.Replace(base, "\nlimits:", "\ngovernance:\n  signers:\n    custodian: [c.vkey]\n    monitor: [m.vkey]\nlimits:", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Governance.Signers["monitor"]) != 1 {
		t.Fatalf("governance = %+v", c.Governance)
	}
}

func TestLoadCapped(t *testing.T) {
	p := filepath.Join(t.TempDir(), "custos.yaml")
	if err := os.WriteFile(p, make([]byte, MaxFileSize+1), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("oversized config: %v", err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "none.yaml")); err == nil || !strings.Contains(err.Error(), "custos init") {
		t.Fatalf("missing config: %v, want a hint to run custos init", err)
	}
}

// FuzzParse checks that an accepted config, written back, is read as the
// same config.
func FuzzParse(f *testing.F) {
	f.Add([]byte("name: x\njurisdiction: US\n"))
	f.Add([]byte("{"))
	f.Add(starterConfig(f))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			return
		}
		out, err := yaml.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("config written back is refused: %v\n%s", err, out)
		}
		if back, _ := yaml.Marshal(again); !bytes.Equal(back, out) {
			t.Fatalf("config written back reads differently:\n%s\nthen\n%s", out, back)
		}
	})
}
