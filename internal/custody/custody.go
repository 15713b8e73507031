// Package custody is the request path of custos, written once:
// authenticate (done by the caller, which passes a verified Principal),
// decide (Cedar policies, field by field), act (vault, tokens, masks),
// record (an audit entry made durable) and respond.
//
// Guarantees:
//   - Deny by default: a field is released only in a form the policy allows,
//     and a request the policy does not allow touches no data.
//   - Record before release: every method that returns data returns it only
//     after its audit entry is durable; if the Auditor fails, the method
//     fails with CodeUnavailable and returns no data.
//   - Residency: subjects of another jurisdiction are refused.
//   - Algorithms: every change to the registry of algorithm bundles
//     (submission, approval, activation, retirement) and every refusal is
//     an audit entry, and a change is made only once its entries are
//     durable.
//   - Governance: every proposal, signature, application and refusal, and
//     every suspension and lift, is an audit entry holding the digests of
//     the change, durable before the change is made. A principal of the
//     operator the monitor suspended gets nothing: CheckSuspended refuses
//     it and records the refusal; the gateway calls it for every request
//     before any other work.
//   - Flows: records leave whole only through a declared flow (Export), to
//     a principal of its recipient org the policy allows, in exactly the
//     declared shape (protected fields never in clear, the record id as a
//     token of the recipient's audience), at most at the declared rate. A
//     page's audit entry (flow, count, first and last record pseudonyms,
//     forms) and its samples for the monitor are durable before the page
//     is returned; samples hold exactly what left.
//   - Errors returned are *custos.Error with a stable code and a detail free
//     of personal data, or an internal error whose cause is for the log only.
//
// custody trusts the Principal it is given (the gateway verified it), the
// Store to keep what it is given (it only ever gets ciphertext and
// pseudonyms), and the Keyring behind the vault.
package custody

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/custos/custos"
	"github.com/custos/custos/internal/flow"
	"github.com/custos/custos/internal/governance"
	"github.com/custos/custos/internal/policy"
	"github.com/custos/custos/internal/registry"
	"github.com/custos/custos/internal/sandbox"
	"github.com/custos/custos/internal/schema"
	"github.com/custos/custos/internal/token"
	"github.com/custos/custos/internal/vault"
	"golang.org/x/mod/sumdb/note"
)

// Config is everything custody needs. All fields are required but Logger,
// Now, OnErase and Registry.
type Config struct {
	Jurisdiction string
	Schema       *schema.Schema
	Policy       *policy.Engine
	Vault        *vault.Vault
	Store        custos.Store
	Tokens       *token.Tokenizer
	// Audiences are the token audiences indexed at write time, so that
	// their tokens can be detokenized.
	Audiences []string
	Auditor   custos.Auditor
	// History reads the audit log back for subjects' access histories; nil
	// when the log cannot be read here.
	History HistoryReader
	// Receipts signs erasure receipts with the custodian's key.
	Receipts note.Signer
	// KEK returns the id of the current key-encryption key, named in
	// erasure receipts: its destruction makes an erasure final.
	KEK    func() string
	Logger *slog.Logger
	Now    func() time.Time
	// OnErase schedules the key rotation that makes an erasure final on old
	// copies of the store. It is called before the deletion; if it fails,
	// nothing is erased.
	OnErase func() error
	// MaxDetokenize caps the tokens of one detokenize request.
	MaxDetokenize int
	// Algorithms and Sandbox find and run approved algorithms; nil when
	// this deployment runs none. Algorithms defaults to Registry.
	Algorithms Algorithms
	Sandbox    Sandbox
	// AlgorithmLimits caps what a manifest may ask for one run; zero
	// fields leave the sandbox's defaults. MaxModel caps a model's bytes
	// and MaxAlgorithmInput an input's; zero means DefaultMaxModel and
	// DefaultMaxAlgorithmInput.
	AlgorithmLimits   sandbox.Limits
	MaxModel          int
	MaxAlgorithmInput int
	// Registry is the registry of the operator's algorithm bundles; nil
	// when the deployment keeps none.
	Registry *registry.Registry
	// Governance holds the signed rules, the proposals to change them and
	// the suspension of the operator; nil when the deployment keeps none.
	Governance *governance.Board
	// Flows are the declared outbound flows; zero when the deployment
	// declares none, and every export is refused.
	Flows FlowsConfig
	// Aggregates configures aggregate queries.
	Aggregates AggregatesConfig
}

// Defaults of Config.
const (
	DefaultMaxModel          = 64 << 20
	DefaultMaxAlgorithmInput = 256 << 20
)

// Service runs requests. It is safe for concurrent use.
type Service struct {
	cfg    Config
	log    *slog.Logger
	grants *grants
	models sync.Mutex // one model version stored at a time
	// schema is the schema in force, replaced when a signed proposal
	// changes it.
	schema atomic.Pointer[schema.Schema]
	// flows are the declared flows in force, replaced when a signed
	// proposal changes them; flowLimiter holds each to its rate.
	flows       atomic.Pointer[flow.Set]
	flowLimiter *flow.Limiter
	// agg serializes the check and the commit of aggregate queries
	// against the ledger of earlier ones.
	agg ledger
}

