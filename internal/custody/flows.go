package custody

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/custos/custos"
	"github.com/custos/custos/internal/flow"
	"github.com/custos/custos/internal/policy"
	"github.com/custos/custos/internal/schema"
)

// MaxExportPage caps the records of one page of an export.
const MaxExportPage = 1000

// Samples keeps the samples of exports for the monitor.
//
// Add returns only once samples are durable; an error means they may not
// be, and the page they belong to must not be sent. List returns samples
// of a flow oldest first. Implementations are safe for concurrent use and
// are trusted with exactly what left the custodian, nothing more.
type Samples interface {
	Add(ctx context.Context, flow string, samples []flow.Sample) error
	List(ctx context.Context, flow string, after uint64, limit int) ([]flow.Sample, error)
}

var _ Samples = (*flow.FileSamples)(nil)

// FlowsConfig is what exports need: the declared flows, the keys of their
// cursors and sampling, and the store of samples. Set is the flows in
// force at start; SetFlows replaces them.
type FlowsConfig struct {
	Set     *flow.Set
	Keys    *flow.Keys
	Samples Samples
}

// RateLimitedError refuses a page beyond its flow's rate.
type RateLimitedError struct {
	RetryAfter time.Duration
	err        *custos.Error
}

func (e *RateLimitedError) Error() string { return e.err.Error() }
func (e *RateLimitedError) Unwrap() error { return e.err }

// ExportRecord is one record of an export, as it leaves: the record id as
// a token of the recipient's audience and the declared fields in their
// declared forms.
type ExportRecord struct {
	ID     string                     `json:"id"`
	Fields map[string]json.RawMessage `json:"fields"`
}

// Page is a page of an export.
type Page struct {
	Records []ExportRecord
	// Cursor resumes the export after the last record of this page; the
	// request's own cursor when the page is empty.
	Cursor string
	// End reports that the collection held no more records when the page
	// was read.
	End        bool
	AuditIndex uint64 // the entry that covers the page; 0 when it is empty
	Sampled    int    // how many records of the page were kept as samples
}

// declared returns the flow named name, recording a refusal when there is
// none: nothing that is not a declared flow leaves.
func (s *Service) declared(ctx context.Context, e custos.AuditEntry, name string) (*flow.Flow, error) {
	set := s.flows.Load()
	if set == nil || s.cfg.Flows.Keys == nil || s.cfg.Flows.Samples == nil {
		return nil, s.deny(ctx, e, custos.Errorf(custos.CodeNotFound, "this deployment declares no flows"))
	}
	f, ok := set.Flow(name)
	if !ok {
		return nil, s.deny(ctx, e, custos.Errorf(custos.CodeNotFound, "no flow of that name is declared"))
	}
	return f, nil
}

func flowResource(f *flow.Flow) policy.FlowResource {
	return policy.FlowResource{Name: f.Name, Recipient: f.Recipient, Jurisdiction: f.Jurisdiction, Collection: f.Collection}
}

