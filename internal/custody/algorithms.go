package custody

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/custos/custos"
	"github.com/custos/custos/internal/algo"
	"github.com/custos/custos/internal/policy"
	"github.com/custos/custos/internal/registry"
)

// AlgorithmChange is a change to the registry of algorithms: the bundle as
// the change left it and the index of the last audit entry recording it.
type AlgorithmChange struct {
	Entry registry.Entry
	// Created is false when a submission named a bundle the registry had.
	Created    bool
	AuditIndex uint64
}

// errNoRegistry answers every call of a Service without a registry.
var errNoRegistry = custos.Errorf(custos.CodeNotFound, "this deployment keeps no registry of algorithms")

// SubmitAlgorithm adds a bundle the operator signed to the registry. Its
// submission is an audit entry, durable before the bundle is stored.
func (s *Service) SubmitAlgorithm(ctx context.Context, r Request, b *algo.Bundle) (AlgorithmChange, error) {
	// The manifest is read unverified, for the policy and the entry of a
	// refusal; the registry verifies the bundle.
	e := r.entry(registry.ActionSubmit)
	var name string
	if text, err := b.Text(); err == nil {
		if m, err := algo.ParseManifest(text); err == nil {
			name = m.Name
			e.Detail = fmt.Sprintf("%s %s manifest sha256:%s module sha256:%s", m.Name, m.Version, algo.Digest(text), algo.Digest(b.Module))
		}
	}
	if err := s.allowAlgorithm(ctx, r, custos.ActionAlgoSubmit, name, e); err != nil {
		return AlgorithmChange{}, err
	}
	var c AlgorithmChange
	var err error
	c.Entry, c.Created, err = s.cfg.Registry.Submit(b, s.recordAlgorithm(ctx, r, &c.AuditIndex))
	if err != nil {
		return AlgorithmChange{}, s.refuseAlgorithm(ctx, e, err)
	}
	return c, nil
}

// ApproveAlgorithm adds a reviewer's approval (a signature line over the
// manifest text) to the bundle ref names, which becomes active with the
// approvals it needs. The approval, the activation and the retirement of
// the bundle it supersedes are audit entries, durable before any is stored.
func (s *Service) ApproveAlgorithm(ctx context.Context, r Request, ref, line string) (AlgorithmChange, error) {
	return s.changeAlgorithm(ctx, r, custos.ActionAlgoApprove, registry.ActionApprove, ref, func(rec registry.Record) (registry.Entry, error) {
		return s.cfg.Registry.Approve(ref, line, rec)
	})
}

// RetireAlgorithm retires the bundle ref names: it never runs again.
func (s *Service) RetireAlgorithm(ctx context.Context, r Request, ref string) (AlgorithmChange, error) {
	return s.changeAlgorithm(ctx, r, custos.ActionAlgoRetire, registry.ActionRetire, ref, func(rec registry.Record) (registry.Entry, error) {
		return s.cfg.Registry.Retire(ref, rec)
	})
}

func (s *Service) changeAlgorithm(ctx context.Context, r Request, a custos.Action, action, ref string, change func(registry.Record) (registry.Entry, error)) (AlgorithmChange, error) {
	e := r.entry(action)
	name, _, _, err := registry.ParseRef(ref)
	if err != nil {
		return AlgorithmChange{}, err
	}
	e.Detail = ref
	if err := s.allowAlgorithm(ctx, r, a, name, e); err != nil {
		return AlgorithmChange{}, err
	}
	var c AlgorithmChange
	if c.Entry, err = change(s.recordAlgorithm(ctx, r, &c.AuditIndex)); err != nil {
		return AlgorithmChange{}, s.refuseAlgorithm(ctx, e, err)
	}
	return c, nil
}

// Algorithms lists the registry.
func (s *Service) Algorithms(ctx context.Context, r Request) ([]registry.Entry, error) {
	if err := s.allowAlgorithm(ctx, r, custos.ActionAlgoRead, "*", r.entry("algo-read")); err != nil {
		return nil, err
	}
	return s.cfg.Registry.List(), nil
}

// Algorithm returns the bundle ref names, with its manifest text.
func (s *Service) Algorithm(ctx context.Context, r Request, ref string) (registry.Entry, error) {
	name, _, _, err := registry.ParseRef(ref)
	if err != nil {
		return registry.Entry{}, err
	}
	e := r.entry("algo-read")
	e.Detail = ref
	if err := s.allowAlgorithm(ctx, r, custos.ActionAlgoRead, name, e); err != nil {
		return registry.Entry{}, err
	}
	return s.cfg.Registry.Get(ref)
}

// allowAlgorithm asks the policy whether r may do a on the bundles named
// name, recording a refusal.
func (s *Service) allowAlgorithm(ctx context.Context, r Request, a custos.Action, name string, e custos.AuditEntry) error {
	if !s.cfg.Policy.AllowedOnAlgorithm(r.Principal, a, name, policy.Context{Purpose: r.Purpose}) {
		return s.deny(ctx, e, custos.Errorf(custos.CodeForbidden, "policy does not allow this principal to %s algorithms", strings.TrimPrefix(string(a), "algo-")))
	}
	if s.cfg.Registry == nil {
		return errNoRegistry
	}
	return nil
}

// recordAlgorithm returns the registry's Record: each event of a change
// becomes an audit entry naming the bundle by name, version and digests,
// and idx gets the index of the last.
func (s *Service) recordAlgorithm(ctx context.Context, r Request, idx *uint64) registry.Record {
	return func(events []registry.Event) error {
		for _, ev := range events {
			e := r.entry(ev.Action)
			b := ev.Entry
			e.Detail = fmt.Sprintf("%s %s manifest sha256:%s module sha256:%s", b.Name, b.Version, b.Digest, b.ModuleSHA256)
			if ev.Detail != "" {
				e.Detail += ", " + ev.Detail
			}
			e.Approver, e.Count = ev.Approver, len(b.Approvers)
			i, err := s.record(ctx, e)
			if err != nil {
				return err
			}
			*idx = i
		}
		return nil
	}
}

// refuseAlgorithm records a refusal of the registry; an audit or internal
// failure is returned as it is.
func (s *Service) refuseAlgorithm(ctx context.Context, e custos.AuditEntry, err error) error {
	ce, ok := errors.AsType[*custos.Error](err)
	if !ok || ce.Code == custos.CodeAuditUnavailable {
		return err
	}
	return s.deny(ctx, e, ce)
}
