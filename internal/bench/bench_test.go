package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func ints(vs ...int) []time.Duration {
	out := make([]time.Duration, len(vs))
	for i, v := range vs {
		out[i] = time.Duration(v)
	}
	return out
}

func seq(n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = time.Duration(i + 1)
	}
	return out
}

func TestPercentile(t *testing.T) {
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one value", ints(7), 99, 7},
		{"median of 1..100", seq(100), 50, 50},
		{"p99 of 1..100", seq(100), 99, 99},
		{"p100 of 1..100", seq(100), 100, 100},
		{"p99 of 1..10 is the largest", seq(10), 99, 10},
		{"median of an even count is the lower middle", ints(1, 2, 3, 4), 50, 2},
		{"just above a rank", ints(1, 2, 3, 4), 50.1, 3},
		{"p1 of 1..1000", seq(1000), 1, 10},
		{"tiny p is the smallest", seq(1000), 0.0001, 1},
		{"repeated values", ints(5, 5, 5, 9), 75, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Percentile(tt.sorted, tt.p); got != tt.want {
				t.Errorf("Percentile(%v, %g) = %d, want %d", tt.sorted, tt.p, got, tt.want)
			}
		})
	}
}

func TestRatio(t *testing.T) {
	if got := Ratio(50, 100); got != 0.5 {
		t.Errorf("Ratio(50, 100) = %g, want 0.5", got)
	}
	if got := Ratio(300, 100); got != 3 {
		t.Errorf("Ratio(300, 100) = %g, want 3", got)
	}
	for _, b := range []float64{0, -1} {
		if got := Ratio(1, b); !math.IsNaN(got) {
			t.Errorf("Ratio(1, %g) = %g, want NaN: no baseline", b, got)
		}
	}
}

func TestCompare(t *testing.T) {
	base := Result{Rate: 1000}
	r := Result{Rate: 499}
	r.Compare(base, 0.5)
	if r.Ratio == nil || *r.Ratio != 0.499 || r.Goal == nil || r.Goal.Met {
		t.Errorf("499 against 1000 with goal 0.5: ratio %v, goal %+v; want 0.499, not met", r.Ratio, r.Goal)
	}
	r = Result{Rate: 500}
	r.Compare(base, 0.5)
	if r.Goal == nil || !r.Goal.Met {
		t.Errorf("500 against 1000 with goal 0.5: goal %+v, want met", r.Goal)
	}
	r = Result{Rate: 500}
	r.Compare(base, 0)
	if r.Ratio == nil || r.Goal != nil {
		t.Errorf("without a goal: ratio %v, goal %+v; want a ratio and no goal", r.Ratio, r.Goal)
	}
	r = Result{Rate: 500}
	r.Compare(Result{}, 0.5)
	if r.Ratio != nil || r.Goal != nil {
		t.Errorf("against a baseline that did nothing: ratio %v, goal %+v; want neither", r.Ratio, r.Goal)
	}
}

func TestRunCountsEveryCall(t *testing.T) {
	var calls atomic.Int64
	var busy [4]atomic.Int32
	op := func(_ context.Context, w int) (int, error) {
		if busy[w].Add(1) != 1 {
			t.Errorf("worker %d called twice at once", w)
		}
		defer busy[w].Add(-1)
		calls.Add(1)
		return 3, nil
	}
	m, err := Run(context.Background(), Config{Concurrency: 4, Duration: 20 * time.Millisecond, Warmup: 5 * time.Millisecond}, op)
	if err != nil {
		t.Fatal(err)
	}
	// Every worker makes at least one call, warm-up and measure alike.
	if m.Ops < 4 || m.Units != 3*m.Ops || len(m.Latencies) != m.Ops {
		t.Errorf("ops %d, units %d, %d latencies: want at least 4 ops, 3 units each, one latency each", m.Ops, m.Units, len(m.Latencies))
	}
	if int64(m.Ops) >= calls.Load() {
		t.Errorf("%d ops counted of %d calls: warm-up calls must not count", m.Ops, calls.Load())
	}
	for i := 1; i < len(m.Latencies); i++ {
		if m.Latencies[i] < m.Latencies[i-1] {
			t.Fatal("latencies are not sorted")
		}
	}
	if m.Elapsed <= 0 || m.Rate() <= 0 {
		t.Errorf("elapsed %v, rate %g: want both positive", m.Elapsed, m.Rate())
	}
}