// Export returns the next page of the flow named name after cursor, at
// most limit records (MaxExportPage when limit is 0), each in exactly the
// flow's declared shape. Only a principal of the flow's recipient org whom
// the policy allows flow-export gets one. The page's audit entry (flow,
// count, first and last record pseudonyms, forms) and its samples are
// durable before Export returns it.
func (s *Service) Export(ctx context.Context, r Request, name, cursor string, limit int) (Page, error) {
	e := r.entry("flow-export")
	f, err := s.declared(ctx, e, name)
	if err != nil {
		return Page{}, err
	}
	e.Collection, e.Detail = f.Collection, "flow "+f.Name
	if r.Principal.Org != f.Recipient || !s.cfg.Policy.AllowedOnFlow(r.Principal, custos.ActionFlowExport, flowResource(f), policy.Context{Purpose: r.Purpose}) {
		return Page{}, s.deny(ctx, e, custos.Errorf(custos.CodeForbidden, "only the flow's recipient may export it, as the policy allows"))
	}
	after, err := s.cfg.Flows.Keys.OpenCursor(f.Name, cursor)
	if err != nil {
		return Page{}, custos.Errorf(custos.CodeInvalidRequest, "the cursor is not one this flow's export returned")
	}
	if limit <= 0 || limit > MaxExportPage {
		limit = MaxExportPage
	}
	// The schema may have changed by a signed proposal since the flows
	// were checked at start: a flow that no longer fits it releases
	// nothing.
	sc := s.Schema()
	if err := f.Check(sc); err != nil {
		s.log.Error("a declared flow does not fit the schema in force", "flow", f.Name, "err", err)
		return Page{}, s.deny(ctx, e, custos.Errorf(custos.CodeConflict, "the flow's declaration does not fit the schema in force; the custodian must correct flows.yaml"))
	}
	coll, _ := sc.Collection(f.Collection)
	n, wait := s.flowLimiter.Take(f.Name, f.Rate, limit, s.cfg.Now())
	if n == 0 {
		return Page{}, &RateLimitedError{RetryAfter: wait, err: custos.Errorf(custos.CodeRateLimited, "the flow's rate of %g records per second is used up", f.Rate)}
	}
	recs, err := s.cfg.Store.Records(ctx, coll.Name, after, n)
	if err != nil {
		s.flowLimiter.Return(f.Name, f.Rate, n)
		return Page{}, internal("walk collection", err)
	}
	s.flowLimiter.Return(f.Name, f.Rate, n-len(recs))
	return s.releasePage(ctx, r, e, f, coll, cursor, recs, len(recs) < n)
}

// releasePage shapes recs, records the page, keeps its samples and returns
// it.
func (s *Service) releasePage(ctx context.Context, r Request, e custos.AuditEntry, f *flow.Flow, coll *schema.Collection, cursor string, recs []custos.SealedRecord, end bool) (Page, error) {
	page := Page{Cursor: cursor, End: end, Records: make([]ExportRecord, 0, len(recs))}
	fields, forms := flowFields(f, coll)
	var ids []string
	for _, rec := range recs {
		out, err := s.exportRecord(ctx, r, f, coll, rec, fields, forms)
		if errors.Is(err, errSubjectGone) {
			continue
		}
		if err != nil {
			return Page{}, err
		}
		page.Records = append(page.Records, out)
		ids = append(ids, rec.ID)
	}
	if len(recs) > 0 {
		page.Cursor = s.cfg.Flows.Keys.Cursor(f.Name, recs[len(recs)-1].ID)
	}
	if len(page.Records) == 0 {
		return page, nil
	}
	e.Count = len(page.Records)
	e.Detail = fmt.Sprintf("flow %s first %s last %s", f.Name, s.pseudonym(coll.Name+"/"+ids[0]), s.pseudonym(coll.Name+"/"+ids[len(ids)-1]))
	e.Forms = make(map[string]string, len(fields))
	for i, fl := range fields {
		e.Forms[fl.Name] = string(forms[i])
	}
	var err error
	if page.AuditIndex, err = s.record(ctx, e); err != nil {
		return Page{}, err
	}
	if page.Sampled, err = s.sample(ctx, f, ids, page); err != nil {
		return Page{}, err
	}
	return page, nil
}

// sample keeps the records of page the flow's sample rate selects.
func (s *Service) sample(ctx context.Context, f *flow.Flow, ids []string, page Page) (int, error) {
	var samples []flow.Sample
	now := s.cfg.Now().UTC()
	for i, id := range ids {
		if !s.cfg.Flows.Keys.Sampled(f.Name, id, *f.SampleRate) {
			continue
		}
		b, err := json.Marshal(page.Records[i])
		if err != nil {
			return 0, internal("encode sample", err)
		}
		samples = append(samples, flow.Sample{Flow: f.Name, AuditIndex: page.AuditIndex, Time: now, Record: b})
	}
	if err := s.cfg.Flows.Samples.Add(ctx, f.Name, samples); err != nil {
		return 0, internal("keep samples", err)
	}
	return len(samples), nil
}

