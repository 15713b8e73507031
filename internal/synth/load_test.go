package synth

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
)

// memWriter keeps what is written, checking that a record's subject and
// the records it names were written before it.
type memWriter struct {
	mu       sync.Mutex
	subjects map[string]string
	records  map[string]Record
	order    []string // collections, in the order of their writes
	failAt   int      // the write that fails, counted from 1; 0: none
	errs     []string
}

func newMemWriter() *memWriter {
	return &memWriter{subjects: map[string]string{}, records: map[string]Record{}}
}

func (m *memWriter) Register(_ context.Context, id, jurisdiction string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.subjects[id] = jurisdiction
	return nil
}

// Put fails the failAt-th write, and those after it once ctx is done.
func (m *memWriter) Put(ctx context.Context, r Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.order = append(m.order, r.Collection)
	switch n := len(m.order); {
	case m.failAt > 0 && n == m.failAt:
		return errors.New("the server refused (422 invalid_field): watch_events.at: want an RFC 3339 timestamp")
	case m.failAt > 0 && n > m.failAt:
		m.mu.Unlock()
		<-ctx.Done()
		m.mu.Lock()
		return ctx.Err()
	}
	need := map[string][]string{
		"users":        {"subject " + r.ID},
		"videos":       {"subject " + str(r.Fields["creator"]), "users/" + str(r.Fields["creator"])},
		"watch_events": {"users/" + str(r.Fields["user"]), "videos/" + str(r.Fields["video"])},
	}[r.Collection]
	for _, n := range need {
		if id, ok := strings.CutPrefix(n, "subject "); ok && m.subjects[id] == "" || !ok && m.records[n].ID == "" {
			m.errs = append(m.errs, r.Collection+"/"+r.ID+" written before "+n)
		}
	}
	m.records[r.Collection+"/"+r.ID] = r
	return nil
}

func str(v any) string { s, _ := v.(string); return s }

func TestLoad(t *testing.T) {
	p := newPlatform(t, Config{Seed: 5, Users: 200, Videos: 30, Events: 2000})
	w := newMemWriter()
	var calls, last, total int
	err := Load(context.Background(), w, p, 8, func(done, tot int) { calls, last, total = calls+1, done, tot })
	if err != nil {
		t.Fatal(err)
	}
	if len(w.errs) > 0 {
		t.Fatalf("%d writes out of order, the first: %s", len(w.errs), w.errs[0])
	}
	if len(w.subjects) != 200 || len(w.records) != p.Size() || w.subjects["u000200"] != "US" {
		t.Errorf("%d subjects and %d records, want 200 of US and %d", len(w.subjects), len(w.records), p.Size())
	}
	for r := range records(p.Events()) {
		if !equalRecords(w.records["watch_events/"+r.ID], r) {
			t.Fatalf("event %s written as %v, made as %v", r.ID, w.records["watch_events/"+r.ID], r)
		}
	}
	if calls < 2 || last != p.Size() || total != p.Size() {
		t.Errorf("progress called %d times, last with %d of %d, want at least twice and last with %d of %d", calls, last, total, p.Size(), p.Size())
	}
}

// TestLoadStops checks that the first error stops a load: it is returned,
// naming the collection, the writes under way are cancelled and no more
// start.
func TestLoadStops(t *testing.T) {
	p := newPlatform(t, Config{Seed: 5, Users: 100, Videos: 10, Events: 5000})
	w := newMemWriter()
	w.failAt = 500
	var last int
	err := Load(context.Background(), w, p, 4, func(done, _ int) { last = done })
	if err == nil || !strings.HasPrefix(err.Error(), "couldn't write a watch_events record: the server refused (422") {
		t.Fatalf("Load: %v", err)
	}
	if strings.Contains(err.Error(), "w0") || strings.Contains(err.Error(), "u0") {
		t.Errorf("the error names a record: %v", err)
	}
	if n := len(w.order); n > 500+3 {
		t.Errorf("%d writes after the first error, want at most the 3 under way", n-500)
	}
	if last != 499 {
		t.Errorf("progress ends at %d, want the 499 written before the error", last)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Load(ctx, newMemWriter(), p, 4, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Load with a cancelled context: %v", err)
	}
}
