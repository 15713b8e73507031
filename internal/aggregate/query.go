// Package aggregate computes the figures about many subjects that may leave
// the custodian: counts, sums, averages and distinct counts of a
// collection's records, filtered and grouped, released only for groups of
// at least k distinct subjects and, on request, with Laplace noise.
//
// It decides nothing about who may ask what (custody does, with the
// policies) and reads nothing: custody walks the records and hands each one
// to a Table, which keeps per group the records, the measured values and the
// distinct subjects, and at the end suppresses the groups that would
// describe too few subjects. A Sketch of each answered query's subjects lets
// custody refuse a query that differs from an earlier one by too few
// subjects (a differencing attack). See docs/aggregates.md for the
// defences and the attacks they stop.
package aggregate

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/custos/custos"
	"github.com/custos/custos/internal/schema"
)

// Caps of a query.
const (
	MaxGroupBy  = 4   // terms a query groups by
	MaxFilters  = 8   // filters of a query
	MaxIn       = 100 // values of one "in" filter
	MaxValueLen = 256 // bytes of one filter value
	// MaxGroups caps the groups a query may form before suppression: a
	// query that would form more is refused, to be narrowed.
	MaxGroups = 100_000
)

// Measures.
const (
	Count         = "count"          // records
	Sum           = "sum"            // of an int or float field
	Avg           = "avg"            // of an int or float field
	CountDistinct = "count_distinct" // distinct values of a field
)

// Buckets coarsen a date or timestamp (in UTC) in a term.
const (
	Day   = "day"   // 2026-11-21
	Month = "month" // 2026-11
	Year  = "year"  // 2026
)

// Query is an aggregate request.
type Query struct {
	// Collection is the collection whose records are aggregated.
	Collection string `json:"collection"`
	// Measure is count, sum, avg or count_distinct.
	Measure string `json:"measure"`
	// Field is the term measured by sum, avg and count_distinct.
	Field string `json:"field,omitempty"`
	// GroupBy are the terms of each group's key.
	GroupBy []string `json:"group_by,omitempty"`
	// Where are the filters a record must all pass to be aggregated.
	Where []Filter `json:"where,omitempty"`
	// Noise asks for Laplace noise on every released figure; nil for
	// exact figures.
	Noise *Noise `json:"noise,omitempty"`
}

// Filter keeps the records whose term is one of In, or within [From, To).
type Filter struct {
	Term string  `json:"term"`
	In   []Value `json:"in,omitempty"`
	From *Value  `json:"from,omitempty"`
	To   *Value  `json:"to,omitempty"`
}

// Noise asks for differentially private figures.
type Noise struct {
	// Epsilon is the privacy loss the query spends of the principal's
	// budget: the smaller, the noisier.
	Epsilon float64 `json:"epsilon"`
	// MaxPerSubject bounds the records of one subject the query counts;
	// the others are left out, so that one subject changes the figures by
	// a known amount at most. Default 1.
	MaxPerSubject int `json:"max_per_subject,omitempty"`
	// MaxValue bounds the magnitude of a summed value: values beyond are
	// clamped to ±MaxValue. Required for sum and avg.
	MaxValue float64 `json:"max_value,omitempty"`
}

// Noise limits.
const (
	MinEpsilon       = 0.001
	MaxEpsilon       = 10
	MaxMaxPerSubject = 10_000
)

// Value is a filter value: a JSON string, number or boolean, kept as the
// text a term renders for it.
type Value string

// UnmarshalJSON accepts a string, a number or a boolean.
func (v *Value) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*v = Value(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err == nil {
		*v = Value(n.String())
		return nil
	}
	var t bool
	if err := json.Unmarshal(b, &t); err == nil {
		*v = Value(strconv.FormatBool(t))
		return nil
	}
	return fmt.Errorf("a filter value must be a string, a number or a boolean")
}

// Term names what a query groups by, filters on or measures: a field of
// the collection ("video"), a field of the subject's own record in another
// collection ("users.country"), either possibly coarsened by a bucket
// ("day(at)", "year(users.birthdate)").
type Term struct {
	Bucket     string // "", day, month or year
	Collection string // "" for the queried collection
	Field      string
}

