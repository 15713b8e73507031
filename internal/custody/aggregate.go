package custody

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/custos/custos"
	"github.com/custos/custos/internal/aggregate"
	"github.com/custos/custos/internal/policy"
	"github.com/custos/custos/internal/schema"
	"github.com/custos/custos/internal/vault"
)

// AggregatesConfig configures aggregate queries. Zero fields take the
// defaults below.
type AggregatesConfig struct {
	// MinSubjects is k, the fewest distinct subjects a released group
	// holds, by org of the principal; the key "default" applies to the
	// others.
	MinSubjects map[string]int
	// Budget is the privacy loss (the sum of the epsilons of its noisy
	// queries) each principal may spend; once spent, noisy queries are
	// refused.
	Budget float64
	// RequireNoise lists the orgs whose queries must ask for noise.
	RequireNoise []string
	// History is the number of answered queries per org whose subjects are
	// kept (as sketches) to refuse differencing queries.
	History int
	// Rand is the source of noise; crypto/rand when nil.
	Rand io.Reader
}

// Defaults of AggregatesConfig.
const (
	DefaultMinSubjects = 50
	DefaultBudget      = 10.0
	DefaultHistory     = 1000
)

func (c AggregatesConfig) k(org string) int {
	if k, ok := c.MinSubjects[org]; ok {
		return k
	}
	return cmp.Or(c.MinSubjects["default"], DefaultMinSubjects)
}

// The ledger of aggregates is kept in the Store like custodial data, under
// the pseudo-subject "aggregate/ORG" (subject ids have no "/"): in
// "aggregate/queries" the sketch of the subjects of each answered query, in
// "aggregate/budgets" the privacy loss each principal spent. Neither holds
// a subject id: sketches hold keyed hashes only.
const (
	queriesCollection = "aggregate/queries"
	budgetsCollection = "aggregate/budgets"
)

func ledgerSubject(org string) string { return "aggregate/" + org }

// ledger is what Aggregate keeps in memory of the Store's ledger: the
// sketches of each org's latest answered queries, loaded at its first
// query.
type ledger struct {
	mu      sync.Mutex
	queries map[string][]pastQuery // by org, oldest first
	// registered holds the orgs whose ledger subject exists.
	registered map[string]bool
}

type pastQuery struct {
	seq    uint64
	size   int
	sketch *aggregate.Sketch
}

// queryRecord is the clear part of a record of queriesCollection. The
// query numbered Seq of an org is kept in slot Seq mod History: the newest
// replaces the oldest, so that the ledger never holds more than History
// queries of an org.
type queryRecord struct {
	Seq    uint64 `json:"seq"`
	Size   int    `json:"size"`
	Sketch []byte `json:"sketch"`
}

// AggregateResult is the outcome of an aggregate query.
type AggregateResult struct {
	Collection string            `json:"collection"`
	Measure    string            `json:"measure"`
	Field      string            `json:"field,omitempty"`
	GroupBy    []string          `json:"group_by"`
	K          int               `json:"k"`
	Groups     []aggregate.Group `json:"groups"`
	// Suppressed counts the groups withheld for holding fewer than k
	// subjects, or to protect such groups.
	Suppressed int           `json:"suppressed"`
	Noise      *NoiseOutcome `json:"noise,omitempty"`
	AuditIndex uint64        `json:"audit_index"`
}

// NoiseOutcome reports the noise of a noisy query.
type NoiseOutcome struct {
	Epsilon       float64 `json:"epsilon"`
	Scale         float64 `json:"scale"`
	MaxPerSubject int     `json:"max_per_subject"`
	BudgetLeft    float64 `json:"budget_left"`
}

// term is a term of a query resolved against the schema.
type term struct {
	aggregate.Term
	coll  *schema.Collection // the queried one, or the joined one
	field *schema.Field
	// clear: the principal may read the field in clear, so it can be
	// grouped and filtered by its exact value.
	clear bool
}

