package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/custos/custos"
	"github.com/custos/custos/internal/auditlog"
	"github.com/custos/custos/internal/config"
	"github.com/custos/custos/internal/custody"
	"github.com/custos/custos/internal/flow"
	"github.com/custos/custos/internal/governance"
	"github.com/custos/custos/internal/identity"
	"github.com/custos/custos/internal/keys"
	"github.com/custos/custos/internal/notekey"
	"github.com/custos/custos/internal/policy"
	"github.com/custos/custos/internal/registry"
	"github.com/custos/custos/internal/sandbox"
	"github.com/custos/custos/internal/sandbox/worker"
	"github.com/custos/custos/internal/schema"
	"github.com/custos/custos/internal/store/postgres"
	"github.com/custos/custos/internal/store/sqlite"
	"github.com/custos/custos/internal/token"
	"github.com/custos/custos/internal/vault"
)

// deployment is a deployment opened from its config: every component
// wired, ready to serve.
type deployment struct {
	cfg     *config.Config
	store   custos.Store
	keyring *keys.Local
	// schema is the schema in force at start; custody holds the one in
	// force now.
	schema   *schema.Schema
	policy   *policy.Engine
	log      *auditlog.Log
	custody  *custody.Service
	verifier *identity.Verifier
	shredder *shredder
	// sandbox runs the approved algorithms; nil when the deployment admits
	// none.
	sandbox *worker.Pool
	// witnesses collect the witnesses' cosignatures of the log's
	// checkpoints once started; serve starts them.
	witnesses *witnessing
	// governance holds the signed rules in force, the proposals and the
	// suspension of the operator.
	governance *governance.Board
	// registry is the registry of algorithm bundles.
	registry *registry.Registry
	slog     *slog.Logger
}

// receiptKeyName names the custodian's key in the signed receipts of the
// deployment named name; custodian.vkey verifies it.
func receiptKeyName(name string) string { return name + "-custodian" }

// openStore opens the configured store. Whether its location is
// permitted is checkLocation's to say, once the signed locations are known.
func openStore(ctx context.Context, cfg *config.Config) (custos.Store, error) {
	var st custos.Store
	switch cfg.Store.Driver {
	case "sqlite":
		s, err := sqlite.Open(cfg.Path(cfg.Store.Path), cfg.Store.Location)
		if err != nil {
			return nil, fmt.Errorf("couldn't open store: %w", err)
		}
		st = s
	case "postgres":
		dsn := os.Getenv(cfg.Store.DSNEnv)
		if dsn == "" {
			return nil, fmt.Errorf("store.dsn_env names %s, which is not set: set it to the PostgreSQL connection string", cfg.Store.DSNEnv)
		}
		s, err := postgres.Open(ctx, dsn, cfg.Store.Location)
		if err != nil {
			return nil, fmt.Errorf("couldn't open store: %w", err)
		}
		st = s
	}
	return st, nil
}

// checkLocation refuses a store whose declared location the signed
// permitted locations do not list: the signed set decides, not the one
// custos.yaml lists, which governance compares with it.
func checkLocation(cfg *config.Config, st custos.Store, g *governance.Board) error {
	l, err := governance.ParseLocations(g.InForce(governance.KindLocations)[governance.LocationsFile])
	if err != nil {
		return fmt.Errorf("the signed permitted locations: %w", err)
	}
	if loc := st.Location(); !slices.Contains(l.Permitted, loc) {
		return fmt.Errorf("the store declares location %q, which the signed permitted locations of jurisdiction %s do not list (%v): refusing to start; a location is permitted by a signed proposal (custos propose --kind locations)",
			loc, cfg.Jurisdiction, l.Permitted)
	}
	return nil
}

