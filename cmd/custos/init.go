package main

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/custos/custos/internal/auditlog"
	"github.com/custos/custos/internal/identity"
	"github.com/custos/custos/internal/keys"
	"github.com/custos/custos/internal/safefile"
	"github.com/custos/custos/internal/starter"
)

const initUse = "custos init DIR [--jurisdiction US] [--location LABEL] [--name NAME]"

var ccRE = regexp.MustCompile(`^[A-Z]{2}$`)

func (e *env) init(args []string) error {
	fs := e.flags("init", initUse)
	jur := fs.String("jurisdiction", "US", "ISO 3166-1 alpha-2 code of the jurisdiction served")
	loc := fs.String("location", "", "storage location label (default: <jurisdiction>-local, lower case)")
	name := fs.String("name", "", "deployment name (default: custos-<jurisdiction>, lower case)")
	shred := fs.Duration("shred-after", time.Hour, "delay between an erasure and the key rotation that makes it final")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return errUsage
	}
	if !ccRE.MatchString(*jur) {
		return fmt.Errorf("--jurisdiction must be an ISO 3166-1 alpha-2 code such as US")
	}
	p := starter.Params{Name: *name, Jurisdiction: *jur, Location: *loc, Issuer: "custos-dev-issuer", ShredAfter: *shred}
	if p.Name == "" {
		p.Name = "custos-" + strings.ToLower(*jur)
	}
	if p.Location == "" {
		p.Location = strings.ToLower(*jur) + "-local"
	}
	dir := pos[0]
	if err := initDeployment(dir, p); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, `Wrote a %s deployment to %s:
    custos.yaml      configuration
    keyring.json     keys (mode 0600): back it up apart from the data
    schema.yaml      collections, fields and data classes
    flows.yaml       the declared outbound flows
    policies/        Cedar policies; policy_tests.yaml checks them
    issuer.key/.pub  development token issuer
    custodian.vkey   verifier key of the custodian's signed receipts
    log.key/.vkey    signer and verifier keys of the audit log's checkpoints

Next:
    custos serve --config %s --listen 127.0.0.1:8080
`, p.Jurisdiction, dir, filepath.Join(dir, "custos.yaml"))
	return nil
}

// initDeployment writes a starter deployment into dir, which must not hold
// one already.
func initDeployment(dir string, p starter.Params) error {
	cfgPath := filepath.Join(dir, "custos.yaml")
	if _, err := os.Stat(cfgPath); err == nil {
		return fmt.Errorf("%s exists: refusing to overwrite a deployment", cfgPath)
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for _, d := range []string{dir, filepath.Join(dir, "data"), filepath.Join(dir, "policies")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("couldn't make directory: %w", err)
		}
	}
	cfg, err := starter.Config(p)
	if err != nil {
		return err
	}
	files := map[string][]byte{"schema.yaml": starter.Schema(), "flows.yaml": starter.Flows(), "policy_tests.yaml": starter.PolicyTests()}
	for name, data := range starter.Policies() {
		files[filepath.Join("policies", name)] = data
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return fmt.Errorf("couldn't write %s: %w", name, err)
		}
	}
	if err := keys.Create(filepath.Join(dir, "keyring.json"), p.Jurisdiction); err != nil {
		return err
	}
	kr, err := keys.Open(filepath.Join(dir, "keyring.json"))
	if err != nil {
		return err
	}
	vkey, err := kr.VerifierKey(receiptKeyName(p.Name))
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "custodian.vkey"), []byte(vkey+"\n"), 0o644); err != nil {
		return fmt.Errorf("couldn't write custodian.vkey: %w", err)
	}
	k, err := identity.GenerateKey()
	if err != nil {
		return err
	}
	if err := identity.WritePrivateKey(filepath.Join(dir, "issuer.key"), k); err != nil {
		return err
	}
	if err := identity.WritePublicKey(filepath.Join(dir, "issuer.pub"), k.Public().(ed25519.PublicKey)); err != nil {
		return err
	}
	skey, vkey, err := auditlog.GenerateKey("custos/" + p.Name)
	if err != nil {
		return err
	}
	if err := safefile.Create(filepath.Join(dir, "log.key"), []byte(skey+"\n"), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "log.vkey"), []byte(vkey+"\n"), 0o644); err != nil {
		return fmt.Errorf("couldn't write log.vkey: %w", err)
	}
	// The config is written last: its presence means the deployment is whole.
	return os.WriteFile(cfgPath, cfg, 0o644)
}
