// Package config loads and validates a custos deployment's configuration:
// one YAML file, custos.yaml, written by `custos init` and read by every
// command that works on the deployment.
//
// Load refuses a file with unknown keys, missing parts or dangerous
// combinations, such as a store whose location label is not permitted for
// the jurisdiction. Relative paths in the file are resolved against the
// file's directory, so a deployment directory can be moved as a whole.
package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"github.com/custos/custos"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"time"

	"go.yaml.in/yaml/v3"
)

// MaxFileSize caps the configuration file.
const MaxFileSize = 1 << 20

// Config is a deployment. The zero value is not valid; Load fills defaults.
type Config struct {
	// Name names the deployment in key names and signed statements, such
	// as "custos-us". Lower-case letters, digits and dashes.
	Name string `yaml:"name"`
	// Jurisdiction is the ISO 3166-1 alpha-2 code of the one jurisdiction
	// this instance serves. Subjects of any other are refused.
	Jurisdiction string `yaml:"jurisdiction"`
	// PermittedLocations lists the storage location labels where data of
	// the jurisdiction may reside. custos refuses to start on a store whose
	// location is not among them. The list at the first start is signed;
	// from then on it changes only by signed proposals (kind locations),
	// and the store is checked against the signed list: a list here that
	// differs is refused.
	PermittedLocations []string `yaml:"permitted_locations"`
	Store              Store    `yaml:"store"`
	// Keyring is the local keyring file made by `custos init` (mode 0600).
	Keyring string `yaml:"keyring"`
	// Schema is the classification file of collections and fields.
	Schema string `yaml:"schema"`
	// Policies is the directory of Cedar policy files (*.cedar).
	Policies string `yaml:"policies"`
	// Flows are the declared outbound flows.
	Flows Flows `yaml:"flows,omitempty"`
	// Audit is the transparency log every decision is recorded on,
	// durably, before the data it covers is released.
	Audit    AuditLog `yaml:"audit"`
	Identity Identity `yaml:"identity"`
	Tokens   Tokens   `yaml:"tokens"`
	TLS      TLS      `yaml:"tls"`
	Erasure  Erasure  `yaml:"erasure"`
	Limits   Limits   `yaml:"limits"`
	// Algorithms is the admission of the operator's algorithm bundles.
	Algorithms Algorithms `yaml:"algorithms,omitempty"`
	// Governance says who signs changes to the policies and the schema,
	// and who may suspend the operator.
	Governance Governance `yaml:"governance,omitempty"`
	// Aggregates configures aggregate queries (POST /v1/aggregate).
	Aggregates Aggregates `yaml:"aggregates,omitempty"`

	// Dir is the directory of the configuration file.
	Dir string `yaml:"-"`
}

// Store says where sealed records live.
type Store struct {
	// Driver is "sqlite" (the embedded default) or "postgres" (PostgreSQL
	// or CockroachDB).
	Driver string `yaml:"driver"`
	// Path is the SQLite database file.
	Path string `yaml:"path,omitempty"`
	// DSNEnv names the environment variable holding the PostgreSQL
	// connection string, so that no password sits in the file.
	DSNEnv string `yaml:"dsn_env,omitempty"`
	// Location is the label of where this store keeps its data, such as
	// "us-east-1". It must be one of PermittedLocations.
	Location string `yaml:"location"`
}

// Flows configures the declared outbound flows: the only ways records
// leave whole (see internal/flow). With no file, no flow is declared and
// every export is refused.
type Flows struct {
	// File is the flows file. Like the schema, it changes only by signed
	// proposals (kind flows): an edit on disk is refused.
	File string `yaml:"file,omitempty"`
	// Samples is the directory where samples of exports are kept for the
	// monitor. Default "flows/samples".
	Samples string `yaml:"samples,omitempty"`
}

