package custody

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strconv"

	"github.com/custos/custos"
	"github.com/custos/custos/internal/policy"
	"github.com/custos/custos/internal/schema"
)

// An approved algorithm reads its inputs as a principal of its own: org
// custos.OrgAlgorithm, located in the jurisdiction, id "algorithm:NAME", for
// the purpose PurposeAlgorithm. The custodian's Cedar policies decide what it
// may see like any other reader's, and on top of them custody never gives an
// algorithm a value of a sealed class in clear: such a field reaches it as a
// token of the algorithm's own audience, "algorithm:NAME", or not at all.
// Tokens of that audience are not indexed for detokenization and match no
// other party's. Only the collections and fields its manifest declares are
// read.

// PurposeAlgorithm is the purpose algorithms read for.
const PurposeAlgorithm custos.Purpose = "recommendation"

// Algorithm is what custody needs to know of an approved algorithm to give
// it its inputs.
type Algorithm struct {
	Name string
	// Reads names, per collection, the fields the manifest declares.
	Reads map[string][]string
}

// Principal returns the principal a's runs read as.
func (a Algorithm) Principal(jurisdiction string) custos.Principal {
	return custos.Principal{ID: "algorithm:" + a.Name, Issuer: "custos", Org: custos.OrgAlgorithm, Loc: jurisdiction}
}

// Audience returns the token audience of a.
func (a Algorithm) Audience() string { return "algorithm:" + a.Name }

// Input limits: what a run can be given. The sandbox caps memory further.
const (
	// MaxAlgorithmHistory caps the records of one collection in a recommend input.
	MaxAlgorithmHistory = 10_000
	// recordsPage is how many records a walk reads at once.
	recordsPage = 1000
)

// readPlan is what an algorithm reads of one collection, and in which form.
type readPlan struct {
	coll   *schema.Collection
	fields []policy.Field // in the order of the manifest, withheld ones dropped
	forms  []custos.Form  // clear or token
}

// plan resolves a's reads against the schema and the policy, collections in
// name order.
func (s *Service) plan(a Algorithm) ([]readPlan, error) {
	p := a.Principal(s.cfg.Jurisdiction)
	pctx := policy.Context{Purpose: PurposeAlgorithm}
	var plans []readPlan
	for _, name := range slices.Sorted(maps.Keys(a.Reads)) {
		coll, err := s.Schema().Collection(name)
		if err != nil {
			return nil, custos.Errorf(custos.CodeUnknownCollection, "algorithm %s reads collection %s, which the schema does not declare", a.Name, name)
		}
		var fields []policy.Field
		for _, f := range a.Reads[name] {
			if _, ok := coll.Fields[f]; !ok {
				return nil, custos.Errorf(custos.CodeUnknownField, "algorithm %s reads %s.%s, which the schema does not declare", a.Name, name, f)
			}
			fields = append(fields, fieldOf(coll, f))
		}
		rp := readPlan{coll: coll}
		for i, form := range s.cfg.Policy.Forms(p, pctx, fields) {
			f := fields[i]
			if form == custos.FormMasked || form == custos.FormClear && f.Class.Sealed() {
				form = custos.FormWithheld
				if s.cfg.Policy.Allowed(p, custos.ActionReadToken, f, pctx) {
					form = custos.FormToken
				}
			}
			if form != custos.FormWithheld {
				rp.fields = append(rp.fields, f)
				rp.forms = append(rp.forms, form)
			}
		}
		plans = append(plans, rp)
	}
	return plans, nil
}

// row is one record as an algorithm sees it, with the key it is sorted by.
type row struct {
	subject string // the subject's token in the algorithm's audience
	id      string
	json    []byte
}

// render returns rec as a's input shows it: the planned fields, each clear
// or a token of a's audience.
func (s *Service) render(ctx context.Context, a Algorithm, rp readPlan, rec custos.SealedRecord) (row, error) {
	r := Request{Principal: a.Principal(s.cfg.Jurisdiction), Purpose: PurposeAlgorithm}
	values, err := s.open(ctx, r, custos.ActionReadToken, rp.coll, rec, rp.fields, rp.forms)
	if err != nil {
		return row{}, err
	}
	out := make(map[string]json.RawMessage, len(rp.fields))
	for i, f := range rp.fields {
		v, ok := values[f.Name]
		if !ok {
			continue
		}
		field, err := s.shape(a.Audience(), rp.coll.Fields[f.Name], rp.forms[i], v)
		if err != nil {
			return row{}, err
		}
		out[f.Name] = field.Value
	}
	b, err := json.Marshal(out) // keys sorted
	if err != nil {
		return row{}, internal("encode algorithm input", err)
	}
	subj, err := s.cfg.Tokens.Token(a.Audience(), custos.TypeID, rec.Subject)
	if err != nil {
		return row{}, internal("derive token", err)
	}
	return row{subject: subj, id: rec.ID, json: b}, nil
}