// openDeployment opens every component of the deployment cfg describes
// and records the policies and schema it serves on the audit log.
func openDeployment(ctx context.Context, cfg *config.Config, log *slog.Logger) (_ *deployment, err error) {
	d := &deployment{cfg: cfg, slog: log}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	if d.keyring, err = keys.Open(cfg.Path(cfg.Keyring)); err != nil {
		return nil, err
	}
	if j := d.keyring.Jurisdiction(); j != cfg.Jurisdiction {
		return nil, fmt.Errorf("the keyring is for jurisdiction %s, the config for %s: refusing to start", j, cfg.Jurisdiction)
	}
	if d.store, err = openStore(ctx, cfg); err != nil {
		return nil, err
	}
	if d.log, err = openLog(ctx, cfg, log); err != nil {
		return nil, err
	}
	// The schema and the policies served are the signed ones, never the
	// files as they are on disk; so are the locations the store may be in.
	if d.governance, err = openGovernance(ctx, cfg, d, log); err != nil {
		return nil, err
	}
	if err := checkLocation(cfg, d.store, d.governance); err != nil {
		return nil, err
	}
	if d.schema, err = loadSchema(d.governance.InForce(governance.KindSchema)); err != nil {
		return nil, err
	}
	set, err := policy.Parse(d.governance.InForce(governance.KindPolicy))
	if err != nil {
		return nil, err
	}
	d.policy = policy.NewEngine(set, cfg.Jurisdiction)
	if d.witnesses, err = newWitnessing(cfg, d.log, log); err != nil {
		return nil, err
	}
	if d.verifier, err = openVerifier(cfg); err != nil {
		return nil, err
	}
	tokens, err := token.New(d.keyring.TokenKey())
	if err != nil {
		return nil, err
	}
	signer, err := d.keyring.Signer(receiptKeyName(cfg.Name))
	if err != nil {
		return nil, err
	}
	flows, err := openFlows(cfg, d.governance.InForce(governance.KindFlows), d.schema, d.keyring.TokenKey())
	if err != nil {
		return nil, err
	}
	if d.registry, err = openRegistry(cfg, d.governance); err != nil {
		return nil, err
	}
	if cfg.Algorithms.Enabled() {
		d.sandbox, err = worker.New(worker.Config{
			Workers:  cfg.Algorithms.Workers,
			CacheDir: cfg.Path(filepath.Join(cfg.Algorithms.Dir+".cache", "wazero")),
			Logger:   log,
		})
		if err != nil {
			return nil, fmt.Errorf("couldn't start the algorithm sandbox: %w", err)
		}
	}
	d.shredder = newShredder(cfg, d.store, d.keyring, d.log, log)
	var runner custody.Sandbox // a nil *worker.Pool would not be a nil Sandbox
	if d.sandbox != nil {
		runner = d.sandbox
	}
	d.custody, err = custody.New(custody.Config{
		Jurisdiction:  cfg.Jurisdiction,
		Schema:        d.schema,
		Policy:        d.policy,
		Vault:         vault.New(d.keyring, cfg.Jurisdiction),
		Store:         d.store,
		Tokens:        tokens,
		Audiences:     cfg.Tokens.Audiences,
		Auditor:       d.log,
		History:       d.log,
		Receipts:      signer,
		KEK:           d.keyring.Current,
		Logger:        log,
		OnErase:       d.shredder.Erased,
		MaxDetokenize: cfg.Limits.MaxDetokenize,
		Registry:      d.registry,
		Sandbox:       runner,
		AlgorithmLimits: sandbox.Limits{
			MemoryBytes: uint64(cfg.Algorithms.MemoryMiB) << 20,
			Timeout:     time.Duration(cfg.Algorithms.Timeout),
			OutputBytes: cfg.Algorithms.OutputKiB << 10,
		},
		MaxModel:   cfg.Algorithms.ModelMiB << 20,
		Governance: d.governance,
		Flows:      flows,
		Aggregates: custody.AggregatesConfig{
			MinSubjects:  cfg.Aggregates.MinSubjects,
			Budget:       cfg.Aggregates.Budget,
			RequireNoise: cfg.Aggregates.RequireNoise,
			History:      cfg.Aggregates.History,
		},
	})
	if err != nil {
		return nil, err
	}
	if _, err := d.log.Record(ctx, custos.AuditEntry{Time: time.Now().UTC(), Action: "policy-load", Decision: "allow", Detail: "policy " + set.Version() + " schema " + d.schema.Digest}); err != nil {
		return nil, fmt.Errorf("couldn't record policy load: %w", err)
	}
	return d, nil
}

// openFlows loads the signed flows and checks them against the schema: a
// protected field declared clear refuses to start. With no flows file, no
// flow is declared until a signed proposal declares some.
func openFlows(cfg *config.Config, c governance.Content, sc *schema.Schema, root []byte) (custody.FlowsConfig, error) {
	set, err := loadFlows(c, sc)
	if err != nil {
		return custody.FlowsConfig{}, fmt.Errorf("%w: refusing to start", err)
	}
	keys, err := flow.NewKeys(root)
	if err != nil {
		return custody.FlowsConfig{}, err
	}
	samples, err := flow.NewFileSamples(cfg.Path(cfg.Flows.Samples))
	if err != nil {
		return custody.FlowsConfig{}, err
	}
	return custody.FlowsConfig{Set: set, Keys: keys, Samples: samples}, nil
}

// loadFlows parses the flows of c and checks them against sc.
func loadFlows(c governance.Content, sc *schema.Schema) (*flow.Set, error) {
	set, err := flow.Parse(governance.FlowsFile, c[governance.FlowsFile])
	if err != nil {
		return nil, err
	}
	if err := set.Check(sc); err != nil {
		return nil, fmt.Errorf("%s: %w", governance.FlowsFile, err)
	}
	return set, nil
}

