package custody_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custos/custos"
	"github.com/custos/custos/internal/custody"
	"github.com/custos/custos/internal/flow"
	"github.com/custos/custos/internal/schema"
	"github.com/custos/custos/internal/starter"
)

const testFlows = `version: 1
flows:
  - name: users-abroad
    recipient: operator
    jurisdiction: SG
    collection: users
    fields: {id: token, handle: clear, email: token, country: aggregate}
    rate: %g
    sample_rate: %g
`

// withFlows returns f's service with the flows of testFlows at rate and
// sampleRate, and the sample store it keeps.
func (f *fixture) withFlows(t testing.TB, rate, sampleRate float64) (*custody.Service, *flow.FileSamples) {
	t.Helper()
	set, err := flow.Parse("flows.yaml", fmt.Appendf(nil, testFlows, rate, sampleRate))
	if err != nil {
		t.Fatal(err)
	}
	if err := set.Check(f.svc.Schema()); err != nil {
		t.Fatal(err)
	}
	keys, err := flow.NewKeys(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	samples, err := flow.NewFileSamples(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	svc := f.env.With(t, func(c *custody.Config) {
		c.Flows = custody.FlowsConfig{Set: set, Keys: keys, Samples: samples}
	})
	return svc, samples
}

var recipient = custody.Request{Principal: custos.Principal{ID: "feed-sg", Issuer: "dev", Org: "operator", Loc: "SG", Roles: []string{"service"}}}

// abroad is the flow's recipient org outside the flow's jurisdiction.
var abroad = custody.Request{Principal: custos.Principal{ID: "feed-de", Issuer: "dev", Org: "operator", Loc: "DE", Roles: []string{"service"}}}

func addUsers(t testing.TB, f *fixture, n int) {
	t.Helper()
	for i := range n {
		id := fmt.Sprintf("u%03d", i)
		f.addUser(t, id, map[string]string{"id": `"` + id + `"`, "handle": `"h` + id + `"`, "email": `"` + id + `@example.com"`, "country": `"US"`})
	}
}

func TestExportShape(t *testing.T) {
	f := newFixture(t)
	addUsers(t, f, 3)
	s, _ := f.withFlows(t, 1000, 1)
	p, err := s.Export(context.Background(), recipient, "users-abroad", "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Records) != 3 || !p.End || p.AuditIndex == 0 || p.Sampled != 3 {
		t.Fatalf("page: %d records, end %v, index %d, sampled %d", len(p.Records), p.End, p.AuditIndex, p.Sampled)
	}
	for _, r := range p.Records {
		if len(r.Fields) != 3 || r.Fields["country"] != nil || !strings.HasPrefix(r.ID, "tk_") {
			t.Errorf("record %s: fields %v", r.ID, r.Fields)
		}
		if !bytes.HasPrefix(r.Fields["email"], []byte(`"tk_`)) || !bytes.HasPrefix(r.Fields["handle"], []byte(`"hu0`)) {
			t.Errorf("record %s: email %s, handle %s", r.ID, r.Fields["email"], r.Fields["handle"])
		}
	}
	entries := f.env.Entries(t)
	last := entries[len(entries)-1]
	if last.Action != "flow-export" || last.Count != 3 || !strings.HasPrefix(last.Detail, "flow users-abroad first ") ||
		last.Forms["email"] != "token" || last.Forms["handle"] != "clear" {
		t.Errorf("audit entry %+v", last)
	}
}

func TestExportRefusals(t *testing.T) {
	f := newFixture(t)
	addUsers(t, f, 1)
	s, _ := f.withFlows(t, 1000, 0)
	ctx := context.Background()
	for _, tc := range []struct {
		name       string
		req        custody.Request
		flow, curs string
		code       string
	}{
		{"undeclared flow", recipient, "everything", "", custos.CodeNotFound},
		{"other org", monitor, "users-abroad", "", custos.CodeForbidden},
		{"recipient elsewhere", abroad, "users-abroad", "", custos.CodeForbidden},
		{"forged cursor", recipient, "users-abroad", "dTE", custos.CodeInvalidRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := s.Export(ctx, tc.req, tc.flow, tc.curs, 0)
			if custos.ErrorCode(err) != tc.code || p.Records != nil {
				t.Errorf("export: %d records, %v; want %s", len(p.Records), err, tc.code)
			}
		})
	}
	// A service that declares no flow releases nothing.
	if _, err := f.svc.Export(ctx, recipient, "users-abroad", "", 0); custos.ErrorCode(err) != custos.CodeNotFound {
		t.Errorf("export without flows: %v", err)
	}
	denials := 0
	for _, e := range f.env.Entries(t) {
		if e.Action == "flow-export" && e.Decision == "deny" {
			denials++
		}
	}
	if denials < 4 {
		t.Errorf("%d refusals of exports on the log, want at least 4", denials)
	}
}

func TestExportResumes(t *testing.T) {
	f := newFixture(t)
	addUsers(t, f, 5)
	s, _ := f.withFlows(t, 1000, 0)
	ctx := context.Background()
	var ids []string
	cursor := ""
	for range 3 {
		p, err := s.Export(ctx, recipient, "users-abroad", cursor, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range p.Records {
			ids = append(ids, r.ID)
		}
		cursor = p.Cursor
	}
	if len(ids) != 5 {
		t.Fatalf("three pages of 2 gave %d records", len(ids))
	}
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			t.Fatalf("record %s exported twice", id)
		}
		seen[id] = true
	}
}

