package custody

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/custos/custos"
	"github.com/custos/custos/internal/algo"
	"github.com/custos/custos/internal/policy"
	"github.com/custos/custos/internal/registry"
	"github.com/custos/custos/internal/sandbox"
)

// Bundle is an approved algorithm as custody runs it: its verified manifest
// and its module, whose bytes the manifest's digest names.
type Bundle struct {
	Manifest *algo.Manifest
	Module   []byte
}

// Algorithms finds the bundles that may run.
type Algorithms interface {
	// Active returns the active bundle of the algorithm name, or an error
	// with CodeNotFound when none is active.
	Active(ctx context.Context, name string) (Bundle, error)
	// Approved returns the bundle whose module has the given hex SHA-256,
	// if it was ever activated (retired ones included, so that their runs
	// can be replayed), or an error with CodeNotFound.
	Approved(ctx context.Context, digest string) (Bundle, error)
}

// registryAlgorithms gives the registry's bundles to run.
type registryAlgorithms struct{ r *registry.Registry }

func (a registryAlgorithms) Active(ctx context.Context, name string) (Bundle, error) {
	b, err := a.r.Active(ctx, name)
	return Bundle(b), err
}

func (a registryAlgorithms) Approved(ctx context.Context, digest string) (Bundle, error) {
	b, err := a.r.Approved(ctx, digest)
	return Bundle(b), err
}

// Sandbox runs modules (the sandbox's worker pool implements it). A run is
// a pure function of the module, its inputs and the seed.
type Sandbox interface {
	Train(ctx context.Context, m sandbox.Module, input []byte, seed uint64, lim sandbox.Limits) ([]byte, error)
	Recommend(ctx context.Context, m sandbox.Module, model, input []byte, seed uint64, lim sandbox.Limits) ([]byte, error)
}

// CodeAlgorithmFailed is the code of a run the algorithm failed: it trapped,
// ran out of time or memory, or returned what the ABI does not allow.
const CodeAlgorithmFailed = "algorithm_failed"

// inputCollection holds the sealed inputs of recommendations, one record per
// input, named by the input's SHA-256 and sealed under its subject's data
// key: replay reads them back, and erasing the subject erases them.
const inputCollection = "algorithm/inputs"

// MaxRecommendations caps k.
const MaxRecommendations = 100

// Training is the outcome of Train.
type Training struct {
	Algorithm  string `json:"algorithm"`
	Bundle     string `json:"bundle"`
	Model      int    `json:"model"`
	Records    int    `json:"-"`
	AuditIndex uint64 `json:"audit_index"`
}

// Recommendation is the outcome of Recommend.
type Recommendation struct {
	Items      []string `json:"items"`
	AuditIndex uint64   `json:"audit_index"`
}

// runFacts are what the audit entry of a run records, in its detail, so
// that a replay can find everything it needs from the entry alone.
type runFacts struct {
	algorithm, bundle string
	model             int
	seed              uint64
	input, output     string // hex SHA-256
}

func (f runFacts) String() string {
	return fmt.Sprintf("algorithm=%s bundle=%s model=%d seed=%d input=%s output=%s",
		f.algorithm, f.bundle, f.model, f.seed, f.input, f.output)
}

func parseRunFacts(detail string) (runFacts, error) {
	var f runFacts
	kv := map[string]string{}
	for _, p := range strings.Fields(detail) {
		k, v, _ := strings.Cut(p, "=")
		kv[k] = v
	}
	var err1, err2 error
	f.algorithm, f.bundle, f.input, f.output = kv["algorithm"], kv["bundle"], kv["input"], kv["output"]
	f.model, err1 = strconv.Atoi(kv["model"])
	f.seed, err2 = strconv.ParseUint(kv["seed"], 10, 64)
	if err1 != nil || err2 != nil || f.algorithm == "" || len(f.bundle) != 64 || len(f.input) != 64 || len(f.output) != 64 {
		return runFacts{}, errors.New("not the entry of a recommendation")
	}
	return f, nil
}

