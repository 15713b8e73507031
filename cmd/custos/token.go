package main

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/custos/custos"
	"github.com/custos/custos/internal/config"
	"github.com/custos/custos/internal/identity"
)

const mintUse = "custos token mint --config DIR/custos.yaml --sub ID --org ORG --loc CC [--roles a,b] [--vetted] [--ttl 1h]"

func (e *env) token(args []string) error {
	if len(args) == 0 || args[0] != "mint" {
		fmt.Fprintf(e.stderr, "Usage: %s\n", mintUse)
		return errUsage
	}
	fs := e.flags("token mint", mintUse)
	cfgPath := fs.String("config", "", "the deployment's custos.yaml")
	sub := fs.String("sub", "", "principal id")
	org := fs.String("org", "", "organisation: custodian, operator, monitor or one the config names")
	loc := fs.String("loc", "", "ISO 3166-1 alpha-2 code of where the principal is located")
	roles := fs.String("roles", "", "comma-separated roles, such as service or support")
	vetted := fs.Bool("vetted", false, "the principal passed personnel screening")
	ttl := fs.Duration("ttl", time.Hour, "lifetime of the token")
	if _, err := parse(fs, args[1:]); err != nil {
		return err
	}
	if *cfgPath == "" || *sub == "" || *org == "" || *loc == "" {
		fs.Usage()
		return errUsage
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	tok, err := mint(cfg, principal(*sub, *org, *loc, *roles, *vetted), *ttl)
	if err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, tok)
	return nil
}

func principal(sub, org, loc, roles string, vetted bool) custos.Principal {
	p := custos.Principal{ID: sub, Org: org, Loc: loc, Vetted: vetted}
	if roles != "" {
		p.Roles = slices.Compact(slices.Sorted(slices.Values(strings.Split(roles, ","))))
	}
	return p
}

// mint signs a token for p with the deployment's development issuer key,
// checking its claims as the server will.
func mint(cfg *config.Config, p custos.Principal, ttl time.Duration) (string, error) {
	if cfg.Identity.DevIssuerKey == "" {
		return "", fmt.Errorf("the config has no identity.dev_issuer_key: tokens come from the identity provider")
	}
	if !slices.Contains(cfg.Identity.Orgs, p.Org) {
		return "", fmt.Errorf("--org %q is not among identity.orgs %v", p.Org, cfg.Identity.Orgs)
	}
	if !ccRE.MatchString(p.Loc) {
		return "", fmt.Errorf("--loc must be an ISO 3166-1 alpha-2 code such as US")
	}
	if ttl <= 0 || ttl > time.Duration(cfg.Identity.MaxTTL) {
		return "", fmt.Errorf("--ttl must be positive and at most identity.max_ttl (%s)", time.Duration(cfg.Identity.MaxTTL))
	}
	key, err := identity.ReadPrivateKey(cfg.Path(cfg.Identity.DevIssuerKey))
	if err != nil {
		return "", err
	}
	is := cfg.Identity.Issuers[0]
	tok, err := identity.Mint(key, is.Name, cfg.Identity.Audience, p, ttl, time.Now())
	if err != nil {
		return "", err
	}
	// Verify as the server would, so a bad claim fails here, not later.
	v, err := openVerifier(cfg)
	if err != nil {
		return "", err
	}
	if _, err := v.Verify(tok); err != nil {
		return "", fmt.Errorf("the minted token would be refused: %w", err)
	}
	return tok, nil
}
