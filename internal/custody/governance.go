package custody

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/custos/custos"
	"github.com/custos/custos/internal/governance"
	"github.com/custos/custos/internal/policy"
)

// ProposalChange is a proposal after a change, with the index of the last
// audit entry recording it.
type ProposalChange struct {
	Proposal governance.View
	// Created is false when a proposal named one the board had.
	Created    bool
	AuditIndex uint64
}

// SuspensionChange is the suspension state a statement left, with the
// index of the audit entry recording it.
type SuspensionChange struct {
	State      governance.SuspensionState
	AuditIndex uint64
}

// errNoGovernance answers every call of a Service without governance.
var errNoGovernance = custos.Errorf(custos.CodeNotFound, "this deployment keeps no governance of its rules")

// Propose proposes to change the rules of kind k to c. The proposal is an
// audit entry, durable before it is stored; it changes nothing until
// signed.
func (s *Service) Propose(ctx context.Context, r Request, k governance.Kind, c governance.Content) (ProposalChange, error) {
	e := r.entry(governance.ActionPropose)
	e.Detail = string(k) + " proposed " + governance.Digest(c)
	if err := s.allowGovernance(ctx, r, custos.ActionGovPropose, e); err != nil {
		return ProposalChange{}, err
	}
	var pc ProposalChange
	var err error
	pc.Proposal, pc.Created, err = s.cfg.Governance.Propose(k, c, s.recordGovernance(ctx, r, &pc.AuditIndex))
	if err != nil {
		return ProposalChange{}, s.refuseGovernance(ctx, e, err)
	}
	return pc, nil
}

// SignProposal adds a signer's signature line over the text of the
// proposal id names; with the signatures the configuration requires, the
// proposal is applied. The signature, the application and the rules then
// in force are audit entries, durable before anything changes.
func (s *Service) SignProposal(ctx context.Context, r Request, id, line string) (ProposalChange, error) {
	e := r.entry(governance.ActionSign)
	e.Detail = "proposal " + id
	if s.cfg.Governance != nil {
		if v, err := s.cfg.Governance.Get(id); err == nil {
			e.Detail = fmt.Sprintf("%s proposal %s current %s proposed %s", v.Kind, id, v.Current, v.Proposed)
		}
	}
	if err := s.allowGovernance(ctx, r, custos.ActionGovApprove, e); err != nil {
		return ProposalChange{}, err
	}
	var pc ProposalChange
	var err error
	pc.Proposal, err = s.cfg.Governance.Sign(id, line, s.recordGovernance(ctx, r, &pc.AuditIndex))
	if err != nil {
		return ProposalChange{}, s.refuseGovernance(ctx, e, err)
	}
	return pc, nil
}

// Proposals lists the proposals, newest first.
func (s *Service) Proposals(ctx context.Context, r Request) ([]governance.View, error) {
	if err := s.allowGovernance(ctx, r, custos.ActionGovRead, r.entry("gov-read")); err != nil {
		return nil, err
	}
	return s.cfg.Governance.List(), nil
}

// Proposal returns the proposal id names, with its proposed files.
func (s *Service) Proposal(ctx context.Context, r Request, id string) (governance.View, error) {
	e := r.entry("gov-read")
	e.Detail = "proposal " + id
	if err := s.allowGovernance(ctx, r, custos.ActionGovRead, e); err != nil {
		return governance.View{}, err
	}
	return s.cfg.Governance.Get(id)
}

// Suspend applies the monitor's signed suspension statement (msg, a whole
// signed note): it suspends principals of the operator or lifts their
// suspension, from the next request on. The statement is an audit entry,
// durable before the state changes.
func (s *Service) Suspend(ctx context.Context, r Request, msg []byte) (SuspensionChange, error) {
	e := r.entry(governance.ActionSuspend)
	h := sha256.Sum256(msg)
	e.Detail = "statement sha256:" + hex.EncodeToString(h[:])
	if err := s.allowGovernance(ctx, r, custos.ActionSuspend, e); err != nil {
		return SuspensionChange{}, err
	}
	var sc SuspensionChange
	var err error
	sc.State, err = s.cfg.Governance.State(msg, s.recordGovernance(ctx, r, &sc.AuditIndex))
	if err != nil {
		return SuspensionChange{}, s.refuseGovernance(ctx, e, err)
	}
	return sc, nil
}

// Suspension returns the suspension state.
func (s *Service) Suspension(ctx context.Context, r Request) (governance.SuspensionState, error) {
	if err := s.allowGovernance(ctx, r, custos.ActionSuspensionRead, r.entry("suspension-read")); err != nil {
		return governance.SuspensionState{}, err
	}
	return s.cfg.Governance.Suspension(), nil
}