// New checks cfg and returns a Service.
func New(cfg Config) (*Service, error) {
	if cfg.Schema == nil || cfg.Policy == nil || cfg.Vault == nil || cfg.Store == nil ||
		cfg.Tokens == nil || cfg.Auditor == nil || cfg.Receipts == nil || cfg.KEK == nil || cfg.Jurisdiction == "" {
		return nil, errors.New("custody: incomplete config")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxDetokenize == 0 {
		cfg.MaxDetokenize = 100
	}
	if cfg.MaxModel == 0 {
		cfg.MaxModel = DefaultMaxModel
	}
	if cfg.MaxAlgorithmInput == 0 {
		cfg.MaxAlgorithmInput = DefaultMaxAlgorithmInput
	}
	if cfg.Algorithms == nil && cfg.Registry != nil {
		cfg.Algorithms = registryAlgorithms{cfg.Registry}
	}
	s := &Service{cfg: cfg, log: cfg.Logger, grants: newGrants(), flowLimiter: flow.NewLimiter()}
	s.schema.Store(cfg.Schema)
	s.flows.Store(cfg.Flows.Set)
	return s, nil
}

// Schema returns the schema in force.
func (s *Service) Schema() *schema.Schema { return s.schema.Load() }

// SetSchema puts sc in force for the requests that start from now on.
func (s *Service) SetSchema(sc *schema.Schema) { s.schema.Store(sc) }

// Policy returns the policy engine.
func (s *Service) Policy() *policy.Engine { return s.cfg.Policy }

// Request is what every call carries besides its own arguments.
type Request struct {
	Principal custos.Principal
	Purpose   custos.Purpose
}

func (r Request) entry(action string) custos.AuditEntry {
	p := r.Principal
	return custos.AuditEntry{Action: action, Decision: "allow", Principal: p.ID, Org: p.Org, Loc: p.Loc, Purpose: string(r.Purpose)}
}

// record makes e durable and returns its index; failure is reported as
// CodeUnavailable and the caller must release nothing.
func (s *Service) record(ctx context.Context, e custos.AuditEntry) (uint64, error) {
	e.Time = s.cfg.Now().UTC()
	idx, err := s.cfg.Auditor.Record(ctx, e)
	if err != nil {
		s.log.Error("audit record failed", "action", e.Action, "err", err)
		return 0, &custos.Error{Code: custos.CodeAuditUnavailable, Detail: "the audit log cannot record this request; nothing was released"}
	}
	return idx, nil
}

// deny records a refusal and returns err. A refusal that cannot be
// recorded is still a refusal.
func (s *Service) deny(ctx context.Context, e custos.AuditEntry, err *custos.Error) error {
	e.Decision, e.Code = "deny", err.Code
	if _, rerr := s.record(ctx, e); rerr != nil {
		s.log.Warn("denial not recorded", "action", e.Action)
	}
	return err
}

func (s *Service) pseudonym(id string) string { return s.cfg.Tokens.Pseudonym("audit", id) }

// fieldsOf returns the fields of c in schema order.
func fieldsOf(c *schema.Collection) []policy.Field {
	out := make([]policy.Field, 0, len(c.Order))
	for _, n := range c.Order {
		out = append(out, fieldOf(c, n))
	}
	return out
}

// fieldOf returns the field of c with the given name, which c must have.
func fieldOf(c *schema.Collection, name string) policy.Field {
	f := c.Fields[name]
	return policy.Field{Collection: c.Name, Name: name, Class: f.Class, Type: f.Type}
}

func internal(what string, err error) error {
	return fmt.Errorf("couldn't %s: %w", what, err)
}

// key unwraps subj's data key. A rotation may have re-wrapped it since subj
// was read and destroyed the KEK it was read under: then subj is read again
// and the unwrap tried once more.
func (s *Service) key(ctx context.Context, subj custos.StoredSubject, reason custos.KeyReason) (*vault.DataKey, error) {
	k, err := s.cfg.Vault.Key(ctx, subj, reason)
	if errors.Is(err, custos.ErrKeyDestroyed) {
		if subj, err = s.cfg.Store.Subject(ctx, subj.ID); err == nil {
			k, err = s.cfg.Vault.Key(ctx, subj, reason)
		}
	}
	if err != nil {
		return nil, internal("unwrap data key", err)
	}
	return k, nil
}

// RecordAuthFailures records that n requests failed authentication during
// window, as one entry: failures are aggregated so that a flood of bad
// credentials neither floods the log nor goes unrecorded. The entry holds
// the count only, never what the requests presented.
func (s *Service) RecordAuthFailures(ctx context.Context, n int, window time.Duration) error {
	_, err := s.record(ctx, custos.AuditEntry{
		Action: "auth-failure", Decision: "deny", Code: custos.CodeUnauthenticated,
		Count: n, Detail: "within " + window.String(),
	})
	return err
}