// rows renders the records page returns, walking from the first, at most
// max of them (no bound when max < 0).
func (s *Service) rows(ctx context.Context, a Algorithm, rp readPlan, max int, page func(after string, limit int) ([]custos.SealedRecord, error)) ([]row, error) {
	var rows []row
	for after := ""; max < 0 || len(rows) < max; {
		limit := recordsPage
		if max >= 0 {
			limit = min(limit, max-len(rows))
		}
		recs, err := page(after, limit)
		if err != nil {
			return nil, internal("list records", err)
		}
		for _, rec := range recs {
			r, err := s.render(ctx, a, rp, rec)
			if err != nil {
				return nil, err
			}
			rows = append(rows, r)
		}
		if len(recs) < limit {
			break
		}
		after = recs[len(recs)-1].ID
	}
	return rows, nil
}

// inputBuilder writes an input's collections, bounded by max bytes.
type inputBuilder struct {
	b   bytes.Buffer
	max int
	n   int // collections written
}

func (ib *inputBuilder) collection(name string, rows []row) error {
	slices.SortFunc(rows, func(x, y row) int { return cmp.Or(cmp.Compare(x.subject, y.subject), cmp.Compare(x.id, y.id)) })
	if ib.n > 0 {
		ib.b.WriteByte(',')
	}
	ib.n++
	ib.b.Write(jsonString(name))
	ib.b.WriteString(":[")
	for i, r := range rows {
		if i > 0 {
			ib.b.WriteByte(',')
		}
		ib.b.Write(r.json)
		if ib.b.Len() > ib.max {
			return custos.Errorf(custos.CodeTooLarge, "the algorithm's input is larger than %d bytes", ib.max)
		}
	}
	ib.b.WriteByte(']')
	return nil
}

// TrainInput returns the train input of a (docs/algorithm-abi.md): every
// record of the collections it reads, the fields it may see, at most max
// bytes.
func (s *Service) TrainInput(ctx context.Context, a Algorithm, seed uint64, max int) ([]byte, error) {
	plans, err := s.plan(a)
	if err != nil {
		return nil, err
	}
	ib := inputBuilder{max: max}
	ib.b.WriteString(`{"abi":1,"collections":{`)
	for _, rp := range plans {
		rows, err := s.rows(ctx, a, rp, -1, func(after string, limit int) ([]custos.SealedRecord, error) {
			return s.cfg.Store.Records(ctx, rp.coll.Name, after, limit)
		})
		if err != nil {
			return nil, err
		}
		if err := ib.collection(rp.coll.Name, rows); err != nil {
			return nil, err
		}
	}
	ib.b.WriteString(`},"seed":`)
	ib.b.Write(jsonString(strconv.FormatUint(seed, 10)))
	ib.b.WriteByte('}')
	return ib.b.Bytes(), nil
}

// RecommendInput returns the recommend input of a for the subject with the
// given id (docs/algorithm-abi.md): the subject's token and its records in
// the collections a reads, at most MaxAlgorithmHistory of each, the newest ids last.
func (s *Service) RecommendInput(ctx context.Context, a Algorithm, subject string, k int, seed uint64, max int) ([]byte, error) {
	plans, err := s.plan(a)
	if err != nil {
		return nil, err
	}
	if err := validSubjectID(subject); err != nil {
		return nil, err
	}
	if _, err := s.subject(ctx, subject); err != nil {
		return nil, err
	}
	tok, err := s.cfg.Tokens.Token(a.Audience(), custos.TypeID, subject)
	if err != nil {
		return nil, internal("derive token", err)
	}
	ib := inputBuilder{max: max}
	ib.b.WriteString(`{"abi":1,"history":{`)
	for _, rp := range plans {
		rows, err := s.rows(ctx, a, rp, MaxAlgorithmHistory, func(after string, limit int) ([]custos.SealedRecord, error) {
			return s.cfg.Store.SubjectRecords(ctx, rp.coll.Name, subject, after, limit)
		})
		if err != nil {
			return nil, err
		}
		if err := ib.collection(rp.coll.Name, rows); err != nil {
			return nil, err
		}
	}
	ib.b.WriteString(`},"k":`)
	ib.b.WriteString(strconv.Itoa(k))
	ib.b.WriteString(`,"seed":`)
	ib.b.Write(jsonString(strconv.FormatUint(seed, 10)))
	ib.b.WriteString(`,"subject":`)
	ib.b.Write(jsonString(tok))
	ib.b.WriteByte('}')
	return ib.b.Bytes(), nil
}