// join is the subjects' own records of another collection, as the values
// of the terms that read it.
type join struct {
	coll   *schema.Collection
	terms  []int               // indexes in plan.terms
	values map[string][]string // by subject, rendered as the terms say
}

// plan is a query resolved against the schema and the policy.
type plan struct {
	q       *aggregate.Query
	coll    *schema.Collection
	terms   []term // group by terms, then filters' terms, then the measured one
	groups  int    // terms[:groups] are the group by terms
	filters []func(string) bool
	measure int // index of the measured term, -1 for count
	joins   []*join
	sealed  bool // some term reads a sealed field of the queried collection
}

// Aggregate answers q for r's principal. It releases the figures of the
// groups of at least k distinct subjects (k by the principal's org), and
// refuses, recording the refusal, a query the policy does not allow, one
// that selects or leaves out fewer than k subjects, one whose subjects
// differ from those of one of the org's earlier answered queries by fewer
// than k, and a noisy one the principal's budget no longer covers. The
// query's sketch and the budget spent are durable before its audit entry,
// and the entry before the figures are returned.
func (s *Service) Aggregate(ctx context.Context, r Request, q aggregate.Query) (AggregateResult, error) {
	e := r.entry("aggregate")
	if err := q.Check(); err != nil {
		return AggregateResult{}, custos.Errorf(custos.CodeInvalidRequest, "%s", err)
	}
	coll, err := s.Schema().Collection(q.Collection)
	if err != nil {
		return AggregateResult{}, err
	}
	e.Collection = coll.Name
	cfg := s.cfg.Aggregates
	k := cfg.k(r.Principal.Org)
	e.Detail = describeQuery(&q, k)
	if q.Noise == nil && slices.Contains(cfg.RequireNoise, r.Principal.Org) {
		return AggregateResult{}, s.deny(ctx, e, custos.Errorf(custos.CodeForbidden, "queries of org %s must ask for noise", r.Principal.Org))
	}
	p, err := s.planAggregate(r, &q, coll)
	if err != nil {
		var ce *custos.Error
		if errors.As(err, &ce) && ce.Code == custos.CodeForbidden {
			return AggregateResult{}, s.deny(ctx, e, ce)
		}
		return AggregateResult{}, err
	}
	tb, hashes, err := s.tabulate(ctx, r, p)
	if err != nil {
		return AggregateResult{}, err
	}
	set := tb.QuerySet()
	if len(set) < k {
		return AggregateResult{}, s.deny(ctx, e, custos.Errorf(custos.CodeQuerySetTooSmall, "the query selects fewer than %d subjects", k))
	}
	if out := tb.Population() - len(set); out > 0 && out < k {
		return AggregateResult{}, s.deny(ctx, e, custos.Errorf(custos.CodeQuerySetTooSmall, "the query leaves out fewer than %d subjects of %s: ask for all of them", k, coll.Name))
	}
	rnd := cfg.Rand
	if rnd == nil {
		rnd = rand.Reader
	}
	res, err := tb.Release(k, rnd)
	if err != nil {
		return AggregateResult{}, internal("release aggregate", err)
	}
	sketch := aggregate.NewSketch(k)
	for _, i := range set {
		sketch.Insert(hashes[i])
	}
	out := AggregateResult{
		Collection: coll.Name, Measure: q.Measure, Field: q.Field, GroupBy: append([]string{}, q.GroupBy...),
		K: k, Groups: append([]aggregate.Group{}, res.Groups...), Suppressed: res.Suppressed,
	}
	e.Count = len(res.Groups)
	e.Detail += fmt.Sprintf("; %d subjects; %d groups released, %d suppressed", len(set), len(res.Groups), res.Suppressed)
	s.agg.mu.Lock()
	defer s.agg.mu.Unlock()
	if err := s.checkOverlap(ctx, e, r.Principal.Org, len(set), sketch, k); err != nil {
		return AggregateResult{}, err
	}
	if q.Noise != nil {
		left, err := s.spend(ctx, e, r.Principal, q.Noise.Epsilon)
		if err != nil {
			return AggregateResult{}, err
		}
		out.Noise = &NoiseOutcome{Epsilon: q.Noise.Epsilon, Scale: res.Scale, MaxPerSubject: q.Noise.MaxPerSubject, BudgetLeft: left}
	}
	if err := s.remember(ctx, r.Principal.Org, len(set), sketch); err != nil {
		return AggregateResult{}, err
	}
	if out.AuditIndex, err = s.record(ctx, e); err != nil {
		return AggregateResult{}, err
	}
	return out, nil
}