func newSeed() uint64 {
	var b [8]byte
	rand.Read(b[:]) // never fails
	return binary.LittleEndian.Uint64(b[:])
}

// bundle returns the active bundle of name, authorized for action a of r.
func (s *Service) bundle(ctx context.Context, r Request, a custos.Action, e *custos.AuditEntry, name string) (Bundle, error) {
	e.Detail = "algorithm=" + name
	if !s.cfg.Policy.AllowedOnAlgorithm(r.Principal, a, name, policy.Context{Purpose: r.Purpose}) {
		return Bundle{}, s.deny(ctx, *e, custos.Errorf(custos.CodeForbidden, "policy does not allow %s of this algorithm", a))
	}
	if s.cfg.Algorithms == nil || s.cfg.Sandbox == nil {
		return Bundle{}, custos.Errorf(custos.CodeNotFound, "this deployment runs no algorithms")
	}
	b, err := s.cfg.Algorithms.Active(ctx, name)
	if err != nil {
		return Bundle{}, err
	}
	return b, nil
}

// module returns b's module for the sandbox, bound to the digest the
// reviewers approved: bytes that differ by one bit do not run.
func module(b Bundle) (sandbox.Module, error) {
	d, err := hex.DecodeString(b.Manifest.ModuleSHA256)
	if err != nil || len(d) != sha256.Size {
		return sandbox.Module{}, errors.New("bundle digest is not a SHA-256")
	}
	return sandbox.Module{Digest: [32]byte(d), Wasm: b.Module}, nil
}

// limits returns the limits of b's runs: what its manifest asks, capped by
// the custodian's configuration.
func (s *Service) limits(b Bundle) sandbox.Limits {
	caps, m := s.cfg.AlgorithmLimits, b.Manifest.Limits
	capped := func(asked, cap int64) int64 {
		if asked <= 0 || asked > cap && cap > 0 {
			return cap
		}
		return asked
	}
	return sandbox.Limits{
		MemoryBytes: uint64(capped(int64(m.MemoryMiB)<<20, int64(caps.MemoryBytes))),
		Timeout:     time.Duration(capped(int64(m.TimeoutMS)*1e6, int64(caps.Timeout))),
		OutputBytes: int(capped(int64(m.OutputKiB)<<10, int64(caps.OutputBytes))),
	}
}

// maxModel caps the model of b.
func (s *Service) maxModel(b Bundle) int {
	caps := s.cfg.MaxModel
	if m := b.Manifest.Limits.ModelMiB << 20; m > 0 && (caps <= 0 || m < caps) {
		return m
	}
	return caps
}

// failed turns a sandbox failure into a caller's error; the module's own
// words go to the log only.
func (s *Service) failed(name string, err error) error {
	var se *sandbox.Error
	if errors.As(err, &se) {
		s.log.Warn("algorithm run failed", slog.String("algorithm", name), slog.String("code", string(se.Code)), slog.String("message", se.Message), slog.String("stderr", se.Stderr))
		if se.Code == sandbox.CodeUnavailable {
			return custos.Errorf(custos.CodeUnavailable, "the sandbox is unavailable; retry later")
		}
		return custos.Errorf(CodeAlgorithmFailed, "the algorithm failed (%s)", se.Code)
	}
	return internal("run algorithm", err)
}

// runFailed records a run that failed for a reason the caller may see, as
// a refusal with its code, and returns err.
func (s *Service) runFailed(ctx context.Context, e custos.AuditEntry, err error) error {
	if ce, ok := errors.AsType[*custos.Error](err); ok {
		return s.deny(ctx, e, ce)
	}
	return err
}