// openLog opens the deployment's transparency log.
func openLog(ctx context.Context, cfg *config.Config, log *slog.Logger) (*auditlog.Log, error) {
	signer, err := auditlog.ReadSigner(cfg.Path(cfg.Audit.Key))
	if err != nil {
		return nil, err
	}
	return auditlog.Open(ctx, auditlog.Config{
		Dir:                cfg.Path(cfg.Audit.Dir),
		Origin:             cfg.Audit.Origin,
		Signer:             signer,
		BatchMaxAge:        time.Duration(cfg.Audit.BatchMaxAge),
		CheckpointInterval: time.Duration(cfg.Audit.CheckpointInterval),
		Logger:             log,
	})
}

// readKeys reads the note verifier keys of the files the config lists.
func readKeys(cfg *config.Config, paths []string, what string) ([]string, error) {
	var vkeys []string
	for _, p := range paths {
		vkey, err := notekey.Read(cfg.Path(p), what, false)
		if err != nil {
			return nil, fmt.Errorf("%w (write one with custos algo keygen and list its .vkey file)", err)
		}
		vkeys = append(vkeys, vkey)
	}
	return vkeys, nil
}

// configuredReviewers returns the reviewer set custos.yaml lists.
func configuredReviewers(cfg *config.Config) (governance.Algorithms, error) {
	reviewers, err := readKeys(cfg, cfg.Algorithms.Reviewers, "algorithms.reviewers key")
	if err != nil {
		return governance.Algorithms{}, err
	}
	return governance.Algorithms{Reviewers: reviewers, Approvals: cfg.Algorithms.Approvals}, nil
}

// openRegistry opens the registry of algorithm bundles with the operator
// keys the config lists and the signed reviewer set; with no keys, it
// admits nothing.
func openRegistry(cfg *config.Config, g *governance.Board) (*registry.Registry, error) {
	a := cfg.Algorithms
	operators, err := readKeys(cfg, a.Operators, "algorithms.operators key")
	if err != nil {
		return nil, err
	}
	signed, err := governance.ParseAlgorithms(g.InForce(governance.KindAlgorithms)[governance.AlgorithmsFile])
	if err != nil {
		return nil, fmt.Errorf("the signed reviewer set: %w", err)
	}
	r, err := registry.Open(registry.Config{Dir: cfg.Path(a.Dir), Operators: operators, Reviewers: signed.Reviewers, Required: signed.Approvals})
	if err != nil {
		return nil, fmt.Errorf("couldn't open the algorithm registry: %w", err)
	}
	return r, nil
}

func openVerifier(cfg *config.Config) (*identity.Verifier, error) {
	var issuers []identity.Issuer
	for _, is := range cfg.Identity.Issuers {
		k, err := identity.ReadPublicKey(cfg.Path(is.PublicKey))
		if err != nil {
			return nil, fmt.Errorf("issuer %s: %w", is.Name, err)
		}
		issuers = append(issuers, identity.Issuer{Name: is.Name, Key: k})
	}
	return identity.NewVerifier(identity.Config{
		Audience: cfg.Identity.Audience,
		Issuers:  issuers,
		Orgs:     cfg.Identity.Orgs,
		Leeway:   time.Duration(cfg.Identity.Leeway),
		MaxTTL:   time.Duration(cfg.Identity.MaxTTL),
	})
}

// openGovernance opens the board of the deployment's signed rules with the
// keys the config lists, recording on the log what it finds: the first
// signed rules (trust on first use), files on disk or sets in custos.yaml
// that differ from the signed ones (refused), and the rules in force.
// Applied changes are put in force in d.
func openGovernance(ctx context.Context, cfg *config.Config, d *deployment, log *slog.Logger) (*governance.Board, error) {
	g := cfg.Governance
	signers := map[string][]string{}
	for role, paths := range g.Signers {
		for _, p := range paths {
			vkey, err := notekey.Read(cfg.Path(p), "governance."+role+" key", false)
			if err != nil {
				return nil, fmt.Errorf("%w (write one with custos governance keygen and list its .vkey file)", err)
			}
			signers[role] = append(signers[role], vkey)
		}
	}
	b, err := governance.Open(governance.Config{
		Dir: cfg.Path(g.Dir), Deployment: cfg.Name,
		PolicyDir: cfg.Path(cfg.Policies), SchemaPath: cfg.Path(cfg.Schema), FlowsPath: cfg.Path(cfg.Flows.File),
		Signers: signers, Require: g.Require, Suspender: g.Suspender,
		Algorithms: func() (governance.Algorithms, error) { return configuredReviewers(cfg) },
		Locations: func() (governance.Locations, error) {
			return governance.Locations{Permitted: cfg.PermittedLocations}, nil
		},
		Check:   d.check,
		Install: d.install,
	}, d.recordGovernance(ctx))
	if err != nil {
		return nil, fmt.Errorf("couldn't open the governance of the rules: %w", err)
	}
	return b, nil
}

