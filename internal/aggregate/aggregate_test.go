package aggregate

import (
	"encoding/json"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/custos/custos"
)

func TestParseTerm(t *testing.T) {
	for in, want := range map[string]Term{
		"video":                 {Field: "video"},
		"users.country":         {Collection: "users", Field: "country"},
		"day(at)":               {Bucket: Day, Field: "at"},
		"year(users.birthdate)": {Bucket: Year, Collection: "users", Field: "birthdate"},
	} {
		got, err := ParseTerm(in)
		if err != nil || got != want {
			t.Errorf("ParseTerm(%q) = %+v, %v; want %+v", in, got, err, want)
		}
		if got.String() != in {
			t.Errorf("%+v.String() = %q, want %q", got, got.String(), in)
		}
	}
	for _, in := range []string{"", "Video", "hour(at)", "day(at", "day()", "a.b.c", "users.", ".x", "day(day(at))", strings.Repeat("a", 201)} {
		if got, err := ParseTerm(in); err == nil {
			t.Errorf("ParseTerm(%q) = %+v, want an error", in, got)
		}
	}
}

func TestCheck(t *testing.T) {
	v := Value("x")
	for name, q := range map[string]Query{
		"unknown measure":        {Measure: "median"},
		"count with a field":     {Measure: Count, Field: "x"},
		"sum without a field":    {Measure: Sum},
		"too many terms":         {Measure: Count, GroupBy: []string{"a", "b", "c", "d", "e"}},
		"filter with nothing":    {Measure: Count, Where: []Filter{{Term: "a"}}},
		"filter with both":       {Measure: Count, Where: []Filter{{Term: "a", In: []Value{"x"}, From: &v}}},
		"epsilon zero":           {Measure: Count, Noise: &Noise{}},
		"epsilon too large":      {Measure: Count, Noise: &Noise{Epsilon: 11}},
		"sum without max_value":  {Measure: Sum, Field: "x", Noise: &Noise{Epsilon: 1}},
		"negative per subject":   {Measure: Count, Noise: &Noise{Epsilon: 1, MaxPerSubject: -1}},
		"value too long":         {Measure: Count, Where: []Filter{{Term: "a", In: []Value{Value(strings.Repeat("x", MaxValueLen+1))}}}},
		"epsilon not a number":   {Measure: Count, Noise: &Noise{Epsilon: math.NaN()}},
		"max_value not a number": {Measure: Avg, Field: "x", Noise: &Noise{Epsilon: 1, MaxValue: math.NaN()}},
	} {
		if err := q.Check(); err == nil {
			t.Errorf("%s: Check accepted %+v", name, q)
		}
	}
	q := Query{Measure: Count, Noise: &Noise{Epsilon: 0.5}}
	if err := q.Check(); err != nil || q.Noise.MaxPerSubject != 1 {
		t.Errorf("Check = %v, max_per_subject %d; want nil, 1", err, q.Noise.MaxPerSubject)
	}
}

func TestValue(t *testing.T) {
	var f Filter
	if err := json.Unmarshal([]byte(`{"term":"x","in":["a",15000,true]}`), &f); err != nil {
		t.Fatal(err)
	}
	if want := []Value{"a", "15000", "true"}; !slices.Equal(f.In, want) {
		t.Errorf("values %q, want %q", f.In, want)
	}
	if err := json.Unmarshal([]byte(`{"term":"x","in":[{"a":1}]}`), &f); err == nil {
		t.Error("an object was taken as a filter value")
	}
}