// Train runs the training entry of the active bundle of algorithm name over
// the inputs its manifest declares, and seals the model it returns in the
// vault as the next version. Nothing of the model is returned.
func (s *Service) Train(ctx context.Context, r Request, name string) (Training, error) {
	e := r.entry("train")
	b, err := s.bundle(ctx, r, custos.ActionTrain, &e, name)
	if err != nil {
		return Training{}, err
	}
	mod, err := module(b)
	if err != nil {
		return Training{}, internal("load bundle", err)
	}
	a := Algorithm{Name: name, Reads: b.Manifest.Reads}
	seed := newSeed()
	input, err := s.TrainInput(ctx, a, seed, s.cfg.MaxAlgorithmInput)
	if err != nil {
		return Training{}, err
	}
	model, err := s.cfg.Sandbox.Train(ctx, mod, input, seed, s.limits(b))
	if err != nil {
		return Training{}, s.runFailed(ctx, e, s.failed(name, err))
	}
	if limit := s.maxModel(b); limit > 0 && len(model) > limit {
		return Training{}, s.runFailed(ctx, e, custos.Errorf(CodeAlgorithmFailed, "the algorithm's model is larger than %d bytes", limit))
	}
	m, err := s.SealModel(ctx, a, b.Manifest.ModuleSHA256, model)
	if err != nil {
		return Training{}, err
	}
	e.Detail = fmt.Sprintf("algorithm=%s bundle=%s model=%d seed=%d input=%s", name, m.Bundle, m.Version, seed, algo.Digest(input))
	idx, err := s.record(ctx, e)
	if err != nil {
		return Training{}, err
	}
	return Training{Algorithm: name, Bundle: m.Bundle, Model: m.Version, AuditIndex: idx}, nil
}

// Recommend runs the recommendation entry of the active bundle of algorithm
// name for the subject with the given id, with the newest model that bundle
// learned, checks the output and releases it once its audit entry is
// durable. The entry names the bundle, the model version, the seed and the
// hashes of the input (sealed for replay) and of the output.
func (s *Service) Recommend(ctx context.Context, r Request, name, subject string, k int) (Recommendation, error) {
	e := r.entry("recommend")
	b, err := s.bundle(ctx, r, custos.ActionRecommend, &e, name)
	if err != nil {
		return Recommendation{}, err
	}
	if k < 1 || k > MaxRecommendations {
		return Recommendation{}, custos.Errorf(custos.CodeInvalidRequest, "k must be 1 to %d", MaxRecommendations)
	}
	latest, err := s.LatestModel(ctx, name)
	if err != nil {
		return Recommendation{}, err
	}
	if latest.Bundle != b.Manifest.ModuleSHA256 {
		return Recommendation{}, custos.Errorf(custos.CodeConflict, "the newest model was learned by another version of the algorithm: train the active version first")
	}
	_, model, err := s.OpenModel(ctx, name, latest.Version)
	if err != nil {
		return Recommendation{}, err
	}
	a := Algorithm{Name: name, Reads: b.Manifest.Reads}
	seed := newSeed()
	input, err := s.RecommendInput(ctx, a, subject, k, seed, s.cfg.MaxAlgorithmInput)
	if err != nil {
		return Recommendation{}, err
	}
	e.Subject = s.pseudonym(subject)
	items, out, err := s.runRecommend(ctx, b, model, input, seed, k)
	if err != nil {
		return Recommendation{}, s.runFailed(ctx, e, err)
	}
	facts := runFacts{algorithm: name, bundle: b.Manifest.ModuleSHA256, model: latest.Version, seed: seed, input: algo.Digest(input), output: algo.Digest(out)}
	if err := s.sealInput(ctx, subject, facts.input, input); err != nil {
		return Recommendation{}, err
	}
	e.Detail, e.Count = facts.String(), len(items)
	idx, err := s.record(ctx, e)
	if err != nil {
		return Recommendation{}, err
	}
	return Recommendation{Items: items, AuditIndex: idx}, nil
}