// Identity says whose tokens are accepted.
type Identity struct {
	// Audience is the aud claim tokens must carry.
	Audience string `yaml:"audience"`
	// Orgs lists the org claims accepted. custodian, operator and monitor
	// are the parties of the arrangement; others may be added.
	Orgs    []string `yaml:"orgs"`
	Issuers []Issuer `yaml:"issuers"`
	// DevIssuerKey is the private key `custos token mint` signs with. It
	// belongs to the first issuer. Leave it empty in production, where an
	// identity provider issues tokens.
	DevIssuerKey string `yaml:"dev_issuer_key,omitempty"`
	// Leeway is the clock skew tolerated on exp, nbf and iat.
	Leeway Duration `yaml:"leeway,omitempty"`
	// MaxTTL refuses tokens that live longer.
	MaxTTL Duration `yaml:"max_ttl,omitempty"`
}

// Issuer is a token issuer: its iss claim and its Ed25519 public key file.
type Issuer struct {
	Name      string `yaml:"name"`
	PublicKey string `yaml:"public_key"`
}

// AuditLog configures the transparency log (C2SP tlog-tiles, served at
// /log/) and the witnesses that co-sign its checkpoints.
type AuditLog struct {
	// Dir is the log's directory (Tessera's POSIX layout).
	Dir string `yaml:"dir"`
	// Key is the note signer key of the log's checkpoints (mode 0600);
	// its verifier key is published as log.vkey.
	Key string `yaml:"key"`
	// Origin is the checkpoints' origin line, naming the deployment.
	Origin string `yaml:"origin"`
	// BatchMaxAge bounds how long entries on the log's write-ahead file
	// wait for more before a batch that is not full is integrated into
	// the tiles, which delays checkpoints. Requests do not wait for it:
	// they wait for the write-ahead file only. At least 50ms, so that a
	// lightly loaded log does not write partial tiles for every request.
	BatchMaxAge Duration `yaml:"batch_max_age,omitempty"`
	// CheckpointInterval is how often a new checkpoint is signed.
	CheckpointInterval Duration `yaml:"checkpoint_interval,omitempty"`
	// Witnesses co-sign checkpoints (C2SP tlog-witness); their cosignatures
	// are served with the checkpoint.
	Witnesses []Witness `yaml:"witnesses,omitempty"`
}

// Witness is a witness of the log.
type Witness struct {
	Name string `yaml:"name"`
	URL  string `yaml:"url"`
	// Key is the witness's note verifier key file (cosignature/v1).
	Key string `yaml:"key"`
}

// TLS configures HTTPS and, with ClientCA, mutual TLS: a client presenting
// a certificate signed by ClientCA is the principal the certificate names
// (CN the id, O the org, C the location, OU the roles, OU "vetted" vetted),
// as a second way in beside bearer tokens.
type TLS struct {
	Cert     string `yaml:"cert,omitempty"`      // PEM certificate chain of the server
	Key      string `yaml:"key,omitempty"`       // PEM private key of the server
	ClientCA string `yaml:"client_ca,omitempty"` // PEM CA certificates that sign client certificates
}

// Tokens configures pseudonyms.
type Tokens struct {
	// Audiences lists the audiences whose tokens can be detokenized; tokens
	// of protected and creator fields are indexed for each at write time.
	// A principal's audience is its org. Default: every org but monitor.
	Audiences []string `yaml:"audiences"`
}

// Erasure configures crypto-shredding.
type Erasure struct {
	// ShredAfter bounds the time between an erasure and the key rotation
	// that makes it final on copies of the store taken before it.
	ShredAfter Duration `yaml:"shred_after"`
}

