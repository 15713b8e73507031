package custody

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"regexp"
	"slices"
	"time"

	"github.com/custos/custos"
	"github.com/custos/custos/internal/policy"
	"github.com/custos/custos/internal/schema"
)

// Detokenization asks for the values behind tokens.
type Detokenization struct {
	Tokens        []string
	Justification custos.Justification
	// Approval is a grant from Approve by another principal for exactly
	// this request, if the policy asks for one.
	Approval string
	// BreakGlass asks to proceed without an approval in an emergency. It is
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

// ApprovalRequest is a detokenization that a second principal approves: the
// requester's id and the exact tokens and justification it will send.
type ApprovalRequest struct {
	Requester     string
	Tokens        []string
	Justification custos.Justification
}

// Approval is a grant for one detokenization.
type Approval struct {
	Grant      string
	Expires    time.Time
	AuditIndex uint64
}

var (
	reasonRE = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,31}$`)
	// ticketRE keeps the ticket a reference: it goes on the public log,
	// where no name or address may be typed into it.
	ticketRE = regexp.MustCompile(`^[A-Za-z0-9._:/#-]{0,64}$`)
	// principalIDRE is the shape of a principal id: printable ASCII
	// without spaces, as identity accepts in sub.
	principalIDRE = regexp.MustCompile(`^[!-~]{1,128}$`)
)

const (
	maxJustificationText = 2000
	maxTokenLen          = 256
)

func validateTokens(tokens []string, j custos.Justification, limit int) error {
	if len(tokens) == 0 || len(tokens) > limit {
		return custos.Errorf(custos.CodeInvalidRequest, "tokens must hold 1 to %d tokens", limit)
	}
	for _, t := range tokens {
		if t == "" || len(t) > maxTokenLen {
			return custos.Errorf(custos.CodeInvalidRequest, "a token must be 1 to %d bytes", maxTokenLen)
		}
	}
	if j.Reason == "" || j.Text == "" {
		return custos.Errorf(custos.CodeJustification, "detokenization needs a justification with a reason code and a text")
	}
	if !reasonRE.MatchString(j.Reason) || len(j.Text) > maxJustificationText || !ticketRE.MatchString(j.Ticket) {
		return custos.Errorf(custos.CodeInvalidRequest, "justification: reason must be a short lower-case code, text at most %d bytes, ticket a reference of at most 64 letters, digits and ._:/#-", maxJustificationText)
	}
	return nil
}

// mayAny reports whether p may do a to some tokenized field of the schema,
// so that a principal who may not is refused before the store is asked
// anything about its tokens.
func (s *Service) mayAny(p custos.Principal, a custos.Action, ctx policy.Context) bool {
	for _, c := range s.Schema().Collections {
		for _, f := range fieldsOf(c) {
			if tokenized(f.Class) && s.cfg.Policy.Allowed(p, a, f, ctx) {
				return true
			}
		}
	}
	return false
}

// resolved is a token with the field it stands for.
type resolved struct {
	ref   custos.TokenRef
	coll  *schema.Collection
	field policy.Field
}

// resolve looks tokens up; unknown tokens, and tokens of fields since removed
// from the schema, resolve to nil.
func (s *Service) resolve(ctx context.Context, tokens []string) ([]*resolved, error) {
	out := make([]*resolved, len(tokens))
	sc := s.Schema()
	for i, t := range tokens {
		ref, ok, err := s.lookupToken(ctx, t)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		coll, err := sc.Collection(ref.Collection)
		if err != nil {
			continue
		}
		if _, ok := coll.Fields[ref.Field]; !ok {
			continue
		}
		out[i] = &resolved{ref: ref, coll: coll, field: fieldOf(coll, ref.Field)}
	}
	return out, nil
}

// lookupToken returns the ref of a token, if any.
func (s *Service) lookupToken(ctx context.Context, token string) (custos.TokenRef, bool, error) {
	refs, err := s.cfg.Vault.FindTokenRefs(ctx, s.cfg.Store, token)
	if err != nil {
		return custos.TokenRef{}, false, internal("look up token", err)
	}
	if len(refs) == 0 {
		return custos.TokenRef{}, false, nil
	}
	return refs[0], true, nil
}

// concerned fills an entry with the subjects and fields tokens resolved to.
func (s *Service) concerned(e *custos.AuditEntry, hits []*resolved) {
	subjects := map[string]bool{}
	for _, h := range hits {
		if h == nil {
			continue
		}
		subjects[s.pseudonym(h.ref.Subject)] = true
		if e.Forms == nil {
			e.Forms = map[string]string{}
		}
		e.Forms[h.field.Collection+"."+h.field.Name] = string(custos.FormClear)
	}
	e.Subjects = slices.Sorted(maps.Keys(subjects))
	if len(e.Subjects) > 256 {
		e.Subjects = e.Subjects[:256]
	}
}

// Approve grants the requester one detokenization of exactly these tokens
// with exactly this justification, within ApprovalTTL, on the approver's
// authority. The approver must be another principal allowed the approve
// action on every field the tokens stand for.
func (s *Service) Approve(ctx context.Context, r Request, a ApprovalRequest) (Approval, error) {
	e := r.entry("approve")
	if err := validateTokens(a.Tokens, a.Justification, s.cfg.MaxDetokenize); err != nil {
		return Approval{}, err
	}
	if !principalIDRE.MatchString(a.Requester) {
		return Approval{}, custos.Errorf(custos.CodeInvalidRequest, "requester must be the principal id (sub) of who will detokenize")
	}
	e.Reason, e.Ticket, e.Count, e.Detail = a.Justification.Reason, a.Justification.Ticket, len(a.Tokens), "for "+a.Requester
	if a.Requester == r.Principal.ID {
		return Approval{}, s.deny(ctx, e, custos.Errorf(custos.CodeApproval, "the approver must be another principal than the requester"))
	}
	pctx := policy.Context{Purpose: r.Purpose, Reason: a.Justification.Reason, Justified: true}
	if !s.mayAny(r.Principal, custos.ActionApprove, pctx) {
		return Approval{}, s.deny(ctx, e, custos.Errorf(custos.CodeForbidden, "policy does not allow this principal to approve detokenizations"))
	}
	hits, err := s.resolve(ctx, a.Tokens)
	if err != nil {
		return Approval{}, err
	}
	for _, h := range hits {
		if h != nil && !s.cfg.Policy.Allowed(r.Principal, custos.ActionApprove, h.field, pctx) {
			return Approval{}, s.deny(ctx, e, custos.Errorf(custos.CodeForbidden, "policy does not allow this principal to approve detokenizing %s.%s", h.field.Collection, h.field.Name))
		}
	}
	s.concerned(&e, hits)
	exp := s.cfg.Now().Add(ApprovalTTL).Truncate(time.Second)
	idx, err := s.record(ctx, e)
	if err != nil {
		return Approval{}, err
	}
	g := s.grants.sign(grant{
		ID: newGrantID(), Approver: r.Principal.ID, Issuer: r.Principal.Issuer, Requester: a.Requester,
		Digest: requestDigest(a.Requester, a.Tokens, a.Justification), Exp: exp.Unix(),
	})
	return Approval{Grant: g, Expires: exp, AuditIndex: idx}, nil
}

// Detokenize returns the values behind tokens of indexed audiences. Each
// token's field must be allowed the detokenize action for the principal,
// with the justification and, where the policy asks for it, an approval
// grant for exactly this request or break-glass. A principal who may
// detokenize nothing is refused before any token is looked up, so a refusal
// says nothing of the tokens. Tokens of erased subjects are not found.
func (s *Service) Detokenize(ctx context.Context, r Request, d Detokenization) (DetokenizeResult, error) {
	e := r.entry("detokenize")
	if err := validateTokens(d.Tokens, d.Justification, s.cfg.MaxDetokenize); err != nil {
		return DetokenizeResult{}, err
	}
	e.Reason, e.Ticket, e.BreakGlass, e.Count = d.Justification.Reason, d.Justification.Ticket, d.BreakGlass, len(d.Tokens)
	pctx := policy.Context{Purpose: r.Purpose, Reason: d.Justification.Reason, Justified: true, BreakGlass: d.BreakGlass}
	probe := pctx
	probe.Approved = true
	if !s.mayAny(r.Principal, custos.ActionDetokenize, probe) {
		return DetokenizeResult{}, s.deny(ctx, e, custos.Errorf(custos.CodeForbidden, "policy does not allow this principal to detokenize"))
	}
	if d.Approval != "" {
		digest := requestDigest(r.Principal.ID, d.Tokens, d.Justification)
		gr, err := s.grants.accept(d.Approval, r.Principal.ID, digest, s.cfg.Now())
		if err != nil {
			return DetokenizeResult{}, s.deny(ctx, e, custos.Errorf(custos.CodeApproval,
				"the approval is not valid for this request: it must come from POST /v1/approvals by another principal for exactly these tokens and justification, within %s, and serves once", ApprovalTTL))
		}
		pctx.Approved, e.Approver = true, gr.Approver
	}
	hits, err := s.resolve(ctx, d.Tokens)
	if err != nil {
		return DetokenizeResult{}, err
	}
	for _, h := range hits {
		if h == nil {
			continue
		}
		if err := s.authorizeDetokenize(r.Principal, h.field, pctx); err != nil {
			return DetokenizeResult{}, s.deny(ctx, e, err)
		}
	}
	values, err := s.values(ctx, r, hits)
	if err != nil {
		return DetokenizeResult{}, err
	}
	out := DetokenizeResult{Values: make([]Detokenized, len(d.Tokens)), BreakGlass: d.BreakGlass}
	for i, t := range d.Tokens {
		out.Values[i] = Detokenized{Token: t}
		h := hits[i]
		if h == nil {
			continue
		}
		if values[i] == nil {
			hits[i] = nil
			continue
		}
		out.Values[i] = Detokenized{Token: t, Found: true, Field: h.ref.Collection + "." + h.ref.Field, Value: values[i]}
	}
	s.concerned(&e, hits)
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

// authorizeDetokenize decides one field: allowed, or refused with
// CodeApproval when only an approval is missing.
func (s *Service) authorizeDetokenize(p custos.Principal, f policy.Field, ctx policy.Context) *custos.Error {
	pol := s.cfg.Policy
	if pol.Allowed(p, custos.ActionDetokenize, f, ctx) {
		return nil
	}
	if !ctx.Approved {
		ctx.Approved = true
		if pol.Allowed(p, custos.ActionDetokenize, f, ctx) {
			return custos.Errorf(custos.CodeApproval, "detokenizing %s.%s needs another custodian's approval (POST /v1/approvals) or break-glass", f.Collection, f.Name)
		}
	}
	return custos.Errorf(custos.CodeForbidden, "policy does not allow this principal to detokenize %s.%s", f.Collection, f.Name)
}

// values returns the value in clear of each hit's field, nil where the
// hit is nil or its record or field is gone. Each record is read and opened
// once, for every field its hits stand for.
func (s *Service) values(ctx context.Context, r Request, hits []*resolved) ([]json.RawMessage, error) {
	type recordKey struct{ collection, id string }
	fields := map[recordKey][]policy.Field{}
	for _, h := range hits {
		if h != nil {
			k := recordKey{h.ref.Collection, h.ref.Record}
			fields[k] = append(fields[k], h.field)
		}
	}
	opened := map[recordKey]map[string]json.RawMessage{}
	out := make([]json.RawMessage, len(hits))
	for i, h := range hits {
		if h == nil {
			continue
		}
		k := recordKey{h.ref.Collection, h.ref.Record}
		v, ok := opened[k]
		if !ok {
			var err error
			if v, err = s.openForDetokenize(ctx, r, h.coll, h.ref.Record, fields[k]); err != nil {
				return nil, err
			}
			opened[k] = v
		}
		out[i] = v[h.ref.Field]
	}
	return out, nil
}

// openForDetokenize returns the values of fields of the record of coll with
// the given id, to be released in clear; none when the record is gone.
func (s *Service) openForDetokenize(ctx context.Context, r Request, coll *schema.Collection, id string, fields []policy.Field) (map[string]json.RawMessage, error) {
	rec, err := s.cfg.Store.Record(ctx, coll.Name, id)
	if errors.Is(err, custos.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, internal("read record", err)
	}
	forms := slices.Repeat([]custos.Form{custos.FormClear}, len(fields))
	return s.open(ctx, r, custos.ActionDetokenize, coll, rec, fields, forms)
}