// runRecommend runs the recommendation and checks its output: one JSON
// object with "items" only, at most k distinct ids of existing records of
// the manifest's output collection. It returns the items and the output
// bytes.
func (s *Service) runRecommend(ctx context.Context, b Bundle, model, input []byte, seed uint64, k int) ([]string, []byte, error) {
	mod, err := module(b)
	if err != nil {
		return nil, nil, internal("load bundle", err)
	}
	out, err := s.cfg.Sandbox.Recommend(ctx, mod, model, input, seed, s.limits(b))
	if err != nil {
		return nil, nil, s.failed(b.Manifest.Name, err)
	}
	items, err := s.checkOutput(ctx, b.Manifest.Output, out, k)
	if err != nil {
		s.log.Warn("algorithm output refused", slog.String("algorithm", b.Manifest.Name), slog.Any("err", err))
		return nil, nil, custos.Errorf(CodeAlgorithmFailed, "the algorithm returned an output that may not leave: %s", custos.ErrorDetail(err))
	}
	return items, out, nil
}

// checkOutput parses and checks a recommendation.
func (s *Service) checkOutput(ctx context.Context, o algo.Output, out []byte, k int) ([]string, error) {
	var v struct {
		Items []string `json:"items"`
	}
	d := json.NewDecoder(bytes.NewReader(out))
	d.DisallowUnknownFields()
	if err := d.Decode(&v); err != nil || d.More() || v.Items == nil {
		return nil, custos.Errorf(CodeAlgorithmFailed, "not one object with items only")
	}
	if len(v.Items) > k {
		return nil, custos.Errorf(CodeAlgorithmFailed, "%d items, more than k", len(v.Items))
	}
	coll, err := s.Schema().Collection(o.Collection)
	if err != nil {
		return nil, custos.Errorf(CodeAlgorithmFailed, "output collection %s is not in the schema", o.Collection)
	}
	f, ok := coll.Fields[o.Field]
	if !ok || f.Class.Sealed() {
		return nil, custos.Errorf(CodeAlgorithmFailed, "output field %s.%s is not a field that may leave", o.Collection, o.Field)
	}
	seen := map[string]bool{}
	for i, id := range v.Items {
		if seen[id] || validRecordID(id) != nil {
			return nil, custos.Errorf(CodeAlgorithmFailed, "item %d is a duplicate or not an id", i)
		}
		seen[id] = true
		rec, err := s.cfg.Store.Record(ctx, coll.Name, id)
		if errors.Is(err, custos.ErrNotFound) {
			return nil, custos.Errorf(CodeAlgorithmFailed, "item %d is no record of %s", i, coll.Name)
		} else if err != nil {
			return nil, internal("check output", err)
		}
		var clear map[string]json.RawMessage
		if err := json.Unmarshal(rec.Clear, &clear); err != nil {
			return nil, internal("check output", err)
		}
		if !bytes.Equal(clear[o.Field], jsonString(id)) {
			return nil, custos.Errorf(CodeAlgorithmFailed, "item %d is not the %s of its record", i, o.Field)
		}
	}
	return v.Items, nil
}

// sealInput keeps a recommendation's input, sealed under its subject's data
// key, for replay.
func (s *Service) sealInput(ctx context.Context, subject, sum string, input []byte) error {
	subj, err := s.subject(ctx, subject)
	if err != nil {
		return err
	}
	reason := custos.KeyReason{Action: custos.ActionRecommend, Principal: "algorithm", Purpose: PurposeAlgorithm}
	return s.putSealed(ctx, subj, reason, inputCollection, sum, []byte("{}"), input, s.cfg.Now().UTC())
}

// openInput returns the sealed input of the given SHA-256.
func (s *Service) openInput(ctx context.Context, sum string) ([]byte, error) {
	rec, err := s.cfg.Store.Record(ctx, inputCollection, sum)
	if errors.Is(err, custos.ErrNotFound) {
		return nil, custos.Errorf(custos.CodeNotFound, "the recommendation's input is gone: its subject was erased")
	} else if err != nil {
		return nil, internal("read input", err)
	}
	input, err := s.openSealed(ctx, rec, custos.KeyReason{Action: custos.ActionReplay, Principal: "algorithm", Purpose: PurposeAlgorithm})
	if err != nil {
		return nil, err
	}
	if algo.Digest(input) != sum {
		return nil, internal("open input", errors.New("input does not match its digest"))
	}
	return input, nil
}