// Algorithms configures the registry of the operator's algorithm bundles:
// a bundle becomes runnable only with a signature by one of Operators and
// the approvals of Approvals distinct Reviewers. With no keys listed, no
// bundle can be submitted.
type Algorithms struct {
	// Dir is the registry's directory.
	Dir string `yaml:"dir,omitempty"`
	// Operators are the note verifier key files of the operator's signing
	// keys (custos algo keygen writes NAME.vkey).
	Operators []string `yaml:"operators,omitempty"`
	// Reviewers are the note verifier key files of the custodian's
	// reviewers. No key may be both an operator's and a reviewer's.
	Reviewers []string `yaml:"reviewers,omitempty"`
	// Approvals is how many distinct reviewers must approve a bundle: at
	// least 1 and at most the number of reviewers. Default 2.
	Approvals int `yaml:"approvals,omitempty"`
	// Workers is how many algorithm runs may go at once, each in a worker
	// process of its own; default the number of CPUs.
	Workers int `yaml:"workers,omitempty"`
	// MemoryMiB, Timeout, OutputKiB and ModelMiB cap what a manifest may
	// ask for one run: the module's memory, the run's time, the output's
	// size and the size of the model training returns. Defaults 1024 MiB,
	// 2m, 1024 KiB and 64 MiB.
	MemoryMiB int      `yaml:"memory_mib,omitempty"`
	Timeout   Duration `yaml:"timeout,omitempty"`
	OutputKiB int      `yaml:"output_kib,omitempty"`
	ModelMiB  int      `yaml:"model_mib,omitempty"`
}

// Enabled reports whether the configuration lists keys, so that bundles
// can be admitted.
func (a Algorithms) Enabled() bool { return len(a.Operators) > 0 || len(a.Reviewers) > 0 }

// Governance configures the signed governance of the rules: a change to
// the policies, the schema, the flows, the algorithm reviewer set, the
// permitted locations or the signers is a proposal that takes effect only
// once it carries one signature by a key of each role in Require. Suspensions of the operator are signed by a key
// of the Suspender role. With no signers listed, no change can ever be
// applied: the rules stay as they are. The first signers listed are
// trusted on first use; from then on the signed set is the one in force,
// and a different set listed here is refused (see internal/governance).
type Governance struct {
	// Dir keeps the signed rules in force, the proposals and the
	// suspension state.
	Dir string `yaml:"dir,omitempty"`
	// Signers lists, by role, the note verifier key files of the signers
	// (custos governance keygen writes NAME.vkey). No key may be listed
	// twice.
	Signers map[string][]string `yaml:"signers,omitempty"`
	// Require lists the roles that must each sign a proposal. Default:
	// custodian and monitor.
	Require []string `yaml:"require,omitempty"`
	// Suspender is the role whose keys sign suspensions. Default: monitor.
	Suspender string `yaml:"suspender,omitempty"`
}

// Aggregates configures aggregate queries: figures over many subjects'
// records, released only for groups of at least k distinct subjects.
type Aggregates struct {
	// MinSubjects is k by org of the principal; "default" applies to the
	// orgs not listed. Default 50; at least 2.
	MinSubjects map[string]int `yaml:"min_subjects,omitempty"`
	// Budget is the privacy loss (the sum of epsilons) each principal may
	// spend on noisy queries. Default 10.
	Budget float64 `yaml:"budget,omitempty"`
	// RequireNoise lists the orgs whose queries must ask for noise.
	RequireNoise []string `yaml:"require_noise,omitempty"`
	// History is the number of each org's latest answered queries a new
	// query is compared with, to refuse differencing. Default 1000.
	History int `yaml:"history,omitempty"`
}

// Limits caps what one request may ask.
type Limits struct {
	MaxBodyBytes     int64 `yaml:"max_body_bytes"`
	MaxInFlight      int   `yaml:"max_in_flight"`
	MaxDetokenize    int   `yaml:"max_detokenize"`
	RequestTimeoutMS int   `yaml:"request_timeout_ms"`
}

// Duration is a time.Duration written as "1h30m" in YAML.
type Duration time.Duration

// UnmarshalYAML parses a duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes a duration string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// Load reads, defaults and validates the configuration file at path.
func Load(path string) (*Config, error) {
	data, err := readCapped(path)
	if err != nil {
		return nil, err
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	abs, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("couldn't resolve config directory: %w", err)
	}
	c.Dir = abs
	return c, nil
}

func readCapped(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("couldn't open config: %w (make one with `custos init DIR`)", err)
	}
	defer f.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(io.LimitReader(f, MaxFileSize+1)); err != nil {
		return nil, fmt.Errorf("couldn't read config: %w", err)
	}
	if buf.Len() > MaxFileSize {
		return nil, fmt.Errorf("config %s is larger than %d bytes", path, MaxFileSize)
	}
	return buf.Bytes(), nil
}