func TestRender(t *testing.T) {
	for _, c := range []struct {
		typ    custos.FieldType
		bucket string
		enc    string
		want   string
	}{
		{custos.TypeTimestamp, Day, `"2026-11-21T23:30:00-05:00"`, "2026-11-22"},
		{custos.TypeTimestamp, Month, `"2026-11-21T10:00:00Z"`, "2026-11"},
		{custos.TypeTimestamp, Day, `"2026-11-21T10:00:00.123Z"`, "2026-11-21"},
		{custos.TypeTimestamp, Year, `"2026-12-31T23:00:00-02:00"`, "2027"},
		{custos.TypeString, "", `"caf\u00e9 \"x\""`, `café "x"`},
		{custos.TypeDate, Year, `"1990-04-12"`, "1990"},
		{custos.TypeString, "", `"US"`, "US"},
		{custos.TypeInt, "", `15000`, "15000"},
	} {
		got, err := Render(c.typ, c.bucket, json.RawMessage(c.enc))
		if err != nil || got != c.want {
			t.Errorf("Render(%s, %q, %s) = %q, %v; want %q", c.typ, c.bucket, c.enc, got, err, c.want)
		}
	}
	if _, err := Render(custos.TypeString, Day, json.RawMessage(`"x"`)); err == nil {
		t.Error("a string was bucketed")
	}
}

func TestMatch(t *testing.T) {
	from, to := Value("2026-11-20"), Value("2026-11-22")
	m, err := Match(Filter{Term: "day(at)", From: &from, To: &to}, custos.TypeTimestamp, Day)
	if err != nil {
		t.Fatal(err)
	}
	for s, want := range map[string]bool{"2026-11-19": false, "2026-11-20": true, "2026-11-21": true, "2026-11-22": false} {
		if m(s) != want {
			t.Errorf("day range matches %s: %v, want %v", s, m(s), want)
		}
	}
	lo := Value("100")
	m, err = Match(Filter{Term: "watched_ms", From: &lo}, custos.TypeInt, "")
	if err != nil || !m("1000") || m("99") || m("x") {
		t.Errorf("numeric range: %v", err)
	}
	if _, err := Match(Filter{Term: "email", From: &lo}, custos.TypeEmail, ""); err == nil {
		t.Error("a range over emails was accepted")
	}
	if _, err := Match(Filter{Term: "at", From: &from}, custos.TypeTimestamp, ""); err == nil {
		t.Error("a range over unbucketed timestamps was accepted")
	}
}

// table adds, for each group, the given number of subjects with one record
// each, subjects numbered from first.
func table(t *testing.T, q *Query, groups map[string]int) *Table {
	t.Helper()
	tb := NewTable(q)
	next := int32(0)
	for _, g := range slices.Sorted(maps.Keys(groups)) {
		for range groups[g] {
			if err := tb.Add(next, []string{g}, 1, g); err != nil {
				t.Fatal(err)
			}
			next++
		}
	}
	return tb
}