// CheckSuspended refuses, with CodeSuspended, a request of a suspended
// principal of the operator, recording the refusal; what names what was
// asked (a route), for the entry. The gateway calls it first for every
// request but the reading of the suspension state.
func (s *Service) CheckSuspended(ctx context.Context, r Request, what string) error {
	if s.cfg.Governance == nil || !s.cfg.Governance.Suspended(r.Principal.Org, r.Principal.ID) {
		return nil
	}
	e := r.entry("suspended")
	e.Detail = what
	return s.deny(ctx, e, custos.Errorf(custos.CodeSuspended,
		"the monitor has suspended this principal of the operator: nothing is served to it until the suspension is lifted (GET /v1/suspension shows it)"))
}

// allowGovernance asks the policy whether r may do a on the governance,
// recording a refusal.
func (s *Service) allowGovernance(ctx context.Context, r Request, a custos.Action, e custos.AuditEntry) error {
	if !s.cfg.Policy.AllowedOnGovernance(r.Principal, a, policy.Context{Purpose: r.Purpose}) {
		return s.deny(ctx, e, custos.Errorf(custos.CodeForbidden, "policy does not allow this principal to %s", strings.ReplaceAll(string(a), "-", " ")))
	}
	if s.cfg.Governance == nil {
		return errNoGovernance
	}
	return nil
}

// recordGovernance returns the board's Record: each event becomes an
// audit entry of r's principal, and idx gets the index of the last.
func (s *Service) recordGovernance(ctx context.Context, r Request, idx *uint64) governance.Record {
	return func(events []governance.Event) error {
		for _, ev := range events {
			e := GovernanceEntry(ev)
			e.Principal, e.Org, e.Loc = r.Principal.ID, r.Principal.Org, r.Principal.Loc
			i, err := s.record(ctx, e)
			if err != nil {
				return err
			}
			*idx = i
		}
		return nil
	}
}

// refuseGovernance records a refusal of the board; an audit or internal
// failure is returned as it is.
func (s *Service) refuseGovernance(ctx context.Context, e custos.AuditEntry, err error) error {
	ce, ok := errors.AsType[*custos.Error](err)
	if !ok || ce.Code == custos.CodeAuditUnavailable {
		return err
	}
	return s.deny(ctx, e, ce)
}

// GovernanceEntry returns the audit entry of a governance event, without a
// principal: the digests of the change in its detail, the signer as its
// approver. An entry of ActionRules names the digest of the rules in force
// and each kind's, so that the rules in force at any point of the log are
// the last such entry's.
func GovernanceEntry(ev governance.Event) custos.AuditEntry {
	e := custos.AuditEntry{Action: ev.Action, Decision: "allow", Approver: ev.Signer}
	if ev.Deny {
		e.Decision, e.Code = "deny", custos.CodeInvalidSignature
	}
	var d strings.Builder
	switch ev.Action {
	case governance.ActionRules:
		fmt.Fprintf(&d, "rules %s", ev.Rules)
		for _, k := range governance.Kinds {
			fmt.Fprintf(&d, " %s %s", k, ev.Digests[k])
		}
	case governance.ActionSuspend, governance.ActionLift:
		st := ev.Suspension
		who := "principals " + strings.Join(st.Principals, " ")
		if st.All {
			who = "all operator principals"
		}
		if len(who) > 512 {
			who = fmt.Sprintf("%d principals", len(st.Principals))
		}
		fmt.Fprintf(&d, "statement %s; suspended now: %s", ev.Detail, who)
		e.Reason, e.Count = ev.Reason, len(st.Principals)
		return withDetail(e, d.String())
	default:
		fmt.Fprintf(&d, "%s", ev.Kind)
		if ev.Proposal != "" {
			fmt.Fprintf(&d, " proposal %s", ev.Proposal)
		}
		if ev.Current != "" {
			fmt.Fprintf(&d, " current %s", ev.Current)
		}
		if ev.Proposed != "" {
			fmt.Fprintf(&d, " proposed %s", ev.Proposed)
		}
		if ev.Role != "" {
			fmt.Fprintf(&d, " signed as %s", ev.Role)
		}
	}
	if ev.Detail != "" {
		d.WriteString(": " + ev.Detail)
	}
	return withDetail(e, d.String())
}

// withDetail sets e's detail, cut to what an entry holds.
func withDetail(e custos.AuditEntry, d string) custos.AuditEntry {
	if len(d) > 1024 {
		d = d[:1024]
	}
	e.Detail = d
	return e
}