// Parse decodes and validates a configuration, with defaults filled in.
// Paths stay as written; Load resolves them.
func Parse(data []byte) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("couldn't parse config: %w", err)
	}
	c.defaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *Config) defaults() {
	if c.Store.Driver == "" {
		c.Store.Driver = "sqlite"
	}
	if c.Audit.Dir == "" {
		c.Audit.Dir = "log"
	}
	if c.Flows.Samples == "" {
		c.Flows.Samples = "flows/samples"
	}
	if c.Audit.Key == "" {
		c.Audit.Key = "log.key"
	}
	if c.Audit.Origin == "" && c.Name != "" {
		c.Audit.Origin = "custos/" + c.Name
	}
	if c.Audit.BatchMaxAge == 0 {
		c.Audit.BatchMaxAge = Duration(100 * time.Millisecond)
	}
	if c.Audit.CheckpointInterval == 0 {
		c.Audit.CheckpointInterval = Duration(time.Second)
	}
	if c.Identity.Audience == "" {
		c.Identity.Audience = "custos"
	}
	if len(c.Identity.Orgs) == 0 {
		c.Identity.Orgs = []string{"custodian", "operator", "monitor"}
	}
	if c.Identity.Leeway == 0 {
		c.Identity.Leeway = Duration(30 * time.Second)
	}
	if c.Identity.MaxTTL == 0 {
		c.Identity.MaxTTL = Duration(24 * time.Hour)
	}
	if c.Tokens.Audiences == nil {
		for _, o := range c.Identity.Orgs {
			if o != "monitor" {
				c.Tokens.Audiences = append(c.Tokens.Audiences, o)
			}
		}
	}
	if c.Erasure.ShredAfter == 0 {
		c.Erasure.ShredAfter = Duration(time.Hour)
	}
	if c.Algorithms.Dir == "" {
		c.Algorithms.Dir = "algorithms"
	}
	if c.Algorithms.Approvals == 0 {
		c.Algorithms.Approvals = 2
	}
	c.Governance.Dir = cmp.Or(c.Governance.Dir, "governance")
	if c.Governance.Require == nil {
		c.Governance.Require = []string{custos.OrgCustodian, custos.OrgMonitor}
	}
	c.Governance.Suspender = cmp.Or(c.Governance.Suspender, custos.OrgMonitor)
	c.Algorithms.MemoryMiB = cmp.Or(c.Algorithms.MemoryMiB, 1024)
	c.Algorithms.Timeout = cmp.Or(c.Algorithms.Timeout, Duration(2*time.Minute))
	c.Algorithms.OutputKiB = cmp.Or(c.Algorithms.OutputKiB, 1024)
	c.Algorithms.ModelMiB = cmp.Or(c.Algorithms.ModelMiB, 64)
	if c.Limits.MaxBodyBytes == 0 {
		c.Limits.MaxBodyBytes = 1 << 20
	}
	if c.Limits.MaxInFlight == 0 {
		c.Limits.MaxInFlight = 512
	}
	if c.Limits.MaxDetokenize == 0 {
		c.Limits.MaxDetokenize = 100
	}
	if c.Limits.RequestTimeoutMS == 0 {
		c.Limits.RequestTimeoutMS = 10_000
	}
}