// String returns the term as ParseTerm reads it.
func (t Term) String() string {
	s := t.Field
	if t.Collection != "" {
		s = t.Collection + "." + s
	}
	if t.Bucket != "" {
		s = t.Bucket + "(" + s + ")"
	}
	return s
}

// ParseTerm parses a term. Names are checked against the schema by the
// caller; here only their shape.
func ParseTerm(s string) (Term, error) {
	var t Term
	if len(s) > 200 {
		return t, fmt.Errorf("a term is at most 200 bytes")
	}
	if open := strings.IndexByte(s, '('); open >= 0 {
		if !strings.HasSuffix(s, ")") {
			return t, fmt.Errorf("term %q: a bucket is written day(field), month(field) or year(field)", s)
		}
		t.Bucket, s = s[:open], s[open+1:len(s)-1]
		switch t.Bucket {
		case Day, Month, Year:
		default:
			return t, fmt.Errorf("term %q: unknown bucket; use day, month or year", t.Bucket+"(…)")
		}
	}
	if coll, field, ok := strings.Cut(s, "."); ok {
		t.Collection, s = coll, field
		if !schema.ValidName(coll) {
			return t, fmt.Errorf("term %q: not a collection name", coll)
		}
	}
	if !schema.ValidName(s) {
		return t, fmt.Errorf("term %q: not a field name", s)
	}
	t.Field = s
	return t, nil
}

// Check checks q's shape and caps and fills its defaults. It does not know
// the schema.
func (q *Query) Check() error {
	switch q.Measure {
	case Count:
		if q.Field != "" {
			return fmt.Errorf("count counts records and takes no field")
		}
	case Sum, Avg, CountDistinct:
		if q.Field == "" {
			return fmt.Errorf("%s needs a field", q.Measure)
		}
	default:
		return fmt.Errorf("measure must be count, sum, avg or count_distinct")
	}
	if len(q.GroupBy) > MaxGroupBy {
		return fmt.Errorf("a query groups by at most %d terms", MaxGroupBy)
	}
	if len(q.Where) > MaxFilters {
		return fmt.Errorf("a query has at most %d filters", MaxFilters)
	}
	for _, f := range q.Where {
		switch {
		case len(f.In) > 0 && (f.From != nil || f.To != nil):
			return fmt.Errorf("filter on %q: use either in or from/to", f.Term)
		case len(f.In) == 0 && f.From == nil && f.To == nil:
			return fmt.Errorf("filter on %q: give in, or from and/or to", f.Term)
		case len(f.In) > MaxIn:
			return fmt.Errorf("filter on %q: at most %d values", f.Term, MaxIn)
		}
		for _, v := range f.values() {
			if len(v) > MaxValueLen {
				return fmt.Errorf("filter on %q: a value is at most %d bytes", f.Term, MaxValueLen)
			}
		}
	}
	if n := q.Noise; n != nil {
		if !(n.Epsilon >= MinEpsilon && n.Epsilon <= MaxEpsilon) {
			return fmt.Errorf("noise.epsilon must be between %g and %g", MinEpsilon, float64(MaxEpsilon))
		}
		if n.MaxPerSubject == 0 {
			n.MaxPerSubject = 1
		}
		if n.MaxPerSubject < 1 || n.MaxPerSubject > MaxMaxPerSubject {
			return fmt.Errorf("noise.max_per_subject must be between 1 and %d", MaxMaxPerSubject)
		}
		if q.Measure == Sum || q.Measure == Avg {
			if !(n.MaxValue > 0) || math.IsInf(n.MaxValue, 0) {
				return fmt.Errorf("noise.max_value must be a positive number for %s", q.Measure)
			}
		}
	}
	return nil
}

func (f Filter) values() []Value {
	v := f.In
	if f.From != nil {
		v = append(v[:len(v):len(v)], *f.From)
	}
	if f.To != nil {
		v = append(v[:len(v):len(v)], *f.To)
	}
	return v
}