// Replayed is the outcome of Replay.
type Replayed struct {
	Index      uint64 `json:"index"`
	Algorithm  string `json:"algorithm"`
	Bundle     string `json:"bundle"`
	Model      int    `json:"model"`
	Logged     string `json:"logged_output_sha256"`
	Replayed   string `json:"replayed_output_sha256"`
	Match      bool   `json:"match"`
	AuditIndex uint64 `json:"audit_index"`
}

// Replay re-runs the recommendation whose entry is at index on the log, from
// its sealed input, with the bundle, model version and seed the entry names,
// and reports whether the output hashes to what the entry says. It releases
// no data: hashes and the verdict only. The replay is itself recorded.
func (s *Service) Replay(ctx context.Context, r Request, index uint64) (Replayed, error) {
	if s.cfg.History == nil {
		return Replayed{}, custos.Errorf(custos.CodeUnavailable, "the audit log cannot be read here")
	}
	if index >= s.cfg.History.Size() {
		return Replayed{}, custos.Errorf(custos.CodeNotFound, "no entry %d on the log", index)
	}
	var logged custos.AuditEntry
	var perr error
	err := s.cfg.History.Entries(ctx, index, index+1, func(_ uint64, b []byte) bool {
		logged, perr = custos.ParseAuditEntry(b)
		return false
	})
	if err = errors.Join(err, perr); err != nil {
		return Replayed{}, internal("read audit entry", err)
	}
	facts, err := parseRunFacts(logged.Detail)
	if logged.Action != "recommend" || logged.Decision != "allow" || err != nil {
		return Replayed{}, custos.Errorf(custos.CodeInvalidRequest, "entry %d is not a recommendation", index)
	}
	e := r.entry("replay")
	e.Detail = fmt.Sprintf("index=%d algorithm=%s", index, facts.algorithm)
	if !s.cfg.Policy.AllowedOnAlgorithm(r.Principal, custos.ActionReplay, facts.algorithm, policy.Context{Purpose: r.Purpose}) {
		return Replayed{}, s.deny(ctx, e, custos.Errorf(custos.CodeForbidden, "policy does not allow replay of this algorithm"))
	}
	if s.cfg.Algorithms == nil || s.cfg.Sandbox == nil {
		return Replayed{}, custos.Errorf(custos.CodeNotFound, "this deployment runs no algorithms")
	}
	b, err := s.cfg.Algorithms.Approved(ctx, facts.bundle)
	if err != nil {
		return Replayed{}, err
	}
	_, model, err := s.OpenModel(ctx, facts.algorithm, facts.model)
	if err != nil {
		return Replayed{}, err
	}
	input, err := s.openInput(ctx, facts.input)
	if err != nil {
		return Replayed{}, err
	}
	out := Replayed{Index: index, Algorithm: facts.algorithm, Bundle: facts.bundle, Model: facts.model, Logged: facts.output}
	mod, err := module(b)
	if err != nil {
		return Replayed{}, internal("load bundle", err)
	}
	got, err := s.cfg.Sandbox.Recommend(ctx, mod, model, input, facts.seed, s.limits(b))
	if err != nil {
		return Replayed{}, s.runFailed(ctx, e, s.failed(facts.algorithm, err))
	}
	out.Replayed = algo.Digest(got)
	out.Match = out.Replayed == out.Logged
	e.Detail += fmt.Sprintf(" match=%t", out.Match)
	if out.AuditIndex, err = s.record(ctx, e); err != nil {
		return Replayed{}, err
	}
	return out, nil
}