func TestRunZeroDurationCallsOnce(t *testing.T) {
	m, err := Run(context.Background(), Config{Concurrency: 3}, func(context.Context, int) (int, error) { return 1, nil })
	if err != nil {
		t.Fatal(err)
	}
	if m.Ops != 3 {
		t.Errorf("%d ops with no duration and 3 workers, want 3: each worker calls once", m.Ops)
	}
}

func TestRunStopsAtFirstError(t *testing.T) {
	boom := errors.New("boom")
	var calls atomic.Int64
	_, err := Run(context.Background(), Config{Concurrency: 2, Duration: time.Hour}, func(ctx context.Context, _ int) (int, error) {
		if calls.Add(1) == 10 {
			return 0, boom
		}
		return 1, ctx.Err()
	})
	if !errors.Is(err, boom) {
		t.Errorf("Run = %v, want the op's error", err)
	}
}

func TestRunStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var calls atomic.Int64
	_, err := Run(ctx, Config{Concurrency: 2, Duration: time.Hour}, func(context.Context, int) (int, error) {
		if calls.Add(1) == 5 {
			cancel()
		}
		return 1, nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
}

func TestRunRefusesNoWorkers(t *testing.T) {
	if _, err := Run(context.Background(), Config{}, nil); err == nil {
		t.Error("Run with concurrency 0 succeeded")
	}
}

func TestNewResult(t *testing.T) {
	m := Measure{Ops: 4, Units: 8, Elapsed: 2 * time.Second, Latencies: ints(1e6, 2e6, 3e6, 40e6)}
	r := NewResult("export", 16, "records", m)
	if r.Rate != 4 || r.P50 != 2 || r.P99 != 40 || r.Seconds != 2 || r.Ops != 4 || r.Units != 8 {
		t.Errorf("NewResult = %+v, want 4 records/s, p50 2ms, p99 40ms over 2s", r)
	}
}

func sample() []Result {
	read := Result{Scenario: "read: service", Concurrency: 16, Ops: 100, Units: 100, Rate: 600, P50: 0.5, P99: 12.25, Load: 1.5}
	bare := Result{Scenario: "read (bare)", Bare: true, Concurrency: 16, Ops: 100, Units: 100, Rate: 1000, P50: 0.25, P99: 1234}
	read.Compare(bare, 0.5)
	slow := Result{Scenario: "read: monitor", Concurrency: 16, Ops: 10, Units: 10, Rate: 400, P50: 1, P99: 2}
	slow.Compare(bare, 0.5)
	export := Result{Scenario: "export", Concurrency: 1, Unit: "records", Ops: 3, Units: 3000, Rate: 30000, P50: 30, P99: 40}
	export.Compare(Result{Rate: 6e6}, 0)
	skipped := Result{Scenario: "recommend", Note: "skipped: the go tool is not on PATH"}
	return []Result{read, bare, slow, export, skipped}
}

func TestWriteTable(t *testing.T) {
	var b bytes.Buffer
	if err := WriteTable(&b, sample()); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	want := [][]string{
		{"SCENARIO", "CONC", "RATE", "P50", "P99", "LOAD", "VS", "BARE", "GOAL"},
		{"read:", "service", "16", "600", "ops/s", "0.50ms", "12.2ms", "1.50", "0.60", ">=", "0.50", "met"},
		{"read", "(bare)", "16", "1000", "ops/s", "0.25ms", "1.23s", "?", "-"},
		{"read:", "monitor", "16", "400", "ops/s", "1.00ms", "2.00ms", "?", "0.40", ">=", "0.50", "NOT", "met"},
		{"export", "1", "30000", "records/s", "30.0ms", "40.0ms", "?", "0.005"},
		{"recommend", "-", "-", "-", "-", "-", "-", "skipped:", "the", "go", "tool", "is", "not", "on", "PATH"},
	}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), b.String())
	}
	for i, l := range lines {
		if got := strings.Fields(l); strings.Join(got, " ") != strings.Join(want[i], " ") {
			t.Errorf("line %d = %q, want the fields %q", i, l, want[i])
		}
		if strings.TrimRight(l, " ") != l {
			t.Errorf("line %d = %q ends in spaces", i, l)
		}
	}
	// Columns are aligned: every row's rate starts where the header's does.
	col := strings.Index(lines[0], "RATE")
	if !strings.HasPrefix(lines[1][col:], "600 ops/s") || !strings.HasPrefix(lines[4][col:], "30000 records/s") {
		t.Errorf("columns are not aligned:\n%s", b.String())
	}
}

