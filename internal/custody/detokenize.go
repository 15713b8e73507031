package custody

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"

	"github.com/custos/custos"
	"github.com/custos/custos/internal/policy"
)

// Detokenization asks for the values behind tokens.
type Detokenization struct {
	Tokens        []string
	Justification custos.Justification
	// Approver is the verified principal of a second custodian who approves
	// the request, if any. It must be another principal than the caller.
	Approver *custos.Principal
	// BreakGlass asks to proceed without an approver in an emergency. It is
	// flagged in the log and in the response.
	BreakGlass bool
}

// Detokenized is the value behind one token.
type Detokenized struct {
	Token string          `json:"token"`
	Found bool            `json:"found"`
	Field string          `json:"field,omitempty"` // collection.field
	Value json.RawMessage `json:"value,omitempty"`
}

// DetokenizeResult is the outcome of a detokenization.
type DetokenizeResult struct {
	Values     []Detokenized
	BreakGlass bool
	AuditIndex uint64
}

var reasonRE = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,31}$`)

const (
	maxJustificationText = 2000
	maxTicket            = 128
	maxTokenLen          = 256
)

func (d Detokenization) validate(limit int) error {
	if len(d.Tokens) == 0 || len(d.Tokens) > limit {
		return custos.Errorf(custos.CodeInvalidRequest, "tokens must hold 1 to %d tokens", limit)
	}
	for _, t := range d.Tokens {
		if t == "" || len(t) > maxTokenLen {
			return custos.Errorf(custos.CodeInvalidRequest, "a token must be 1 to %d bytes", maxTokenLen)
		}
	}
	j := d.Justification
	if j.Reason == "" || j.Text == "" {
		return custos.Errorf(custos.CodeJustification, "detokenization needs a justification with a reason code and a text")
	}
	if !reasonRE.MatchString(j.Reason) || len(j.Text) > maxJustificationText || len(j.Ticket) > maxTicket {
		return custos.Errorf(custos.CodeInvalidRequest, "justification: reason must be a short lower-case code, text at most %d bytes, ticket at most %d", maxJustificationText, maxTicket)
	}
	return nil
}

// Detokenize returns the values behind tokens of indexed audiences. Each
// token's field must be allowed the detokenize action for the principal,
// with the justification and, where the policy asks for it, a second
// approver or break-glass. Tokens of erased subjects are not found.
func (s *Service) Detokenize(ctx context.Context, r Request, d Detokenization) (DetokenizeResult, error) {
	e := r.entry("detokenize")
	if err := d.validate(s.cfg.MaxDetokenize); err != nil {
		return DetokenizeResult{}, err
	}
	e.Reason, e.Ticket, e.BreakGlass, e.Count = d.Justification.Reason, d.Justification.Ticket, d.BreakGlass, len(d.Tokens)
	if d.Approver != nil {
		e.Approver = d.Approver.ID
		if d.Approver.ID == r.Principal.ID && d.Approver.Issuer == r.Principal.Issuer {
			return DetokenizeResult{}, s.deny(ctx, e, custos.Errorf(custos.CodeApproval, "the approver must be another principal"))
		}
	}
	pctx := policy.Context{Purpose: r.Purpose, Reason: d.Justification.Reason, Justified: true, BreakGlass: d.BreakGlass}
	type hit struct {
		ref   custos.TokenRef
		field policy.Field
	}
	hits := make([]*hit, len(d.Tokens))
	sc := s.Schema()
	for i, t := range d.Tokens {
		refs, err := s.cfg.Store.TokenRefs(ctx, t)
		if err != nil {
			return DetokenizeResult{}, internal("look up token", err)
		}
		if len(refs) == 0 {
			continue
		}
		ref := refs[0]
		coll, err := sc.Collection(ref.Collection)
		if err != nil {
			continue // a collection since removed
		}
		f, ok := coll.Fields[ref.Field]
		if !ok {
			continue
		}
		pf := policy.Field{Collection: coll.Name, Name: ref.Field, Class: f.Class, Type: f.Type}
		if err := s.authorizeDetokenize(r.Principal, d.Approver, pf, pctx); err != nil {
			return DetokenizeResult{}, s.deny(ctx, e, err)
		}
		hits[i] = &hit{ref: ref, field: pf}
	}
	out := DetokenizeResult{Values: make([]Detokenized, len(d.Tokens)), BreakGlass: d.BreakGlass}
	for i, t := range d.Tokens {
		out.Values[i] = Detokenized{Token: t}
		h := hits[i]
		if h == nil {
			continue
		}
		v, err := s.fieldValue(ctx, r, h.ref)
		if err != nil {
			return DetokenizeResult{}, err
		}
		if v == nil {
			continue
		}
		out.Values[i] = Detokenized{Token: t, Found: true, Field: h.ref.Collection + "." + h.ref.Field, Value: v}
	}
	if d.BreakGlass {
		s.log.Warn("break-glass detokenization", "principal", r.Principal.ID, "tokens", len(d.Tokens), "reason", d.Justification.Reason, "ticket", d.Justification.Ticket)
	}
	idx, err := s.record(ctx, e)
	if err != nil {
		return DetokenizeResult{}, err
	}
	out.AuditIndex = idx
	return out, nil
}

// authorizeDetokenize decides one field: the principal must be allowed to
// detokenize it, with a second approver's approval unless the policy lets it
// go without one.
func (s *Service) authorizeDetokenize(p custos.Principal, approver *custos.Principal, f policy.Field, ctx policy.Context) *custos.Error {
	pol := s.cfg.Policy
	if approver != nil && pol.Allowed(*approver, custos.ActionApprove, f, ctx) {
		ctx.Approved = true
	}
	if pol.Allowed(p, custos.ActionDetokenize, f, ctx) {
		return nil
	}
	if !ctx.Approved {
		ctx.Approved = true
		if pol.Allowed(p, custos.ActionDetokenize, f, ctx) {
			return custos.Errorf(custos.CodeApproval, "detokenizing %s.%s needs a second custodian's approval (or break-glass)", f.Collection, f.Name)
		}
	}
	return custos.Errorf(custos.CodeForbidden, "policy does not allow this principal to detokenize %s.%s", f.Collection, f.Name)
}

// fieldValue opens the record a ref points to and returns the field's value
// in clear, or nil when the record or field is gone.
func (s *Service) fieldValue(ctx context.Context, r Request, ref custos.TokenRef) (json.RawMessage, error) {
	rec, err := s.cfg.Store.Record(ctx, ref.Collection, ref.Record)
	if err != nil {
		if errors.Is(err, custos.ErrNotFound) {
			return nil, nil
		}
		return nil, internal("read record", err)
	}
	coll, err := s.Schema().Collection(ref.Collection)
	if err != nil {
		return nil, nil
	}
	f, ok := coll.Fields[ref.Field]
	if !ok {
		return nil, nil
	}
	fields := []policy.Field{{Collection: coll.Name, Name: ref.Field, Class: f.Class, Type: f.Type}}
	values, err := s.open(ctx, r, custos.ActionDetokenize, coll, rec, fields, []custos.Form{custos.FormClear})
	if err != nil {
		return nil, err
	}
	v, ok := values[ref.Field]
	if !ok {
		return nil, nil
	}
	return v, nil
}
