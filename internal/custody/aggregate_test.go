package custody_test

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/custos/custos"
	"github.com/custos/custos/internal/aggregate"
	"github.com/custos/custos/internal/custody"
)

// The aggregate tests run with k = 5 over a platform of 40 users: 24 in
// US, 10 in AS, 5 in PR and 1 in GU. Every user watched v1 on 2026-11-21;
// the US users watched v2 on 2026-11-22 too, for 10 s each.
const testK = 5

var countries = map[string]int{"US": 24, "AS": 10, "PR": 5, "GU": 1}

// addPlatform writes the users and their watch events as the operator's
// service.
func addPlatform(t testing.TB, f *fixture) {
	t.Helper()
	ctx := context.Background()
	n := 0
	for _, c := range slices.Sorted(maps.Keys(countries)) {
		for range countries[c] {
			id := fmt.Sprintf("u%02d", n)
			n++
			f.addUser(t, id, map[string]string{"id": `"` + id + `"`, "handle": `"h` + id + `"`, "email": `"` + id + `@example.com"`, "birthdate": `"1990-04-12"`, "country": `"` + c + `"`})
			watch := func(video, at string) {
				fields := raw(map[string]string{"user": `"` + id + `"`, "video": `"` + video + `"`, "watched_ms": "10000", "at": `"` + at + `"`})
				if _, _, err := f.svc.Write(ctx, svc, "watch_events", "w-"+id+"-"+video, fields); err != nil {
					t.Fatal(err)
				}
			}
			watch("v1", "2026-11-21T10:00:00Z")
			if c == "US" {
				watch("v2", "2026-11-22T23:30:00-05:00") // 2026-11-23 in UTC
			}
		}
	}
}

// aggregates returns a service like f's with k = testK, changed by change.
func aggregates(t testing.TB, f *fixture, change func(*custody.AggregatesConfig)) *custody.Service {
	return f.env.With(t, func(c *custody.Config) {
		c.Aggregates.MinSubjects = map[string]int{"default": testK}
		if change != nil {
			change(&c.Aggregates)
		}
	})
}

func in(term string, values ...string) aggregate.Filter {
	f := aggregate.Filter{Term: term}
	for _, v := range values {
		f.In = append(f.In, aggregate.Value(v))
	}
	return f
}

func groups(res custody.AggregateResult) map[string]float64 {
	out := map[string]float64{}
	for _, g := range res.Groups {
		out[strings.Join(g.Key, " ")] = g.Value
	}
	return out
}

// TestAggregateDailyWatchCounts is the analyst abroad: daily watch counts
// per video and country, in clear, small groups suppressed.
func TestAggregateDailyWatchCounts(t *testing.T) {
	f := newFixture(t)
	addPlatform(t, f)
	s := aggregates(t, f, nil)
	ctx := context.Background()
	res, err := s.Aggregate(ctx, engineer, aggregate.Query{
		Collection: "watch_events", Measure: aggregate.Count,
		GroupBy: []string{"video", "users.country", "day(at)"},
	})
	if err != nil {
		t.Fatal(err)
	}
	// GU's one subject is suppressed, and PR's 5 with it: v1's total on
	// 2026-11-21 (a query by video and day) minus US, AS and PR would be
	// GU's.
	want := map[string]float64{"v1 US 2026-11-21": 24, "v1 AS 2026-11-21": 10, "v2 US 2026-11-23": 24}
	if got := groups(res); !mapsEqual(got, want) {
		t.Errorf("groups %v, want %v", got, want)
	}
	if res.Suppressed != 2 || res.K != testK || res.AuditIndex == 0 {
		t.Errorf("suppressed %d, k %d, audit index %d; want 2 (GU, PR), %d, > 0", res.Suppressed, res.K, res.AuditIndex, testK)
	}
	e := f.env.Entries(t)[res.AuditIndex]
	if e.Action != "aggregate" || e.Decision != "allow" || e.Subject != "" || e.Count != 3 || !strings.Contains(e.Detail, "count by video,users.country,day(at)") {
		t.Errorf("audit entry %+v", e)
	}

	// Measures over protected fields: the analyst may sum what it may not
	// read.
	res, err = s.Aggregate(ctx, engineer, aggregate.Query{Collection: "watch_events", Measure: aggregate.Avg, Field: "watched_ms", GroupBy: []string{"video"}})
	if err != nil || !mapsEqual(groups(res), map[string]float64{"v1": 10000, "v2": 10000}) {
		t.Errorf("average watch time by video: %+v, %v", res, err)
	}
	res, err = s.Aggregate(ctx, engineer, aggregate.Query{Collection: "watch_events", Measure: aggregate.CountDistinct, Field: "user", GroupBy: []string{"video"}})
	if err != nil || !mapsEqual(groups(res), map[string]float64{"v1": 40, "v2": 24}) {
		t.Errorf("distinct viewers by video: %+v, %v", res, err)
	}
	res, err = s.Aggregate(ctx, engineer, aggregate.Query{Collection: "users", Measure: aggregate.Count, GroupBy: []string{"year(birthdate)"}})
	if err != nil || !mapsEqual(groups(res), map[string]float64{"1990": 40}) {
		t.Errorf("users by year of birth: %+v, %v", res, err)
	}
}