func TestExportRateLimited(t *testing.T) {
	f := newFixture(t)
	addUsers(t, f, 5)
	s, _ := f.withFlows(t, 2, 0)
	ctx := context.Background()
	p, err := s.Export(ctx, recipient, "users-abroad", "", 10)
	if err != nil || len(p.Records) != 2 || p.End {
		t.Fatalf("first page: %d records, end %v, %v; want the burst of 2", len(p.Records), p.End, err)
	}
	_, err = s.Export(ctx, recipient, "users-abroad", p.Cursor, 10)
	var rl *custody.RateLimitedError
	if !errors.As(err, &rl) || custos.ErrorCode(err) != custos.CodeRateLimited || rl.RetryAfter <= 0 || rl.RetryAfter > time.Second {
		t.Fatalf("second page: %v, want rate_limited with a wait under a second", err)
	}
}

func TestExportFailsClosed(t *testing.T) {
	f := newFixture(t)
	addUsers(t, f, 2)
	s, samples := f.withFlows(t, 1000, 1)
	f.auditor.failing.Store(true)
	ctx := context.Background()
	p, err := s.Export(ctx, recipient, "users-abroad", "", 0)
	if custos.ErrorCode(err) != custos.CodeAuditUnavailable || p.Records != nil {
		t.Fatalf("export without audit: %d records, %v", len(p.Records), err)
	}
	if got, _ := samples.List(ctx, "users-abroad", 0, 10); len(got) != 0 {
		t.Errorf("%d samples kept of a page never sent", len(got))
	}
}

