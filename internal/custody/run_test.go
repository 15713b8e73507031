package custody_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/custos/custos"
	"github.com/custos/custos/algo/guest"
	"github.com/custos/custos/examples/covisit"
	"github.com/custos/custos/internal/algo"
	"github.com/custos/custos/internal/custody"
	"github.com/custos/custos/internal/sandbox"
)

// registry holds one active bundle and the bundles ever approved.
type registry struct {
	active   custody.Bundle
	approved []custody.Bundle
}

func (r *registry) Active(_ context.Context, name string) (custody.Bundle, error) {
	if r.active.Manifest == nil || r.active.Manifest.Name != name {
		return custody.Bundle{}, custos.Errorf(custos.CodeNotFound, "no active algorithm %s", name)
	}
	return r.active, nil
}

func (r *registry) Approved(_ context.Context, digest string) (custody.Bundle, error) {
	for _, b := range r.approved {
		if b.Manifest.ModuleSHA256 == digest {
			return b, nil
		}
	}
	return custody.Bundle{}, custos.Errorf(custos.CodeNotFound, "no such bundle")
}

func (r *registry) activate(module string) {
	sum := sha256.Sum256([]byte(module))
	m := &algo.Manifest{Name: "covisit", Version: "1", ABI: 1, ModuleSHA256: hex.EncodeToString(sum[:]),
		Reads: covisitAlg.Reads, Output: algo.Output{Collection: "videos", Field: "id"}}
	r.active = custody.Bundle{Manifest: m, Module: []byte(module)}
	r.approved = append(r.approved, r.active)
}

// native runs covisit compiled natively, as the sandbox runs its module: a
// function of the input and the seed. output, when set, replaces what a
// recommendation returns; runs counts the calls.
type native struct {
	output func(items []string) []byte
	runs   atomic.Int32
}

func (n *native) Train(_ context.Context, m sandbox.Module, input []byte, seed uint64, _ sandbox.Limits) ([]byte, error) {
	n.runs.Add(1)
	if sha256.Sum256(m.Wasm) != m.Digest {
		return nil, &sandbox.Error{Code: sandbox.CodeInvalidModule, Message: "digest mismatch"}
	}
	in, err := guest.DecodeTrainInput(input)
	if err != nil {
		return nil, err
	}
	return covisit.Algorithm{}.Train(in)
}

func (n *native) Recommend(_ context.Context, m sandbox.Module, model, input []byte, seed uint64, _ sandbox.Limits) ([]byte, error) {
	n.runs.Add(1)
	in, err := guest.DecodeRecommendInput(input)
	if err != nil {
		return nil, err
	}
	items, err := covisit.Algorithm{}.Recommend(model, in)
	if err != nil {
		return nil, err
	}
	if n.output != nil {
		return n.output(items), nil
	}
	return guest.EncodeRecommendOutput(items, in.K)
}

// running is a platform whose service runs covisit.
func running(t *testing.T) (*fixture, *custody.Service, *registry, *native) {
	f := platform(t)
	reg, nat := &registry{}, &native{}
	reg.activate("module v1")
	s := f.env.With(t, func(c *custody.Config) { c.Algorithms, c.Sandbox, c.Auditor = reg, nat, f.auditor })
	return f, s, reg, nat
}

func TestTrainRecommendReplay(t *testing.T) {
	f, s, reg, _ := running(t)
	ctx := context.Background()
	if _, err := s.Recommend(ctx, svc, "covisit", "user-bravo", 5); custos.ErrorCode(err) != custos.CodeNotFound {
		t.Fatalf("recommend before training: err = %v, want not_found", err)
	}
	tr, err := s.Train(ctx, svc, "covisit")
	if err != nil {
		t.Fatal(err)
	}
	if tr.Model != 1 || tr.Bundle != reg.active.Manifest.ModuleSHA256 {
		t.Fatalf("training = %+v", tr)
	}
	rec, err := s.Recommend(ctx, svc, "covisit", "user-bravo", 5)
	if err != nil {
		t.Fatal(err)
	}
	// user-bravo watched vid-1, which user-alpha watched with vid-2.
	if len(rec.Items) == 0 || rec.Items[0] != "vid-2" || slices.Contains(rec.Items, "vid-1") {
		t.Errorf("recommendation = %q, want vid-2 first and not vid-1, already watched", rec.Items)
	}
	entries := f.env.Entries(t)
	e := entries[rec.AuditIndex]
	if e.Action != "recommend" || e.Subject == "" || e.Count != len(rec.Items) ||
		!strings.Contains(e.Detail, "bundle="+tr.Bundle) || !strings.Contains(e.Detail, "model=1") {
		t.Errorf("recommend entry = %+v", e)
	}
	if strings.Contains(e.Detail, "user-bravo") || e.Subject == "user-bravo" {
		t.Error("the entry names the subject in clear")
	}
	if te := entries[tr.AuditIndex]; te.Action != "train" || !strings.Contains(te.Detail, "model=1") {
		t.Errorf("train entry = %+v", te)
	}

	rp, err := s.Replay(ctx, monitor, rec.AuditIndex)
	if err != nil {
		t.Fatal(err)
	}
	if !rp.Match || rp.Logged != rp.Replayed || rp.Model != 1 {
		t.Errorf("replay = %+v, want a match", rp)
	}
	if _, err := s.Replay(ctx, svc, rec.AuditIndex); custos.ErrorCode(err) != custos.CodeForbidden {
		t.Errorf("the operator replays: err = %v, want forbidden", err)
	}
	if _, err := s.Replay(ctx, monitor, tr.AuditIndex); custos.ErrorCode(err) != custos.CodeInvalidRequest {
		t.Errorf("replay of a training entry: err = %v, want invalid_request", err)
	}

	// A new version activated: its recommendations wait for its own model.
	reg.activate("module v2")
	if _, err := s.Recommend(ctx, svc, "covisit", "user-bravo", 5); custos.ErrorCode(err) != custos.CodeConflict {
		t.Errorf("recommend with a model of the old version: err = %v, want conflict", err)
	}
	// The old version's run still replays.
	if rp, err := s.Replay(ctx, monitor, rec.AuditIndex); err != nil || !rp.Match {
		t.Errorf("replay after a new version = %+v, %v", rp, err)
	}
}