func mapsEqual(a, b map[string]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestAggregateSingleSubject is every way of asking for one subject.
func TestAggregateSingleSubject(t *testing.T) {
	f := newFixture(t)
	addPlatform(t, f)
	s := aggregates(t, f, nil)
	ctx := context.Background()
	for _, c := range []struct {
		name string
		r    custody.Request
		q    aggregate.Query
		code string
	}{
		{"the analyst filters by a user", engineer, aggregate.Query{Collection: "watch_events", Measure: aggregate.Count, Where: []aggregate.Filter{in("user", "u00")}}, custos.CodeForbidden},
		{"the analyst groups by user", engineer, aggregate.Query{Collection: "watch_events", Measure: aggregate.Count, GroupBy: []string{"user"}}, custos.CodeForbidden},
		{"the analyst groups by exact time", engineer, aggregate.Query{Collection: "watch_events", Measure: aggregate.Count, GroupBy: []string{"at"}}, custos.CodeForbidden},
		{"the analyst groups by email", engineer, aggregate.Query{Collection: "watch_events", Measure: aggregate.Count, GroupBy: []string{"users.email"}}, custos.CodeForbidden},
		{"vetted staff filter by a user", staff, aggregate.Query{Collection: "watch_events", Measure: aggregate.Count, Where: []aggregate.Filter{in("user", "u00")}}, custos.CodeQuerySetTooSmall},
		{"the analyst narrows to the one GU subject", engineer, aggregate.Query{Collection: "watch_events", Measure: aggregate.Count, GroupBy: []string{"video"}, Where: []aggregate.Filter{in("users.country", "GU")}}, custos.CodeQuerySetTooSmall},
		{"the analyst leaves out the one GU subject", engineer, aggregate.Query{Collection: "watch_events", Measure: aggregate.Count, Where: []aggregate.Filter{in("users.country", "US", "AS", "PR")}}, custos.CodeQuerySetTooSmall},
		{"the monitor counts watch events", monitor, aggregate.Query{Collection: "watch_events", Measure: aggregate.Count}, custos.CodeForbidden},
	} {
		res, err := s.Aggregate(ctx, c.r, c.q)
		if custos.ErrorCode(err) != c.code || res.Groups != nil {
			t.Errorf("%s: %+v, %v; want %s", c.name, res, err, c.code)
			continue
		}
		if strings.Contains(err.Error(), "u00") {
			t.Errorf("%s: the error names the subject: %v", c.name, err)
		}
	}
	// Each refusal is on the log.
	denied := 0
	for _, e := range f.env.Entries(t) {
		if e.Action == "aggregate" && e.Decision == "deny" {
			denied++
		}
	}
	if denied != 8 {
		t.Errorf("%d refusals on the log, want 8", denied)
	}
}

// TestAggregateDifferencing is the attack of two overlapping queries whose
// difference is one subject: US and AS, then US, AS and GU. The second is
// refused; one that differs by more than k subjects (all) is answered. The history of
// answered queries outlives the process.
func TestAggregateDifferencing(t *testing.T) {
	f := newFixture(t)
	addPlatform(t, f)
	s := aggregates(t, f, nil)
	ctx := context.Background()
	q := func(countries ...string) aggregate.Query {
		return aggregate.Query{Collection: "watch_events", Measure: aggregate.Count, GroupBy: []string{"video"}, Where: []aggregate.Filter{in("users.country", countries...)}}
	}
	if _, err := s.Aggregate(ctx, engineer, q("US", "AS")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Aggregate(ctx, engineer, q("US", "AS", "GU")); custos.ErrorCode(err) != custos.CodeQueryOverlap {
		t.Errorf("query differing by one subject: %v, want %s", err, custos.CodeQueryOverlap)
	}
	// Another principal of the same org gets no further.
	colleague := engineer
	colleague.Principal.ID = "mei"
	if _, err := s.Aggregate(ctx, colleague, q("US", "AS", "GU")); custos.ErrorCode(err) != custos.CodeQueryOverlap {
		t.Errorf("the same query by a colleague: %v, want %s", err, custos.CodeQueryOverlap)
	}
	if _, err := s.Aggregate(ctx, engineer, q("US", "AS", "PR", "GU")); err != nil {
		t.Errorf("query differing by 6 subjects: %v", err)
	}
	// The same query again is the same answer: no difference to exploit.
	if _, err := s.Aggregate(ctx, engineer, q("US", "AS")); err != nil {
		t.Errorf("the same query again: %v", err)
	}
	restarted := aggregates(t, f, nil)
	if _, err := restarted.Aggregate(ctx, engineer, q("US", "AS", "GU")); custos.ErrorCode(err) != custos.CodeQueryOverlap {
		t.Errorf("after a restart: %v, want %s", err, custos.CodeQueryOverlap)
	}
}

// TestAggregateNoiseBudget spends a budget of 1 in queries of 0.4: the
// third is refused, and stays refused after a restart.
func TestAggregateNoiseBudget(t *testing.T) {
	f := newFixture(t)
	addPlatform(t, f)
	rnd := rand.NewChaCha8([32]byte{7})
	s := aggregates(t, f, func(c *custody.AggregatesConfig) { c.Budget = 1; c.Rand = rnd })
	ctx := context.Background()
	q := aggregate.Query{Collection: "watch_events", Measure: aggregate.Count, GroupBy: []string{"video"}, Noise: &aggregate.Noise{Epsilon: 0.4, MaxPerSubject: 2}}
	exact := map[string]float64{"v1": 40, "v2": 24}
	differs := false
	for i, left := range []float64{0.6, 0.2} {
		res, err := s.Aggregate(ctx, engineer, q)
		if err != nil {
			t.Fatalf("query %d: %v", i, err)
		}
		if res.Noise == nil || res.Noise.Scale != 2/0.4 || res.Noise.BudgetLeft < left-1e-9 || res.Noise.BudgetLeft > left+1e-9 {
			t.Errorf("query %d: noise %+v, want scale 5 and %g left", i, res.Noise, left)
		}
		for k, v := range groups(res) {
			differs = differs || v != exact[k]
		}
	}
	if !differs {
		t.Error("noisy figures all equal the exact ones")
	}
	if _, err := s.Aggregate(ctx, engineer, q); custos.ErrorCode(err) != custos.CodeBudgetExhausted {
		t.Errorf("third query: %v, want %s", err, custos.CodeBudgetExhausted)
	}
	restarted := aggregates(t, f, func(c *custody.AggregatesConfig) { c.Budget = 1 })
	if _, err := restarted.Aggregate(ctx, engineer, q); custos.ErrorCode(err) != custos.CodeBudgetExhausted {
		t.Errorf("after a restart: %v, want %s", err, custos.CodeBudgetExhausted)
	}
	// The budget is the principal's: a colleague has their own.
	colleague := engineer
	colleague.Principal.ID = "mei"
	if _, err := restarted.Aggregate(ctx, colleague, q); err != nil {
		t.Errorf("a colleague's first noisy query: %v", err)
	}
	// Exact queries spend nothing, unless the org must ask for noise.
	q.Noise = nil
	if _, err := restarted.Aggregate(ctx, engineer, q); err != nil {
		t.Errorf("an exact query: %v", err)
	}
	strict := aggregates(t, f, func(c *custody.AggregatesConfig) { c.RequireNoise = []string{"operator"} })
	if _, err := strict.Aggregate(ctx, engineer, q); custos.ErrorCode(err) != custos.CodeForbidden {
		t.Errorf("an exact query where noise is required: %v, want %s", err, custos.CodeForbidden)
	}
}

func TestAggregateFailsClosed(t *testing.T) {
	f := newFixture(t)
	addPlatform(t, f)
	s := aggregates(t, f, nil)
	f.auditor.failing.Store(true)
	res, err := s.Aggregate(context.Background(), engineer, aggregate.Query{Collection: "watch_events", Measure: aggregate.Count, GroupBy: []string{"video"}})
	if custos.ErrorCode(err) != custos.CodeAuditUnavailable || res.Groups != nil {
		t.Errorf("aggregate without audit: %+v, %v", res, err)
	}
}

func TestAggregateDefaultK(t *testing.T) {
	f := newFixture(t)
	addPlatform(t, f)
	_, err := f.svc.Aggregate(context.Background(), engineer, aggregate.Query{Collection: "watch_events", Measure: aggregate.Count})
	if custos.ErrorCode(err) != custos.CodeQuerySetTooSmall || !strings.Contains(err.Error(), "50") {
		t.Errorf("40 subjects under the default k: %v, want %s naming 50", err, custos.CodeQuerySetTooSmall)
	}
}

// BenchmarkAggregate measures aggregate queries of the analyst abroad over
// a million watch events of 10,000 users in SQLite (CUSTOS_BENCH_EVENTS
// changes the number): daily counts per video and country (every record
// opened, the country joined from users), and counts per video (clear
// fields only).
func BenchmarkAggregate(b *testing.B) {
	if testing.Short() {
		b.Skip("fills a store of a million records")
	}
	events := 1_000_000
	if v := os.Getenv("CUSTOS_BENCH_EVENTS"); v != "" {
		var err error
		if events, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	const users = 10_000
	f := newFixture(b)
	ctx := context.Background()
	start := time.Now()
	cs := []string{"US", "US", "US", "US", "US", "US", "US", "PR", "GU", "AS"}
	for i := range users {
		id := fmt.Sprintf("u%05d", i)
		if _, err := f.svc.Register(ctx, svc, custos.Subject{ID: id, Residency: "US"}); err != nil {
			b.Fatal(err)
		}
		if err := f.svc.PutForBench(ctx, "users", id, raw(map[string]string{"id": `"` + id + `"`, "handle": `"h` + id + `"`, "country": `"` + cs[i%len(cs)] + `"`})); err != nil {
			b.Fatal(err)
		}
	}
	day := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	inParallel(b, events, func(i int) error {
		r := rand.New(rand.NewPCG(1, uint64(i)))
		at := day.Add(time.Duration(r.Int64N(int64(14 * 24 * time.Hour)))).Format(time.RFC3339)
		fields := raw(map[string]string{
			"user": fmt.Sprintf(`"u%05d"`, r.IntN(users)), "video": fmt.Sprintf(`"v%03d"`, rand.NewZipf(r, 1.2, 1, 999).Uint64()),
			"watched_ms": strconv.Itoa(r.IntN(60000)), "at": `"` + at + `"`,
		})
		return f.svc.PutForBench(ctx, "watch_events", fmt.Sprintf("w%07d", i), fields)
	})
	b.Logf("filled %d users and %d watch events in %v", users, events, time.Since(start).Round(time.Second))
	s := aggregates(b, f, func(c *custody.AggregatesConfig) { c.MinSubjects = nil })
	for _, bc := range []struct {
		name string
		q    aggregate.Query
	}{
		{"daily-by-video-country", aggregate.Query{Collection: "watch_events", Measure: aggregate.Count, GroupBy: []string{"video", "users.country", "day(at)"}}},
		{"by-video", aggregate.Query{Collection: "watch_events", Measure: aggregate.Count, GroupBy: []string{"video"}}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var res custody.AggregateResult
			for b.Loop() {
				var err error
				if res, err = s.Aggregate(ctx, engineer, bc.q); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(events)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
			b.Logf("%d groups released, %d suppressed", len(res.Groups), res.Suppressed)
		})
	}
}

// TestAggregateLedgerBounded keeps the last 2 queries: the newest replaces
// the oldest in the store, and a query differing by one subject from a
// forgotten one is answered.
func TestAggregateLedgerBounded(t *testing.T) {
	f := newFixture(t)
	addPlatform(t, f)
	s := aggregates(t, f, func(c *custody.AggregatesConfig) { c.History = 2 })
	ctx := context.Background()
	q := func(countries ...string) aggregate.Query {
		return aggregate.Query{Collection: "watch_events", Measure: aggregate.Count, Where: []aggregate.Filter{in("users.country", countries...)}}
	}
	for _, cs := range [][]string{{"US", "AS"}, {"US", "AS", "PR", "GU"}, {"US"}} {
		if _, err := s.Aggregate(ctx, engineer, q(cs...)); err != nil {
			t.Fatalf("%v: %v", cs, err)
		}
	}
	// US, AS and GU differ from the forgotten US and AS by one subject,
	// and from the two remembered queries by 5 and 11.
	if _, err := s.Aggregate(ctx, engineer, q("US", "AS", "GU")); err != nil {
		t.Errorf("a query differing by one subject from a forgotten one: %v", err)
	}
	recs, err := f.store.SubjectRecords(ctx, "aggregate/queries", "aggregate/operator", "", 100)
	if err != nil || len(recs) != 2 {
		t.Errorf("the ledger holds %d queries, %v; want 2", len(recs), err)
	}
	// The remembered ones outlive a restart: US and AS differs from US,
	// AS and GU by one subject.
	restarted := aggregates(t, f, func(c *custody.AggregatesConfig) { c.History = 2 })
	if _, err := restarted.Aggregate(ctx, engineer, q("US", "AS")); custos.ErrorCode(err) != custos.CodeQueryOverlap {
		t.Errorf("after a restart: %v, want %s", err, custos.CodeQueryOverlap)
	}
}