// describeQuery is the audit entry's account of q: its shape, without
// filter values (which may be values of clear fields, never of protected
// ones, but need not be on the log).
func describeQuery(q *aggregate.Query, k int) string {
	var b strings.Builder
	b.WriteString(q.Measure)
	if q.Field != "" {
		b.WriteString("(" + q.Field + ")")
	}
	if len(q.GroupBy) > 0 {
		b.WriteString(" by " + strings.Join(q.GroupBy, ","))
	}
	for _, f := range q.Where {
		b.WriteString(" where " + f.Term)
	}
	fmt.Fprintf(&b, "; k %d", k)
	if q.Noise != nil {
		fmt.Fprintf(&b, "; epsilon %g, at most %d records per subject", q.Noise.Epsilon, q.Noise.MaxPerSubject)
	}
	return b.String()
}

// planAggregate resolves q's terms and checks that the principal may use
// each as q does: by its exact value only if it may read the field in
// clear; measured, or grouped and filtered by a bucket, if it may also
// use it in aggregates.
func (s *Service) planAggregate(r Request, q *aggregate.Query, coll *schema.Collection) (*plan, error) {
	p := &plan{q: q, coll: coll, measure: -1}
	pctx := policy.Context{Purpose: r.Purpose}
	resolve := func(text string, measured bool) error {
		t, err := aggregate.ParseTerm(text)
		if err != nil {
			return custos.Errorf(custos.CodeInvalidRequest, "%s", err)
		}
		tc := coll
		if t.Collection != "" {
			if t.Collection == coll.Name {
				return custos.Errorf(custos.CodeInvalidRequest, "term %s: write fields of %s without the collection", text, coll.Name)
			}
			if tc, err = s.Schema().Collection(t.Collection); err != nil {
				return err
			}
		}
		f, ok := tc.Fields[t.Field]
		if !ok {
			return custos.Errorf(custos.CodeUnknownField, "%s has no field %s", tc.Name, t.Field)
		}
		pf := fieldOf(tc, t.Field)
		clear := s.cfg.Policy.Forms(r.Principal, pctx, []policy.Field{pf})[0] == custos.FormClear
		may := clear || s.cfg.Policy.Allowed(r.Principal, custos.ActionAggregate, pf, pctx)
		switch {
		case t.Bucket != "" && !aggregate.Bucketable(f.Type):
			return custos.Errorf(custos.CodeInvalidRequest, "term %s: only dates and timestamps have buckets", text)
		case !may:
			return custos.Errorf(custos.CodeForbidden, "policy does not allow this principal to use %s.%s in aggregates", tc.Name, t.Field)
		case !measured && !clear && t.Bucket == "" && aggregate.Bucketable(f.Type):
			return custos.Errorf(custos.CodeForbidden, "this principal may group and filter by %s.%s only by day, month or year, as in day(%s)", tc.Name, t.Field, text)
		case !measured && !clear && t.Bucket == "":
			return custos.Errorf(custos.CodeForbidden, "policy does not allow this principal to group or filter by %s.%s, which it may not read in clear", tc.Name, t.Field)
		}
		p.terms = append(p.terms, term{Term: t, coll: tc, field: f, clear: clear})
		return nil
	}
	for _, g := range q.GroupBy {
		if err := resolve(g, false); err != nil {
			return nil, err
		}
	}
	p.groups = len(p.terms)
	for _, f := range q.Where {
		if err := resolve(f.Term, false); err != nil {
			return nil, err
		}
		t := p.terms[len(p.terms)-1]
		m, err := aggregate.Match(f, t.field.Type, t.Bucket)
		if err != nil {
			return nil, custos.Errorf(custos.CodeInvalidRequest, "%s", err)
		}
		p.filters = append(p.filters, m)
	}
	if q.Field != "" {
		if err := resolve(q.Field, true); err != nil {
			return nil, err
		}
		p.measure = len(p.terms) - 1
		t := p.terms[p.measure]
		if (q.Measure == aggregate.Sum || q.Measure == aggregate.Avg) && (!aggregate.Numeric(t.field.Type) || t.Bucket != "") {
			return nil, custos.Errorf(custos.CodeInvalidRequest, "%s needs an int or float field", q.Measure)
		}
	}
	// A principal who may use no field of the collection may not count
	// its records either.
	if !slices.ContainsFunc(p.terms, func(t term) bool { return t.coll == coll }) {
		pctx := policy.Context{Purpose: r.Purpose}
		if !slices.ContainsFunc(fieldsOf(coll), func(f policy.Field) bool {
			return s.cfg.Policy.Allowed(r.Principal, custos.ActionAggregate, f, pctx) ||
				s.cfg.Policy.Forms(r.Principal, pctx, []policy.Field{f})[0] == custos.FormClear
		}) {
			return nil, custos.Errorf(custos.CodeForbidden, "policy does not allow this principal to use %s in aggregates", coll.Name)
		}
	}
	for i, t := range p.terms {
		if t.coll == coll {
			p.sealed = p.sealed || t.field.Class.Sealed()
			continue
		}
		j := slices.IndexFunc(p.joins, func(j *join) bool { return j.coll == t.coll })
		if j < 0 {
			p.joins = append(p.joins, &join{coll: t.coll})
			j = len(p.joins) - 1
		}
		p.joins[j].terms = append(p.joins[j].terms, i)
	}
	return p, nil
}