// check checks that content of kind k loads.
func (d *deployment) check(k governance.Kind, c governance.Content) error {
	switch k {
	case governance.KindSchema:
		sc, err := loadSchema(c)
		if err != nil || d.custody == nil {
			return err
		}
		// A schema under which a declared flow would release a protected
		// field in clear, or name a field no longer there, is refused.
		return d.custody.CheckFlows(sc)
	case governance.KindAlgorithms:
		a, err := governance.ParseAlgorithms(c[governance.AlgorithmsFile])
		if err == nil && d.registry != nil {
			err = d.registry.CheckReviewers(a.Reviewers, a.Approvals)
		}
		return err
	case governance.KindPolicy:
		_, err := policy.Parse(c)
		return err
	case governance.KindFlows:
		sc := d.schema
		if d.custody != nil {
			sc = d.custody.Schema()
		}
		if sc == nil {
			// At the first start, before the schema is loaded: the
			// flows are checked against it when they are loaded.
			_, err := flow.Parse(governance.FlowsFile, c[governance.FlowsFile])
			return err
		}
		_, err := loadFlows(c, sc)
		return err
	case governance.KindLocations:
		// The store in use stays permitted: no signed change makes the
		// running deployment keep data where it may not.
		l, err := governance.ParseLocations(c[governance.LocationsFile])
		if err != nil || d.store == nil {
			return err
		}
		if loc := d.store.Location(); !slices.Contains(l.Permitted, loc) {
			return fmt.Errorf("the store in use is at %q, which would no longer be permitted: that would strand the data; move it to a location that stays permitted first", loc)
		}
		return nil
	}
	return nil // the signer set: checked by governance itself
}

func loadSchema(c governance.Content) (*schema.Schema, error) {
	return schema.Parse(governance.SchemaFile, c[governance.SchemaFile])
}

// install puts signed content in force: the next requests see it.
func (d *deployment) install(k governance.Kind, c governance.Content) error {
	switch k {
	case governance.KindSchema:
		sc, err := loadSchema(c)
		if err != nil {
			return err
		}
		d.custody.SetSchema(sc)
	case governance.KindPolicy:
		set, err := policy.Parse(c)
		if err != nil {
			return err
		}
		d.policy.Replace(set)
	case governance.KindAlgorithms:
		a, err := governance.ParseAlgorithms(c[governance.AlgorithmsFile])
		if err != nil {
			return err
		}
		if err := d.registry.SetReviewers(a.Reviewers, a.Approvals); err != nil {
			return err
		}
	case governance.KindFlows:
		set, err := loadFlows(c, d.custody.Schema())
		if err != nil {
			return err
		}
		d.custody.SetFlows(set)
	case governance.KindLocations:
		// Nothing to switch: the store in use is checked against the
		// signed locations at start, and check kept it permitted.
		l, err := governance.ParseLocations(c[governance.LocationsFile])
		if err != nil {
			return err
		}
		d.slog.Info("signed permitted locations in force", "permitted", l.Permitted, "store", d.store.Location())
	}
	d.slog.Info("signed rules put in force", "kind", string(k), "digest", governance.Digest(c))
	return nil
}

// recordGovernance records the board's events of the start and of a
// SIGHUP, which no principal asked for, and reports refusals on the
// server's log.
func (d *deployment) recordGovernance(ctx context.Context) governance.Record {
	return func(events []governance.Event) error {
		for _, ev := range events {
			e := custody.GovernanceEntry(ev)
			e.Time = time.Now().UTC()
			if _, err := d.log.Record(ctx, e); err != nil {
				return fmt.Errorf("couldn't record %s: %w", ev.Action, err)
			}
			switch ev.Action {
			case governance.ActionUnsigned:
				d.slog.Error("unsigned rules refused", "kind", string(ev.Kind), "on_disk", ev.Proposed, "in_force", ev.Current)
			case governance.ActionInit:
				d.slog.Warn("no signed rules yet: the files on disk become the signed rules (trust on first use)", "kind", string(ev.Kind), "digest", ev.Proposed)
			}
		}
		return nil
	}
}

// reload compares the policies and the schema on disk with the signed
// ones, as at a SIGHUP: files edited without a signed proposal are refused
// and recorded, and the signed rules stay in force.
func (d *deployment) reload(ctx context.Context) error {
	return d.governance.Reload(d.recordGovernance(ctx))
}

func (d *deployment) Close() error {
	var errs []error
	if d.shredder != nil {
		d.shredder.Stop()
	}
	d.witnesses.Stop()
	if d.sandbox != nil {
		errs = append(errs, d.sandbox.Close())
	}
	if d.log != nil {
		errs = append(errs, d.log.Close())
	}
	if d.store != nil {
		errs = append(errs, d.store.Close())
	}
	return errors.Join(errs...)
}
