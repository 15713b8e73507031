package main

import (
	"fmt"
	"path/filepath"

	"github.com/custos/custos/internal/config"
	"github.com/custos/custos/internal/policy"
	"github.com/custos/custos/internal/safefile"
	"github.com/custos/custos/internal/schema"
)

const policyTestUse = "custos policy test [--config DIR/custos.yaml] FILE"

// maxTestTable caps a policy test file.
const maxTestTable = 1 << 20

func (e *env) policy(args []string) error {
	if len(args) == 0 || args[0] != "test" {
		fmt.Fprintf(e.stderr, "Usage: %s\n", policyTestUse)
		return errUsage
	}
	fs := e.flags("policy test", policyTestUse)
	cfgPath := fs.String("config", "", "the deployment's custos.yaml (default: custos.yaml beside FILE)")
	pos, err := parse(fs, args[1:])
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return errUsage
	}
	if *cfgPath == "" {
		*cfgPath = filepath.Join(filepath.Dir(pos[0]), "custos.yaml")
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	sc, err := schema.Load(cfg.Path(cfg.Schema))
	if err != nil {
		return err
	}
	set, err := policy.LoadDir(cfg.Path(cfg.Policies))
	if err != nil {
		return err
	}
	data, err := safefile.ReadCapped(pos[0], maxTestTable)
	if err != nil {
		return err
	}
	cases, err := policy.ParseTests(data)
	if err != nil {
		return fmt.Errorf("%s: %w", pos[0], err)
	}
	fails, err := policy.RunTests(policy.NewEngine(set, cfg.Jurisdiction), cases, func(coll, name string) (policy.Field, bool) {
		c, err := sc.Collection(coll)
		if err != nil {
			return policy.Field{}, false
		}
		fd, ok := c.Fields[name]
		if !ok {
			return policy.Field{}, false
		}
		return policy.Field{Collection: coll, Name: name, Class: fd.Class, Type: fd.Type}, true
	})
	if err != nil {
		return fmt.Errorf("%s: %w", pos[0], err)
	}
	for _, fl := range fails {
		fmt.Fprintf(e.stdout, "FAIL %s: got %s, want %s\n", fl.Case.Name, fl.Got, fl.Case.Want)
	}
	fmt.Fprintf(e.stdout, "%d cases, %d failed (policy %s)\n", len(cases), len(fails), set.Version())
	if len(fails) > 0 {
		return errFailed
	}
	return nil
}