var (
	nameRE  = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)
	ccRE    = regexp.MustCompile(`^[A-Z]{2}$`)
	labelRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$`)
)

// Validate reports every problem with c, each naming its key.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if !nameRE.MatchString(c.Name) {
		bad("name", "must be lower-case letters, digits and dashes, starting with a letter")
	}
	if !ccRE.MatchString(c.Jurisdiction) {
		bad("jurisdiction", "must be an ISO 3166-1 alpha-2 code such as US")
	}
	if len(c.PermittedLocations) == 0 {
		bad("permitted_locations", "must list at least one storage location label")
	}
	for _, l := range c.PermittedLocations {
		if !labelRE.MatchString(l) {
			bad("permitted_locations", "%q is not a valid label", l)
		}
	}
	switch c.Store.Driver {
	case "sqlite":
		if c.Store.Path == "" {
			bad("store.path", "is required for the sqlite driver")
		}
	case "postgres":
		if c.Store.DSNEnv == "" {
			bad("store.dsn_env", "is required for the postgres driver: name the environment variable that holds the connection string")
		}
	default:
		bad("store.driver", "must be sqlite or postgres, not %q", c.Store.Driver)
	}
	if !slices.Contains(c.PermittedLocations, c.Store.Location) {
		bad("store.location", "%q is not among permitted_locations %v: data of %s may not be stored there", c.Store.Location, c.PermittedLocations, c.Jurisdiction)
	}
	for key, v := range map[string]string{"keyring": c.Keyring, "schema": c.Schema, "policies": c.Policies} {
		if v == "" {
			bad(key, "is required")
		}
	}
	c.validateIdentity(bad)
	c.validateAudit(bad)
	c.validateAlgorithms(bad)
	c.validateGovernance(bad)
	c.validateAggregates(bad)
	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		bad("tls", "cert and key go together")
	}
	if c.TLS.ClientCA != "" && c.TLS.Cert == "" {
		bad("tls.client_ca", "needs tls.cert and tls.key: client certificates are only seen over TLS")
	}
	for _, a := range c.Tokens.Audiences {
		if !nameRE.MatchString(a) {
			bad("tokens.audiences", "%q is not a valid audience name", a)
		}
	}
	if c.Erasure.ShredAfter < Duration(time.Second) || c.Erasure.ShredAfter > Duration(30*24*time.Hour) {
		bad("erasure.shred_after", "must be between 1s and 720h")
	}
	if c.Limits.MaxBodyBytes < 1024 || c.Limits.MaxBodyBytes > 64<<20 {
		bad("limits.max_body_bytes", "must be between 1 KiB and 64 MiB")
	}
	if c.Limits.MaxInFlight < 1 || c.Limits.MaxDetokenize < 1 || c.Limits.RequestTimeoutMS < 1 {
		bad("limits", "values must be positive")
	}
	if c.Limits.MaxDetokenize > 256 {
		bad("limits.max_detokenize", "must be at most 256, the subjects one audit entry names")
	}
	return errors.Join(errs...)
}

func (c *Config) validateAggregates(bad func(key, format string, args ...any)) {
	a := c.Aggregates
	for org, k := range a.MinSubjects {
		if org != "default" && !slices.Contains(c.Identity.Orgs, org) {
			bad("aggregates.min_subjects", "%q is neither default nor an org of identity.orgs", org)
		}
		if k < 2 || k > 1_000_000 {
			bad("aggregates.min_subjects", "k of %s must be between 2 and 1000000, not %d: a group of one subject describes that subject", org, k)
		}
	}
	for _, org := range a.RequireNoise {
		if !slices.Contains(c.Identity.Orgs, org) {
			bad("aggregates.require_noise", "%q is not an org of identity.orgs", org)
		}
	}
	if a.Budget < 0 || a.Budget > 1000 {
		bad("aggregates.budget", "must be between 0 and 1000")
	}
	if a.History < 0 || a.History > 100_000 {
		bad("aggregates.history", "must be between 1 and 100000")
	}
}

func (c *Config) validateIdentity(bad func(key, format string, args ...any)) {
	id := c.Identity
	if id.Audience == "" {
		bad("identity.audience", "is required")
	}
	for _, o := range id.Orgs {
		if !nameRE.MatchString(o) {
			bad("identity.orgs", "%q is not a valid org name", o)
		}
		if o == custos.OrgAlgorithm {
			bad("identity.orgs", "%q is reserved for algorithms running inside custos", o)
		}
	}
	if len(id.Issuers) == 0 {
		bad("identity.issuers", "must list at least one token issuer")
	}
	for i, is := range id.Issuers {
		if is.Name == "" || is.PublicKey == "" {
			bad(fmt.Sprintf("identity.issuers[%d]", i), "needs name and public_key")
		}
	}
	if id.Leeway < 0 || id.Leeway > Duration(5*time.Minute) {
		bad("identity.leeway", "must be between 0 and 5m")
	}
	if id.MaxTTL < Duration(time.Minute) || id.MaxTTL > Duration(30*24*time.Hour) {
		bad("identity.max_ttl", "must be between 1m and 720h")
	}
}

var originRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/:-]{0,127}$`)