// keyCache unwraps each subject's data key once per query, and keeps at
// most maxKeys: records come in id order, not by subject.
type keyCache struct {
	s      *Service
	reason custos.KeyReason
	mu     sync.Mutex
	keys   map[string]*vault.DataKey
}

const maxKeys = 1 << 16

func (c *keyCache) key(ctx context.Context, subject string) (*vault.DataKey, error) {
	c.mu.Lock()
	k, ok := c.keys[subject]
	c.mu.Unlock()
	if ok {
		return k, nil
	}
	subj, err := c.s.subject(ctx, subject)
	if err != nil {
		return nil, err
	}
	reason := c.reason
	reason.Subject = subject
	k, err = c.s.key(ctx, subj, reason)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.keys) >= maxKeys {
		clear(c.keys)
	}
	c.keys[subject] = k
	return k, nil
}

// values appends rec's stored fields to dst, opening its sealed part if
// sealed.
func (c *keyCache) values(ctx context.Context, dst []field, rec custos.SealedRecord, sealed bool) ([]field, error) {
	dst, err := appendFields(dst[:0], rec.Clear)
	if err != nil {
		return nil, internal("decode record", err)
	}
	if !sealed || rec.Sealed == nil {
		return dst, nil
	}
	key, err := c.key(ctx, rec.Subject)
	if err != nil {
		return nil, err
	}
	plain, err := key.Open(rec.Collection, rec.ID, rec.Sealed)
	if err != nil {
		return nil, internal("open record", err)
	}
	if dst, err = appendFields(dst, plain); err != nil {
		return nil, internal("decode sealed fields", err)
	}
	return dst, nil
}