func TestSamplesForTheMonitor(t *testing.T) {
	f := newFixture(t)
	addUsers(t, f, 4)
	s, _ := f.withFlows(t, 1000, 1)
	ctx := context.Background()
	p, err := s.Export(ctx, recipient, "users-abroad", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	got, idx, err := s.FlowSamples(ctx, monitor, "users-abroad", 0, 100)
	if err != nil || len(got) != 4 || idx <= p.AuditIndex {
		t.Fatalf("samples: %d at audit index %d, %v", len(got), idx, err)
	}
	want, _ := json.Marshal(p.Records[0])
	if got[0].AuditIndex != p.AuditIndex || !bytes.Equal(got[0].Record, want) {
		t.Errorf("sample %s at %d, want what left, %s at %d", got[0].Record, got[0].AuditIndex, want, p.AuditIndex)
	}
	for _, x := range got {
		if bytes.Contains(x.Record, []byte("@example.com")) || bytes.Contains(x.Record, []byte(`"u00`)) {
			t.Errorf("a sample holds personal data in clear: %s", x.Record)
		}
	}
	if _, _, err := s.FlowSamples(ctx, custody.Request{Principal: custos.Principal{ID: "x", Org: "partner", Loc: "US"}}, "users-abroad", 0, 10); custos.ErrorCode(err) != custos.CodeForbidden {
		t.Errorf("samples for an org the flow does not name: %v", err)
	}
	flows, err := s.Flows(ctx, monitor)
	if err != nil || len(flows) != 1 || flows[0].Name != "users-abroad" {
		t.Errorf("Flows = %v, %v", flows, err)
	}
}

// BenchmarkExport measures an export of 100,000 records from SQLite through
// the durable audit log, in pages of 1000: decide, walk, open, tokenize,
// record, sample. It reports records/s.
func BenchmarkExport(b *testing.B) {
	if testing.Short() {
		b.Skip("fills a store of 100,000 records")
	}
	const n = 100_000
	f := newFixture(b)
	fillUsers(b, f, n)
	s, _ := f.withFlows(b, flow.MaxRate, 0.01)
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		cursor, total := "", 0
		for {
			p, err := s.Export(ctx, recipient, "users-abroad", cursor, custody.MaxExportPage)
			if err != nil {
				b.Fatal(err)
			}
			total += len(p.Records)
			if p.End {
				break
			}
			cursor = p.Cursor
		}
		if total != n {
			b.Fatalf("exported %d records, want %d", total, n)
		}
	}
	b.ReportMetric(float64(n*b.N)/time.Since(start).Seconds(), "records/s")
}

// fillUsers registers and writes n users with writers in parallel.
func fillUsers(b testing.TB, f *fixture, n int) {
	ctx := context.Background()
	inParallel(b, n, func(i int) error {
		id := fmt.Sprintf("u%06d", i)
		if _, err := f.svc.Register(ctx, svc, custos.Subject{ID: id, Residency: "US"}); err != nil {
			return err
		}
		fields := raw(map[string]string{"id": `"` + id + `"`, "handle": `"h` + id + `"`, "email": `"` + id + `@example.com"`, "country": `"US"`})
		_, _, err := f.svc.Write(ctx, svc, "users", id, fields)
		return err
	})
}

// inParallel calls fn for 0 to n-1 with 8 goroutines, so that a store
// which shares commits can, and fails b at the first error.
func inParallel(b testing.TB, n int, fn func(i int) error) {
	b.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				if err := fn(i); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
}

// TestExportRefusedWhenSchemaChanged checks that a flow declaring a field
// clear releases nothing once a signed schema makes that field protected.
func TestExportRefusedWhenSchemaChanged(t *testing.T) {
	f := newFixture(t)
	addUsers(t, f, 1)
	s, _ := f.withFlows(t, 1000, 0)
	changed := strings.Replace(string(starter.Schema()), "handle:    {type: string, class: public", "handle:    {type: string, class: protected", 1)
	sc, err := schema.Parse("schema.yaml", []byte(changed))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CheckFlows(sc); err == nil || !strings.Contains(err.Error(), "protected") {
		t.Errorf("CheckFlows of the changed schema: %v", err)
	}
	s.SetSchema(sc)
	p, err := s.Export(context.Background(), recipient, "users-abroad", "", 0)
	if custos.ErrorCode(err) != custos.CodeConflict || p.Records != nil {
		t.Fatalf("export under the changed schema: %d records, %v", len(p.Records), err)
	}
}

// TestConcurrentExports runs exports of one flow at once (run it with
// -race): each gets every record once, and every sample is kept.
func TestConcurrentExports(t *testing.T) {
	f := newFixture(t)
	addUsers(t, f, 6)
	s, samples := f.withFlows(t, flow.MaxRate, 1)
	ctx := context.Background()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			cursor, n := "", 0
			for {
				p, err := s.Export(ctx, recipient, "users-abroad", cursor, 2)
				if err != nil {
					t.Error(err)
					return
				}
				n += len(p.Records)
				if p.End {
					break
				}
				cursor = p.Cursor
			}
			if n != 6 {
				t.Errorf("an export got %d records, want 6", n)
			}
		})
	}
	wg.Wait()
	if got, _ := samples.List(ctx, "users-abroad", 0, 0); len(got) != 24 {
		t.Errorf("%d samples kept, want 24", len(got))
	}
}