func TestReplayDetectsADifferentOutput(t *testing.T) {
	_, s, _, nat := running(t)
	ctx := context.Background()
	if _, err := s.Train(ctx, svc, "covisit"); err != nil {
		t.Fatal(err)
	}
	rec, err := s.Recommend(ctx, svc, "covisit", "user-bravo", 5)
	if err != nil {
		t.Fatal(err)
	}
	nat.output = func([]string) []byte { return []byte(`{"items":["vid-3"]}`) }
	rp, err := s.Replay(ctx, monitor, rec.AuditIndex)
	if err != nil {
		t.Fatal(err)
	}
	if rp.Match {
		t.Error("a replay whose output differs from the logged one matched")
	}
}

func TestRecommendChecksOutput(t *testing.T) {
	f, s, _, nat := running(t)
	ctx := context.Background()
	if _, err := s.Train(ctx, svc, "covisit"); err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{
		`{"items":["nosuch-video"]}`,
		`{"items":["vid-2","vid-2"]}`,
		`{"items":["vid-1","vid-2","vid-3"]}`, // more than k = 2
		`{"items":["vid-2"],"note":"user-alpha"}`,
		`{"items":["vid-2"]} {}`,
		`not json`,
		`{"items":[1]}`,
		`{"items":["../vid-2"]}`,
	} {
		nat.output = func([]string) []byte { return []byte(out) }
		rec, err := s.Recommend(ctx, svc, "covisit", "user-bravo", 2)
		if custos.ErrorCode(err) != custody.CodeAlgorithmFailed || rec.Items != nil {
			t.Errorf("output %s: %v, %v; want %s and nothing released", out, rec.Items, err, custody.CodeAlgorithmFailed)
		}
	}
	refused := 0
	for _, e := range f.env.Entries(t) {
		if e.Action == "recommend" && e.Decision == "deny" && e.Code == custody.CodeAlgorithmFailed {
			refused++
		}
	}
	if refused != 8 {
		t.Errorf("%d refused recommendations on the log, want 8", refused)
	}
}

func TestRecommendRefusals(t *testing.T) {
	f, s, _, nat := running(t)
	ctx := context.Background()
	if _, err := s.Train(ctx, engineer, "covisit"); custos.ErrorCode(err) != custos.CodeForbidden {
		t.Errorf("an engineer abroad trains: err = %v, want forbidden", err)
	}
	if _, err := s.Train(ctx, svc, "nosuch"); custos.ErrorCode(err) != custos.CodeNotFound {
		t.Errorf("train an unknown algorithm: err = %v, want not_found", err)
	}
	if _, err := s.Train(ctx, svc, "covisit"); err != nil {
		t.Fatal(err)
	}
	for _, k := range []int{0, 101} {
		if _, err := s.Recommend(ctx, svc, "covisit", "user-bravo", k); custos.ErrorCode(err) != custos.CodeInvalidRequest {
			t.Errorf("k = %d: err = %v, want invalid_request", k, err)
		}
	}
	if _, err := s.Recommend(ctx, engineer, "covisit", "user-bravo", 5); custos.ErrorCode(err) != custos.CodeForbidden {
		t.Errorf("an engineer abroad asks: err = %v, want forbidden", err)
	}
	// Fail closed: no entry, no recommendation.
	runs := nat.runs.Load()
	f.auditor.failing.Store(true)
	rec, err := s.Recommend(ctx, svc, "covisit", "user-bravo", 5)
	if custos.ErrorCode(err) != custos.CodeAuditUnavailable || rec.Items != nil {
		t.Errorf("with the log down: %v, %v; want audit_unavailable and nothing", rec.Items, err)
	}
	if nat.runs.Load() == runs {
		t.Error("the run did not happen: the test does not test the order of record and release")
	}
}

// TestConcurrentRuns trains and recommends at once: every training gets a
// version of its own and every recommendation succeeds.
func TestConcurrentRuns(t *testing.T) {
	_, s, _, _ := running(t)
	ctx := context.Background()
	if _, err := s.Train(ctx, svc, "covisit"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	versions := make(chan int, 4)
	for range 4 {
		wg.Go(func() {
			tr, err := s.Train(ctx, svc, "covisit")
			if err != nil {
				t.Error(err)
				return
			}
			versions <- tr.Model
		})
	}
	for range 8 {
		wg.Go(func() {
			if _, err := s.Recommend(ctx, svc, "covisit", "user-bravo", 3); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	close(versions)
	seen := map[int]bool{}
	for v := range versions {
		if seen[v] || v < 2 || v > 5 {
			t.Errorf("model version %d given twice or out of 2..5", v)
		}
		seen[v] = true
	}
}