// field is a stored field: its name and its value as stored.
type field struct {
	name  []byte
	value json.RawMessage
}

// lookup returns the value of the named field, nil when absent; the last
// one, as encoding/json decodes, if the field is there twice.
func lookup(fs []field, name string) json.RawMessage {
	for i := len(fs) - 1; i >= 0; i-- {
		if string(fs[i].name) == name {
			return fs[i].value
		}
	}
	return nil
}

// appendFields appends the fields of obj, a JSON object of scalar values
// as custody stores them (names without escapes), to dst, without
// allocating: aggregates read millions of records. Anything else is
// decoded by encoding/json.
func appendFields(dst []field, obj []byte) ([]field, error) {
	i, start := 0, len(dst)
	ws := func() {
		for i < len(obj) && (obj[i] == ' ' || obj[i] == '\t' || obj[i] == '\n' || obj[i] == '\r') {
			i++
		}
	}
	slow := func() ([]field, error) {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(obj, &m); err != nil {
			return nil, err
		}
		dst = dst[:start]
		for k, v := range m {
			dst = append(dst, field{name: []byte(k), value: v})
		}
		return dst, nil
	}
	ws()
	if i == len(obj) || obj[i] != '{' {
		return slow()
	}
	i++
	ws()
	if i < len(obj) && obj[i] == '}' {
		return dst, nil
	}
	for i < len(obj) {
		// "name"
		if obj[i] != '"' {
			return slow()
		}
		j := i + 1
		for j < len(obj) && obj[j] != '"' && obj[j] != '\\' && obj[j] < 0x80 {
			j++
		}
		if j == len(obj) || obj[j] != '"' {
			return slow()
		}
		name := obj[i+1 : j]
		i = j + 1
		ws()
		if i == len(obj) || obj[i] != ':' {
			return slow()
		}
		i++
		ws()
		// a scalar value: a string (with escapes) or a literal
		j = i
		if j < len(obj) && obj[j] == '"' {
			j++
			for j < len(obj) && obj[j] != '"' {
				if obj[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(obj) {
				return slow()
			}
			j++
		} else {
			for j < len(obj) && obj[j] != ',' && obj[j] != '}' && obj[j] != ' ' && obj[j] != '\n' {
				if obj[j] == '{' || obj[j] == '[' || obj[j] == '"' {
					return slow()
				}
				j++
			}
		}
		if j == i {
			return slow()
		}
		dst = append(dst, field{name: name, value: obj[i:j]})
		i = j
		ws()
		if i == len(obj) {
			break
		}
		switch obj[i] {
		case ',':
			i++
			ws()
			continue
		case '}':
			i++
			ws()
			if i != len(obj) {
				return slow()
			}
			return dst, nil
		}
		break
	}
	return slow()
}

// walk calls fn with every page of records of coll.
func (s *Service) walk(ctx context.Context, coll string, fn func([]custos.SealedRecord) error) error {
	return walkPages(func(after string) ([]custos.SealedRecord, error) {
		return s.cfg.Store.Records(ctx, coll, after, recordsPage)
	}, fn)
}

// walkPages calls fn with every page list returns, from the first, pages
// of recordsPage records but the last; the next page is read while fn
// works through the last.
func walkPages(list func(after string) ([]custos.SealedRecord, error), fn func([]custos.SealedRecord) error) error {
	type page struct {
		recs []custos.SealedRecord
		err  error
	}
	read := func(after string) <-chan page {
		ch := make(chan page, 1)
		go func() {
			recs, err := list(after)
			ch <- page{recs, err}
		}()
		return ch
	}
	for next := read(""); next != nil; {
		p := <-next
		if p.err != nil {
			return internal("list records", p.err)
		}
		next = nil
		if len(p.recs) == recordsPage {
			next = read(p.recs[len(p.recs)-1].ID)
		}
		if err := fn(p.recs); err != nil {
			return err
		}
	}
	return nil
}

// tabulate walks the queried collection into a table, subjects numbered
// in the order met, and returns the keyed hash of each numbered subject.
// The records of a page are opened and rendered by one goroutine per CPU;
// the table takes them in order.
func (s *Service) tabulate(ctx context.Context, r Request, p *plan) (*aggregate.Table, []uint64, error) {
	keys := &keyCache{s: s, reason: custos.KeyReason{Action: custos.ActionAggregate, Principal: r.Principal.ID, Purpose: r.Purpose}, keys: map[string]*vault.DataKey{}}
	for _, j := range p.joins {
		if err := s.loadJoin(ctx, keys, p, j); err != nil {
			return nil, nil, err
		}
	}
	tb := aggregate.NewTable(p.q)
	numbers := map[string]int32{}
	var hashes []uint64
	workers := runtime.GOMAXPROCS(0)
	rows := make([]aggRow, recordsPage)
	for i := range rows {
		rows[i].vals = make([]string, len(p.terms))
	}
	err := s.walk(ctx, p.coll.Name, func(recs []custos.SealedRecord) error {
		errs := make([]error, workers)
		var wg sync.WaitGroup
		per := (len(recs) + workers - 1) / workers
		for w := range workers {
			lo, hi := min(w*per, len(recs)), min((w+1)*per, len(recs))
			wg.Go(func() {
				var fields []field
				for i := lo; i < hi && errs[w] == nil; i++ {
					fields, errs[w] = p.row(ctx, keys, recs[i], fields, &rows[i])
				}
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return err
		}
		for i, rec := range recs {
			n, ok := numbers[rec.Subject]
			if !ok {
				n = int32(len(hashes))
				numbers[rec.Subject] = n
				hashes = append(hashes, subjectHash(s.cfg.Tokens.Pseudonym("aggregate", rec.Subject)))
			}
			tb.See(n)
			if !rows[i].keep {
				continue
			}
			if err := tb.Add(n, rows[i].vals[:p.groups], rows[i].x, rows[i].d); err != nil {
				return custos.Errorf(custos.CodeInvalidRequest, "the query forms more than %d groups: group by fewer or coarser terms", aggregate.MaxGroups)
			}
		}
		return nil
	})
	return tb, hashes, err
}

// aggRow is a record as a query sees it: its terms rendered, and whether it
// passed the filters.
type aggRow struct {
	vals []string
	keep bool
	x    float64 // the measured number (sum, avg)
	d    string  // the measured text (count_distinct)
}

// row renders rec into out, with fields as scratch space, which it
// returns.
func (p *plan) row(ctx context.Context, keys *keyCache, rec custos.SealedRecord, fields []field, out *aggRow) ([]field, error) {
	out.keep = false
	fields, err := keys.values(ctx, fields, rec, p.sealed)
	if err != nil {
		return fields, err
	}
	for i, t := range p.terms {
		var ok bool
		if t.coll == p.coll {
			out.vals[i], ok, err = render(t, lookup(fields, t.Field))
		} else {
			out.vals[i], ok = p.joined(i, rec.Subject)
		}
		if err != nil || !ok {
			return fields, err // a record without a term's field is left out
		}
	}
	for i, m := range p.filters {
		if !m(out.vals[p.groups+i]) {
			return fields, nil
		}
	}
	out.x, out.d = 0, ""
	if p.measure >= 0 {
		out.d = out.vals[p.measure]
		if p.q.Measure == aggregate.Sum || p.q.Measure == aggregate.Avg {
			if out.x, err = strconv.ParseFloat(out.d, 64); err != nil {
				return fields, internal("decode stored number", err)
			}
		}
	}
	out.keep = true
	return fields, nil
}

// render renders a stored value as the term says; ok is false when the
// record does not hold the field.
func render(t term, enc json.RawMessage) (string, bool, error) {
	if enc == nil {
		return "", false, nil
	}
	v, err := aggregate.Render(t.field.Type, t.Bucket, enc)
	if err != nil {
		return "", false, internal("render stored value", err)
	}
	return v, true, nil
}

// loadJoin reads the subjects' own records of j's collection (the record
// whose id is its subject's id) into j.values.
func (s *Service) loadJoin(ctx context.Context, keys *keyCache, p *plan, j *join) error {
	sealed := slices.ContainsFunc(j.terms, func(i int) bool { return p.terms[i].field.Class.Sealed() })
	j.values = map[string][]string{}
	var fields []field
	return s.walk(ctx, j.coll.Name, func(recs []custos.SealedRecord) error {
	records:
		for _, rec := range recs {
			if rec.ID != rec.Subject {
				continue
			}
			var err error
			if fields, err = keys.values(ctx, fields, rec, sealed); err != nil {
				return err
			}
			vals := make([]string, len(j.terms))
			for n, i := range j.terms {
				v, ok, err := render(p.terms[i], lookup(fields, p.terms[i].Field))
				if err != nil {
					return err
				}
				if !ok {
					continue records
				}
				vals[n] = v
			}
			j.values[rec.Subject] = vals
		}
		return nil
	})
}

// joined returns the value of term i, of a joined collection, for subject.
func (p *plan) joined(i int, subject string) (string, bool) {
	for _, j := range p.joins {
		if n := slices.Index(j.terms, i); n >= 0 {
			v, ok := j.values[subject]
			if !ok {
				return "", false
			}
			return v[n], true
		}
	}
	return "", false
}

// subjectHash is what a sketch holds of a subject: 64 bits of a hash of
// its keyed pseudonym.
func subjectHash(pseudonym string) uint64 {
	h := sha256.Sum256([]byte(pseudonym))
	return binary.LittleEndian.Uint64(h[:])
}

// checkOverlap refuses a query whose subjects differ from those of one of
// org's remembered queries by at least one and fewer than k.
func (s *Service) checkOverlap(ctx context.Context, e custos.AuditEntry, org string, size int, sk *aggregate.Sketch, k int) error {
	past, err := s.pastQueries(ctx, org)
	if err != nil {
		return err
	}
	for _, pq := range past {
		if d := size - pq.size; d >= k || -d >= k {
			continue
		}
		if n, ok := sk.Difference(pq.sketch); ok && n > 0 && n < k {
			return s.deny(ctx, e, custos.Errorf(custos.CodeQueryOverlap, "the query's subjects differ from those of an earlier query by fewer than %d: their difference would describe too few subjects", k))
		}
	}
	return nil
}

// pastQueries returns org's remembered queries, reading them from the
// Store the first time. Callers hold s.agg.mu.
func (s *Service) pastQueries(ctx context.Context, org string) ([]pastQuery, error) {
	if q, ok := s.agg.queries[org]; ok {
		return q, nil
	}
	var past []pastQuery
	err := walkPages(func(after string) ([]custos.SealedRecord, error) {
		return s.cfg.Store.SubjectRecords(ctx, queriesCollection, ledgerSubject(org), after, recordsPage)
	}, func(recs []custos.SealedRecord) error {
		for _, rec := range recs {
			var qr queryRecord
			sk := &aggregate.Sketch{}
			if err := json.Unmarshal(rec.Clear, &qr); err != nil {
				return internal("decode aggregate ledger", err)
			}
			if err := sk.UnmarshalBinary(qr.Sketch); err != nil {
				return internal("decode aggregate ledger", err)
			}
			past = append(past, pastQuery{seq: qr.Seq, size: qr.Size, sketch: sk})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Slots hold the queries out of order once they wrap around, and more
	// of them than History if it was lowered.
	slices.SortFunc(past, func(a, b pastQuery) int { return cmp.Compare(a.seq, b.seq) })
	past = past[max(0, len(past)-s.history()):]
	if s.agg.queries == nil {
		s.agg.queries = map[string][]pastQuery{}
	}
	s.agg.queries[org] = past
	return past, nil
}

func (s *Service) history() int { return cmp.Or(s.cfg.Aggregates.History, DefaultHistory) }

// remember stores the sketch of an answered query of org. Callers hold
// s.agg.mu and called pastQueries.
func (s *Service) remember(ctx context.Context, org string, size int, sk *aggregate.Sketch) error {
	if err := s.ledgerSubject(ctx, org); err != nil {
		return err
	}
	b, _ := sk.MarshalBinary()
	past := s.agg.queries[org]
	seq := uint64(0)
	if len(past) > 0 {
		seq = past[len(past)-1].seq + 1
	}
	clear, err := json.Marshal(queryRecord{Seq: seq, Size: size, Sketch: b})
	if err != nil {
		return internal("encode aggregate ledger", err)
	}
	id := fmt.Sprintf("%06d", seq%uint64(s.history()))
	rec := custos.SealedRecord{Collection: queriesCollection, ID: id, Subject: ledgerSubject(org), Clear: clear, UpdatedAt: s.cfg.Now().UTC()}
	if _, err := s.cfg.Store.PutRecord(ctx, rec, nil); err != nil {
		return internal("store aggregate ledger", err)
	}
	past = append(past, pastQuery{seq: seq, size: size, sketch: sk})
	s.agg.queries[org] = past[max(0, len(past)-s.history()):]
	return nil
}

// ledgerSubject registers org's ledger subject, once per process. Callers
// hold s.agg.mu.
func (s *Service) ledgerSubject(ctx context.Context, org string) error {
	if s.agg.registered[org] {
		return nil
	}
	if _, _, err := s.cfg.Vault.Register(ctx, s.cfg.Store, custos.Subject{ID: ledgerSubject(org), Residency: s.cfg.Jurisdiction}); err != nil {
		return internal("register the aggregate ledger", err)
	}
	if s.agg.registered == nil {
		s.agg.registered = map[string]bool{}
	}
	s.agg.registered[org] = true
	return nil
}

// budget is the clear part of a record of budgetsCollection.
type budget struct {
	Spent float64 `json:"spent"`
}

// spend charges epsilon to p's budget, durably, and returns what is left;
// it refuses, recording the refusal, when the budget does not cover it.
// Callers hold s.agg.mu.
func (s *Service) spend(ctx context.Context, e custos.AuditEntry, p custos.Principal, epsilon float64) (float64, error) {
	limit := cmp.Or(s.cfg.Aggregates.Budget, DefaultBudget)
	id := s.pseudonym("principal/" + p.Org + "/" + p.ID)
	var b budget
	rec, err := s.cfg.Store.Record(ctx, budgetsCollection, id)
	switch {
	case errors.Is(err, custos.ErrNotFound):
	case err != nil:
		return 0, internal("read privacy budget", err)
	default:
		if err := json.Unmarshal(rec.Clear, &b); err != nil {
			return 0, internal("decode privacy budget", err)
		}
	}
	if b.Spent+epsilon > limit+1e-9 {
		return 0, s.deny(ctx, e, custos.Errorf(custos.CodeBudgetExhausted, "the privacy budget of this principal (%g) has %g left, less than the epsilon asked", limit, max(0, limit-b.Spent)))
	}
	b.Spent += epsilon
	if err := s.ledgerSubject(ctx, p.Org); err != nil {
		return 0, err
	}
	clear, _ := json.Marshal(b)
	rec = custos.SealedRecord{Collection: budgetsCollection, ID: id, Subject: ledgerSubject(p.Org), Clear: clear, UpdatedAt: s.cfg.Now().UTC()}
	if _, err := s.cfg.Store.PutRecord(ctx, rec, nil); err != nil {
		return 0, internal("store privacy budget", err)
	}
	return max(0, limit-b.Spent), nil
}