func TestWriteJSON(t *testing.T) {
	var b bytes.Buffer
	if err := WriteJSON(&b, sample()); err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatalf("%v:\n%s", err, b.String())
	}
	if len(got) != 5 {
		t.Fatalf("%d results, want 5", len(got))
	}
	read, bare, slow, skipped := got[0], got[1], got[2], got[4]
	if read["ratio"] != 0.6 || read["per_second"] != 600.0 || read["p99_ms"] != 12.25 || read["concurrency"] != 16.0 || read["load1"] != 1.5 {
		t.Errorf("read = %v", read)
	}
	if g, _ := read["goal"].(map[string]any); g["min_ratio"] != 0.5 || g["met"] != true {
		t.Errorf("read goal = %v, want min_ratio 0.5 met", read["goal"])
	}
	if g, _ := slow["goal"].(map[string]any); g["met"] != false {
		t.Errorf("monitor goal = %v, want not met", slow["goal"])
	}
	if _, ok := bare["ratio"]; ok || bare["bare"] != true {
		t.Errorf("bare = %v, want bare and no ratio", bare)
	}
	if skipped["note"] != "skipped: the go tool is not on PATH" || skipped["ops"] != 0.0 {
		t.Errorf("skipped = %v", skipped)
	}
}

func TestWriteScaleTable(t *testing.T) {
	rs := []ScaleResult{
		{Users: 1000, LoadRate: 812.4, WriteConcurrency: 16, WriteRate: 400, WriteP99: 30.25, ReadP50: 0.61, ReadP99: 4, StoreBytes: 2_500_000, LogBytes: 1_500_000, Entries: 2010, VerifySeconds: 0.5, Load: 2},
		{Users: 100000, LoadRate: 700, WriteConcurrency: 16, WriteRate: 350, WriteP99: 45, ReadP50: 0.7, ReadP99: 5.5, StoreBytes: 260_000_000, LogBytes: 150_000_000, Entries: 200010, VerifySeconds: 4},
	}
	var b bytes.Buffer
	if err := WriteScaleTable(&b, rs); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	want := [][]string{
		{"USERS", "LOADED/S", "WRITE/S", "WRITE", "P99", "READ", "P50", "READ", "P99", "STORE", "B/USER", "LOG", "MB", "LOG", "ENTRIES", "VERIFY", "VERIFIED/S", "LOAD"},
		{"1000", "812", "400", "(c=16)", "30.2ms", "0.61ms", "4.00ms", "2500", "1.5", "2010", "0.50s", "4020", "2.00"},
		{"100000", "700", "350", "(c=16)", "45.0ms", "0.70ms", "5.50ms", "2600", "150.0", "200010", "4.00s", "50002", "?"},
	}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), b.String())
	}
	for i, l := range lines {
		if got := strings.Fields(l); strings.Join(got, " ") != strings.Join(want[i], " ") {
			t.Errorf("line %d = %q, want the fields %q", i, l, want[i])
		}
		// Right-aligned: every line is as long as the header.
		if len(l) != len(lines[0]) {
			t.Errorf("line %d is %d long, the header %d: not aligned\n%s", i, len(l), len(lines[0]), b.String())
		}
	}
}