func (c *Config) validateAudit(bad func(key, format string, args ...any)) {
	a := c.Audit
	if !originRE.MatchString(a.Origin) {
		bad("audit.origin", "must be 1-128 bytes of letters, digits and ._/:- naming the deployment")
	}
	if a.BatchMaxAge < Duration(50*time.Millisecond) || a.BatchMaxAge > Duration(10*time.Second) {
		bad("audit.batch_max_age", "must be between 50ms and 10s (it delays checkpoints, not requests)")
	}
	if a.CheckpointInterval < Duration(100*time.Millisecond) || a.CheckpointInterval > Duration(time.Hour) {
		bad("audit.checkpoint_interval", "must be between 100ms and 1h")
	}
	for i, w := range a.Witnesses {
		if w.Name == "" || w.URL == "" || w.Key == "" {
			bad(fmt.Sprintf("audit.witnesses[%d]", i), "needs name, url and key")
		}
	}
}

func (c *Config) validateAlgorithms(bad func(key, format string, args ...any)) {
	a := c.Algorithms
	if !a.Enabled() {
		return
	}
	if len(a.Operators) == 0 {
		bad("algorithms.operators", "must list the operator's verifier keys when reviewers are listed")
	}
	if len(a.Reviewers) == 0 {
		bad("algorithms.reviewers", "must list the reviewers' verifier keys when operators are listed")
	}
	if a.Approvals < 1 || a.Approvals > len(a.Reviewers) {
		bad("algorithms.approvals", "must be between 1 and the number of reviewers (%d), not %d", len(a.Reviewers), a.Approvals)
	}
	for _, p := range slices.Concat(a.Operators, a.Reviewers) {
		if p == "" {
			bad("algorithms", "a key file path is empty")
		}
	}
	switch {
	case a.Workers < 0 || a.Workers > 64:
		bad("algorithms.workers", "must be between 1 and 64 (0 for the number of CPUs)")
	case a.MemoryMiB < 1 || a.MemoryMiB > 4096:
		bad("algorithms.memory_mib", "must be between 1 and 4096")
	case a.Timeout < Duration(time.Second) || a.Timeout > Duration(time.Hour):
		bad("algorithms.timeout", "must be between 1s and 1h")
	case a.OutputKiB < 1 || a.OutputKiB > 1<<20:
		bad("algorithms.output_kib", "must be between 1 and 1048576")
	case a.ModelMiB < 1 || a.ModelMiB > 1024:
		bad("algorithms.model_mib", "must be between 1 and 1024")
	}
}

func (c *Config) validateGovernance(bad func(key, format string, args ...any)) {
	g := c.Governance
	if len(g.Require) == 0 {
		bad("governance.require", "must list at least one role: a change signed by no one must not apply")
	}
	for role, keys := range g.Signers {
		if !nameRE.MatchString(role) {
			bad("governance.signers", "%q is not a valid role name", role)
		}
		for _, k := range keys {
			if k == "" {
				bad("governance.signers."+role, "a key file path is empty")
			}
		}
	}
	if len(g.Signers) == 0 {
		return
	}
	for _, r := range g.Require {
		if len(g.Signers[r]) == 0 {
			bad("governance.require", "role %s lists no key under governance.signers: no change could ever be applied", r)
		}
	}
	if len(g.Signers[g.Suspender]) == 0 {
		bad("governance.suspender", "role %s lists no key under governance.signers: no suspension could ever be signed", g.Suspender)
	}
}

// Path resolves a path from the file against the config's directory.
func (c *Config) Path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.Dir, p)
}