// Bucketable reports whether a field of type t can be bucketed.
func Bucketable(t custos.FieldType) bool {
	return t == custos.TypeDate || t == custos.TypeTimestamp
}

// Numeric reports whether a field of type t can be summed and compared as
// a number.
func Numeric(t custos.FieldType) bool { return t == custos.TypeInt || t == custos.TypeFloat }

// Render returns the text of stored value enc (as the schema encodes it)
// of a field of type t, coarsened by bucket: the text a group's key shows
// and a filter compares.
func Render(t custos.FieldType, bucket string, enc json.RawMessage) (string, error) {
	switch t {
	case custos.TypeInt, custos.TypeFloat, custos.TypeBool:
		if bucket != "" {
			return "", fmt.Errorf("only dates and timestamps have buckets")
		}
		return string(enc), nil
	}
	s, ok := plainString(enc)
	if !ok {
		if err := json.Unmarshal(enc, &s); err != nil {
			return "", fmt.Errorf("stored value is not a string")
		}
	}
	if bucket == "" {
		return s, nil
	}
	// A timestamp in UTC, as most are stored, is bucketed by its text.
	if t == custos.TypeTimestamp && len(s) >= 20 && s[len(s)-1] == 'Z' && s[10] == 'T' {
		switch bucket {
		case Day:
			return s[:10], nil
		case Month:
			return s[:7], nil
		case Year:
			return s[:4], nil
		}
	}
	var tm time.Time
	var err error
	switch t {
	case custos.TypeDate:
		tm, err = time.Parse(time.DateOnly, s)
	case custos.TypeTimestamp:
		tm, err = time.Parse(time.RFC3339Nano, s)
	default:
		return "", fmt.Errorf("only dates and timestamps have buckets")
	}
	if err != nil {
		return "", fmt.Errorf("stored value is not a %s", t)
	}
	tm = tm.UTC()
	switch bucket {
	case Day:
		return tm.Format(time.DateOnly), nil
	case Month:
		return tm.Format("2006-01"), nil
	}
	return tm.Format("2006"), nil
}

// plainString returns the text of enc, a JSON string, when it holds
// nothing to unescape.
func plainString(enc json.RawMessage) (string, bool) {
	if len(enc) < 2 || enc[0] != '"' || enc[len(enc)-1] != '"' {
		return "", false
	}
	for _, c := range enc[1 : len(enc)-1] {
		if c == '\\' || c == '"' || c < 0x20 || c >= 0x80 {
			return "", false
		}
	}
	return string(enc[1 : len(enc)-1]), true
}

// Match returns the test of filter f on the rendered values of a term of
// type t with the given bucket. Ranges compare numbers as numbers and
// buckets and dates as text (their text sorts as they do); other terms
// take only "in".
func Match(f Filter, t custos.FieldType, bucket string) (func(string) bool, error) {
	if len(f.In) > 0 {
		set := make(map[string]bool, len(f.In))
		for _, v := range f.In {
			set[string(v)] = true
		}
		return func(s string) bool { return set[s] }, nil
	}
	switch {
	case Numeric(t) && bucket == "":
		lo, hi := math.Inf(-1), math.Inf(1)
		var err error
		if f.From != nil {
			if lo, err = strconv.ParseFloat(string(*f.From), 64); err != nil {
				return nil, fmt.Errorf("filter on %q: from is not a number", f.Term)
			}
		}
		if f.To != nil {
			if hi, err = strconv.ParseFloat(string(*f.To), 64); err != nil {
				return nil, fmt.Errorf("filter on %q: to is not a number", f.Term)
			}
		}
		return func(s string) bool {
			x, err := strconv.ParseFloat(s, 64)
			return err == nil && x >= lo && x < hi
		}, nil
	case bucket != "" || t == custos.TypeDate:
		from, to := "", "\xff"
		if f.From != nil {
			from = string(*f.From)
		}
		if f.To != nil {
			to = string(*f.To)
		}
		return func(s string) bool { return s >= from && s < to }, nil
	}
	return nil, fmt.Errorf("filter on %q: from/to compare numbers, dates and buckets; use in, or a bucket such as day(%s)", f.Term, f.Term)
}