func TestReleaseSuppressesSmallGroups(t *testing.T) {
	q := &Query{Measure: Count}
	res, err := table(t, q, map[string]int{"big": 60, "other": 50, "small": 30, "tiny": 25}).Release(50, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []Group{{Key: []string{"big"}, Value: 60}, {Key: []string{"other"}, Value: 50}}
	if !slices.EqualFunc(res.Groups, want, func(a, b Group) bool { return slices.Equal(a.Key, b.Key) && a.Value == b.Value }) {
		t.Errorf("groups %+v, want %+v", res.Groups, want)
	}
	if res.Suppressed != 2 {
		t.Errorf("suppressed %d, want 2", res.Suppressed)
	}
	// 4 subjects in the small groups: the smallest released one goes too.
	res, err = table(t, q, map[string]int{"big": 60, "other": 50, "small": 3, "tiny": 1}).Release(50, nil)
	if err != nil || len(res.Groups) != 1 || res.Groups[0].Key[0] != "big" || res.Suppressed != 3 {
		t.Errorf("Release = %+v, %v; want big only, 3 suppressed", res, err)
	}
}

// TestReleaseStopsTotalMinusGroups is the attack on suppression alone: ask
// for the total of a set, then for its groups; the total minus the
// released groups is the figure of the suppressed ones. Release withholds
// released groups too until the withheld ones hold k subjects, so that the
// difference describes at least k.
func TestReleaseStopsTotalMinusGroups(t *testing.T) {
	const k = 10
	r := rand.New(rand.NewPCG(1, 2))
	for trial := range 2000 {
		groups := map[string]int{}
		total := 0
		for g := range 1 + r.IntN(6) {
			groups[string(rune('a'+g))] = 1 + r.IntN(3*k)
			total += groups[string(rune('a'+g))]
		}
		if total < k {
			continue // a query set of fewer than k subjects is refused whole
		}
		q := &Query{Measure: Count}
		res, err := table(t, q, groups).Release(k, nil)
		if err != nil {
			t.Fatal(err)
		}
		released := 0
		for _, g := range res.Groups {
			released += int(g.Value)
			if groups[g.Key[0]] < k {
				t.Fatalf("trial %d: group of %d subjects released", trial, groups[g.Key[0]])
			}
		}
		// One record per subject: the difference is a number of subjects.
		if d := total - released; d > 0 && d < k {
			t.Fatalf("trial %d: groups %v: total minus released groups describes %d subjects", trial, groups, d)
		}
		if len(res.Groups)+res.Suppressed != len(groups) {
			t.Fatalf("trial %d: %d released + %d suppressed of %d groups", trial, len(res.Groups), res.Suppressed, len(groups))
		}
	}
}

func TestDistinctSubjectsNotRecords(t *testing.T) {
	// One subject with 100 records is one subject: not enough for k = 2.
	q := &Query{Measure: Count}
	tb := NewTable(q)
	for range 100 {
		if err := tb.Add(7, []string{"g"}, 0, ""); err != nil {
			t.Fatal(err)
		}
	}
	res, err := tb.Release(2, nil)
	if err != nil || len(res.Groups) != 0 || res.Suppressed != 1 {
		t.Errorf("Release = %+v, %v; want the group suppressed", res, err)
	}
}

func TestMeasures(t *testing.T) {
	for _, c := range []struct {
		measure string
		want    float64
	}{{Count, 4}, {Sum, 10}, {Avg, 2.5}, {CountDistinct, 3}} {
		tb := NewTable(&Query{Measure: c.measure})
		for i, x := range []float64{1, 2, 3, 4} {
			if err := tb.Add(int32(i), nil, x, []string{"a", "b", "c", "a"}[i]); err != nil {
				t.Fatal(err)
			}
		}
		res, err := tb.Release(4, nil)
		if err != nil || len(res.Groups) != 1 || res.Groups[0].Value != c.want {
			t.Errorf("%s: %+v, %v; want %g", c.measure, res, err, c.want)
		}
	}
}

func TestNoiseBoundsContributions(t *testing.T) {
	q := &Query{Measure: Sum, Field: "x", Noise: &Noise{Epsilon: 1, MaxPerSubject: 2, MaxValue: 10}}
	if err := q.Check(); err != nil {
		t.Fatal(err)
	}
	tb := NewTable(q)
	for range 5 {
		if err := tb.Add(1, nil, 1000, ""); err != nil {
			t.Fatal(err)
		}
	}
	c := tb.cells[""]
	if c.records != 2 || c.sum != 20 {
		t.Errorf("one subject's 5 records of 1000 with bounds 2 and 10: %d records, sum %g; want 2, 20", c.records, c.sum)
	}
	if got, want := tb.scale(), 2*10/1.0; got != want {
		t.Errorf("scale %g, want %g", got, want)
	}
}

// TestLaplace checks the draws against the distribution: mean 0, mean
// absolute value b, and P(|X| > b ln 20) = 5%.
func TestLaplace(t *testing.T) {
	const n, b = 200_000, 3.0
	rnd := rand.NewChaCha8([32]byte{1})
	var sum, abs float64
	tail := 0
	for range n {
		x, err := Laplace(rnd, b)
		if err != nil {
			t.Fatal(err)
		}
		sum += x
		abs += math.Abs(x)
		if math.Abs(x) > b*math.Log(20) {
			tail++
		}
	}
	if m := sum / n; math.Abs(m) > 0.05 {
		t.Errorf("mean %g, want about 0", m)
	}
	if m := abs / n; math.Abs(m-b) > 0.05 {
		t.Errorf("mean |x| %g, want about %g", m, b)
	}
	if p := float64(tail) / n; math.Abs(p-0.05) > 0.005 {
		t.Errorf("P(|x| > b ln 20) = %g, want about 0.05", p)
	}
}

func TestNoisyRelease(t *testing.T) {
	q := &Query{Measure: Count, Noise: &Noise{Epsilon: 0.5}}
	if err := q.Check(); err != nil {
		t.Fatal(err)
	}
	rnd := rand.NewChaCha8([32]byte{2})
	differs := 0
	for range 50 {
		res, err := table(t, q, map[string]int{"a": 1000}).Release(50, rnd)
		if err != nil {
			t.Fatal(err)
		}
		v := res.Groups[0].Value
		if v != math.Round(v) || math.Abs(v-1000) > 40 {
			t.Fatalf("noisy count %g of 1000 at scale %g", v, res.Scale)
		}
		if v != 1000 {
			differs++
		}
	}
	if differs < 40 {
		t.Errorf("only %d of 50 noisy counts differ from the true one", differs)
	}
}

func TestSketchDifference(t *testing.T) {
	const capacity = 50
	r := rand.New(rand.NewPCG(3, 4))
	for trial := range 400 {
		a, b := NewSketch(capacity), NewSketch(capacity)
		common := r.IntN(5000)
		for range common {
			x := r.Uint64()
			a.Insert(x)
			b.Insert(x)
		}
		onlyA, onlyB := r.IntN(40), r.IntN(40)
		for range onlyA {
			a.Insert(r.Uint64())
		}
		for range onlyB {
			b.Insert(r.Uint64())
		}
		n, ok := a.Difference(b)
		want := onlyA + onlyB
		switch {
		case want < a.Capacity() && (!ok || n != want):
			t.Fatalf("trial %d: difference of %d: got %d, %v", trial, want, n, ok)
		case want > a.Capacity() && ok && n < a.Capacity():
			t.Fatalf("trial %d: difference of %d reported as %d", trial, want, n)
		}
		var c Sketch
		enc, _ := a.MarshalBinary()
		if err := c.UnmarshalBinary(enc); err != nil {
			t.Fatal(err)
		}
		if n, ok := c.Difference(a); !ok || n != 0 {
			t.Fatalf("trial %d: decoded sketch differs from its original by %d, %v", trial, n, ok)
		}
	}
	if a, b := NewSketch(50), NewSketch(60); func() bool { _, ok := a.Difference(b); return ok }() {
		t.Error("sketches of different sizes compared")
	}
	var s Sketch
	for _, b := range [][]byte{nil, make([]byte, 71), make([]byte, 72*(MaxSketchCells/3+1))} {
		if err := s.UnmarshalBinary(b); err == nil {
			t.Errorf("UnmarshalBinary of %d bytes accepted", len(b))
		}
	}
}

// TestReleaseStopsMarginMinusGroups is the attack on a finer grouping:
// views of video v1 by country, where one subject of v1 lives in PR, and
// views of v1 alone: v1 minus (v1, US) is what the PR subject watched,
// even though suppressed groups elsewhere hold many subjects.
func TestReleaseStopsMarginMinusGroups(t *testing.T) {
	const k = 50
	tb := NewTable(&Query{Measure: Count})
	next := int32(0)
	add := func(key ...string) {
		if err := tb.Add(next, key, 0, ""); err != nil {
			t.Fatal(err)
		}
		next++
	}
	for range 59 {
		add("v1", "US")
	}
	add("v1", "PR")
	for v := range 60 {
		add("v"+string(rune('a'+v%26))+string(rune('a'+v/26)), "PR")
	}
	for range 80 {
		add("v2", "US")
	}
	res, err := tb.Release(k, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range res.Groups {
		if g.Key[0] == "v1" {
			t.Errorf("released %v: with v1's total it gives the PR subject's views", g)
		}
	}
	if len(res.Groups) != 1 || res.Groups[0].Key[0] != "v2" {
		t.Errorf("groups %v, want (v2, US) only", res.Groups)
	}
}

// TestReleaseMarginsRandom checks on random two-term tables that in every
// coarser group that releases a group, the withheld groups hold no subject
// or at least k.
func TestReleaseMarginsRandom(t *testing.T) {
	const k = 8
	r := rand.New(rand.NewPCG(5, 6))
	for trial := range 300 {
		tb := NewTable(&Query{Measure: Count})
		type pair struct{ a, b string }
		subjects := map[pair][]int32{}
		for s := range int32(20 + r.IntN(200)) {
			p := pair{string(rune('a' + r.IntN(4))), string(rune('a' + r.IntN(5)))}
			if err := tb.Add(s, []string{p.a, p.b}, 0, ""); err != nil {
				t.Fatal(err)
			}
			subjects[p] = append(subjects[p], s)
		}
		res, err := tb.Release(k, nil)
		if err != nil {
			t.Fatal(err)
		}
		released := map[pair]bool{}
		for _, g := range res.Groups {
			released[pair{g.Key[0], g.Key[1]}] = true
		}
		for _, margin := range []func(pair) string{
			func(pair) string { return "" },
			func(p pair) string { return p.a },
			func(p pair) string { return p.b },
		} {
			// A coarser group with nothing released holds fewer than k
			// subjects or withholds at least k: either way the coarser
			// query withholds it or describes k.
			hidden, shown := map[string]int{}, map[string]bool{}
			for p, ss := range subjects {
				if released[p] {
					shown[margin(p)] = true
				} else {
					hidden[margin(p)] += len(ss)
				}
			}
			for m, n := range hidden {
				if shown[m] && n < k {
					t.Fatalf("trial %d: coarser group %q: its withheld groups hold %d subjects", trial, m, n)
				}
			}
		}
	}
}

// FuzzQuery decodes and checks arbitrary request bodies: never a panic,
// and every term Check leaves to the caller parses back to itself.
func FuzzQuery(f *testing.F) {
	f.Add([]byte(`{"collection":"watch_events","measure":"count","group_by":["video","users.country","day(at)"],"where":[{"term":"day(at)","from":"2026-11-20","to":"2026-11-27"}]}`))
	f.Add([]byte(`{"collection":"watch_events","measure":"avg","field":"watched_ms","noise":{"epsilon":0.5,"max_value":600000}}`))
	f.Add([]byte(`{"measure":"count_distinct","field":"year(users.birthdate)","where":[{"term":"video","in":["v1",2,true]}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var q Query
		if json.Unmarshal(body, &q) != nil || q.Check() != nil {
			return
		}
		terms := append(slices.Clone(q.GroupBy), q.Field)
		for _, w := range q.Where {
			terms = append(terms, w.Term)
			if _, err := Match(w, custos.TypeInt, ""); err != nil && len(w.In) > 0 {
				t.Errorf("an in filter was refused: %v", err)
			}
		}
		for _, s := range terms {
			if tm, err := ParseTerm(s); err == nil && tm.String() != s {
				t.Errorf("term %q parses to %q", s, tm.String())
			}
		}
	})
}

// FuzzRenderTimestamp holds the text fast path of bucketing to the parse
// of the timestamp.
func FuzzRenderTimestamp(f *testing.F) {
	f.Add("2026-11-21T10:00:00Z")
	f.Add("2026-11-21T23:30:00-05:00")
	f.Add("1999-12-31T23:59:59.999999999Z")
	f.Fuzz(func(t *testing.T, s string) {
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return
		}
		enc, _ := json.Marshal(s)
		for bucket, layout := range map[string]string{Day: time.DateOnly, Month: "2006-01", Year: "2006"} {
			got, err := Render(custos.TypeTimestamp, bucket, enc)
			if want := tm.UTC().Format(layout); err != nil || got != want {
				t.Errorf("Render(%q, %s) = %q, %v; want %q", s, bucket, got, err, want)
			}
		}
	})
}
