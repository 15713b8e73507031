package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/custos/custos/internal/auditlog"
	"github.com/custos/custos/internal/config"
	"github.com/custos/custos/internal/keys"
	"github.com/custos/custos/internal/vault"
)

const rotateUse = "custos keys rotate --config DIR/custos.yaml"

func (e *env) keys(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "rotate" {
		fmt.Fprintf(e.stderr, "Usage: %s\n", rotateUse)
		return errUsage
	}
	fs := e.flags("keys rotate", rotateUse)
	cfgPath := fs.String("config", "", "the deployment's custos.yaml")
	if _, err := parse(fs, args[1:]); err != nil {
		return err
	}
	if *cfgPath == "" {
		fs.Usage()
		return errUsage
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	kr, err := keys.Open(cfg.Path(cfg.Keyring))
	if err != nil {
		return err
	}
	// A rotation is recorded on the audit log like every other decision.
	j, err := openLog(ctx, cfg, e.log)
	if errors.Is(err, auditlog.ErrInUse) {
		return fmt.Errorf("a custos server is running on this deployment and holds its audit log: it rotates by itself within erasure.shred_after of an erasure; stop it to rotate by hand")
	}
	if err != nil {
		return err
	}
	defer j.Close()
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	rep, err := vault.Rotate(ctx, st, kr, func(rewrapped, seen int) {
		fmt.Fprintf(e.stderr, "rotating: %d subjects seen, %d data keys re-wrapped\n", seen, rewrapped)
	})
	if err != nil {
		return fmt.Errorf("rotation incomplete, every key still opens; run it again: %w", err)
	}
	recordRotation(ctx, j, e.log, rep)
	fmt.Fprintf(e.stdout, "new KEK %s; %d of %d data keys re-wrapped, %d token refs re-indexed; destroyed %v\n", rep.NewKEK, rep.Rewrapped, rep.Subjects, rep.Reindexed, rep.Destroyed)
	return nil
}