// flowFields returns the fields an export of f carries, in schema order,
// and their forms.
func flowFields(f *flow.Flow, coll *schema.Collection) ([]policy.Field, []custos.Form) {
	var fields []policy.Field
	var forms []custos.Form
	for _, n := range coll.Order {
		form, ok := f.Fields[n]
		if !ok || form == flow.FormAggregate {
			continue
		}
		fields = append(fields, fieldOf(coll, n))
		forms = append(forms, form)
	}
	return fields, forms
}

var errSubjectGone = errors.New("subject erased")

// exportRecord renders rec in f's shape for f's recipient. A protected
// field is never rendered in clear, whatever the declaration says.
func (s *Service) exportRecord(ctx context.Context, r Request, f *flow.Flow, coll *schema.Collection, rec custos.SealedRecord, fields []policy.Field, forms []custos.Form) (ExportRecord, error) {
	values, err := s.open(ctx, r, custos.ActionFlowExport, coll, rec, fields, forms)
	if custos.ErrorCode(err) == custos.CodeNotFound {
		return ExportRecord{}, errSubjectGone
	}
	if err != nil {
		return ExportRecord{}, err
	}
	id, err := s.cfg.Tokens.Token(f.Recipient, custos.TypeID, rec.ID)
	if err != nil {
		return ExportRecord{}, internal("derive token", err)
	}
	out := ExportRecord{ID: id, Fields: make(map[string]json.RawMessage, len(fields))}
	for i, fl := range fields {
		v, ok := values[fl.Name]
		if !ok {
			continue
		}
		if forms[i] == custos.FormClear && fl.Class == custos.ClassProtected {
			return ExportRecord{}, internal("export record", errors.New("a protected field declared clear"))
		}
		shaped, err := s.shape(f.Recipient, coll.Fields[fl.Name], forms[i], v)
		if err != nil {
			return ExportRecord{}, err
		}
		out.Fields[fl.Name] = shaped.Value
	}
	return out, nil
}

// CheckFlows checks the declared flows against sc, such as a proposed
// schema: nil when there are none.
func (s *Service) CheckFlows(sc *schema.Schema) error {
	if set := s.flows.Load(); set != nil {
		return set.Check(sc)
	}
	return nil
}

// SetFlows puts set in force for the exports that start from now on, as
// when a signed proposal changes the flows. The caller has checked it
// against the schema in force.
func (s *Service) SetFlows(set *flow.Set) { s.flows.Store(set) }

// Flows returns the declared flows the principal may read.
func (s *Service) Flows(ctx context.Context, r Request) ([]*flow.Flow, error) {
	var out []*flow.Flow
	for _, f := range s.flows.Load().All() {
		if s.cfg.Policy.AllowedOnFlow(r.Principal, custos.ActionFlowRead, flowResource(f), policy.Context{Purpose: r.Purpose}) {
			out = append(out, f)
		}
	}
	return out, nil
}

// FlowSamples returns up to limit samples of the flow named name whose
// audit index is after after, for a principal the policy allows
// flow-read: what left, as it left. The read is an audit entry, durable
// before the samples are returned; its index is returned with them.
func (s *Service) FlowSamples(ctx context.Context, r Request, name string, after uint64, limit int) ([]flow.Sample, uint64, error) {
	e := r.entry("flow-read")
	f, err := s.declared(ctx, e, name)
	if err != nil {
		return nil, 0, err
	}
	e.Collection, e.Detail = f.Collection, "flow "+f.Name+" samples"
	if !s.cfg.Policy.AllowedOnFlow(r.Principal, custos.ActionFlowRead, flowResource(f), policy.Context{Purpose: r.Purpose}) {
		return nil, 0, s.deny(ctx, e, custos.Errorf(custos.CodeForbidden, "policy does not allow this principal to read the flow"))
	}
	out, err := s.cfg.Flows.Samples.List(ctx, f.Name, after, limit)
	if err != nil {
		return nil, 0, internal("read samples", err)
	}
	e.Count = len(out)
	idx, err := s.record(ctx, e)
	if err != nil {
		return nil, 0, err
	}
	return slices.Clip(out), idx, nil
}
