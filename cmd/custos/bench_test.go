package main

import (
	"bytes"
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

// TestBench runs custos bench briefly on a few scenarios and checks its
// table: a row per scenario and concurrency, the baselines after their
// first use, ratios and the read goal. The numbers themselves are not
// checked: they are the machine's.
func TestBench(t *testing.T) {
	var out, errOut bytes.Buffer
	args := []string{"bench", "--duration", "20ms", "--users", "8", "--concurrency", "1,2", "--scenarios", "write,read-service,read-monitor,aggregate,audit-verify"}
	if code := Main(context.Background(), args, &out, &errOut); code != 0 {
		t.Fatalf("custos %s: exit %d\n%s", strings.Join(args, " "), code, errOut.String())
	}
	rate, lat, load := `[0-9]+ (ops|entries)/s`, `[0-9.]+m?s`, `([0-9.]+|\?)`
	ratio := `[0-9.e-]+`
	want := []string{
		`^SCENARIO +CONC +RATE +P50 +P99 +LOAD +VS BARE +GOAL$`,
		`^write +1 +` + rate + ` +` + lat + ` +` + lat + ` +` + load + ` +` + ratio + `$`,
		`^write \(bare\) +1 +` + rate + ` .* -$`,
		`^write +2 .* ` + ratio + `$`,
		`^write \(bare\) +2 .* -$`,
		`^read-service +1 .* ` + ratio + ` +>= 0\.50 (met|NOT met)$`,
		`^read \(bare\) +1 .* -$`,
		`^read-service +2 .* ` + ratio + ` +>= 0\.50 (met|NOT met)$`,
		`^read \(bare\) +2 .* -$`,
		// The monitor's reads compare with the same baseline, measured once.
		`^read-monitor +1 .* ` + ratio + ` +>= 0\.50 (met|NOT met)$`,
		`^read-monitor +2 .* ` + ratio + ` +>= 0\.50 (met|NOT met)$`,
		`^aggregate +1 .* ` + ratio + `$`,
		`^aggregate \(bare SQL\) +1 .* -$`,
		`^aggregate +2 .* ` + ratio + `$`,
		`^aggregate \(bare SQL\) +2 .* -$`,
		// Verification runs at concurrency 1 only, and has no baseline.
		`^audit-verify +1 +[0-9]+ entries/s .* -$`,
		`^$`,
		`^8 users; rates over 20ms per row`,
		`^Goal \(a read through custos keeps at least half the bare handler's throughput\): (met by every read|NOT met by .*)\.$`,
	}
	lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), out.String())
	}
	for i, re := range want {
		if !regexp.MustCompile(re).MatchString(lines[i]) {
			t.Errorf("line %d = %q, want a match of %s", i, lines[i], re)
		}
	}
	if !strings.Contains(errOut.String(), "measuring read-service at concurrency 2") {
		t.Errorf("stderr does not say what is measured:\n%s", errOut.String())
	}
}

func TestBenchJSON(t *testing.T) {
	var out, errOut bytes.Buffer
	args := []string{"bench", "--json", "--duration", "10ms", "--users", "4", "--concurrency", "3", "--scenarios", "^read-(engineer|custodian)$"}
	if code := Main(context.Background(), args, &out, &errOut); code != 0 {
		t.Fatalf("custos %s: exit %d\n%s", strings.Join(args, " "), code, errOut.String())
	}
	var results []struct {
		Scenario    string
		Bare        bool
		Concurrency int
		Ops         int
		Rate        float64 `json:"per_second"`
		Ratio       *float64
		Goal        *struct {
			MinRatio float64 `json:"min_ratio"`
			Met      bool
		}
	}
	if err := json.Unmarshal(out.Bytes(), &results); err != nil {
		t.Fatalf("%v:\n%s", err, out.String())
	}
	var got []string
	for _, r := range results {
		got = append(got, r.Scenario)
		if r.Concurrency != 3 || r.Ops < 3 || r.Rate <= 0 {
			t.Errorf("%s: concurrency %d, %d ops, rate %g: want 3, at least 3, positive", r.Scenario, r.Concurrency, r.Ops, r.Rate)
		}
		if r.Bare != (r.Ratio == nil) {
			t.Errorf("%s: bare %v, ratio %v: a read has a ratio, its baseline none", r.Scenario, r.Bare, r.Ratio)
		}
		if !r.Bare && (r.Goal == nil || r.Goal.MinRatio != 0.5 || r.Goal.Met != (*r.Ratio >= 0.5)) {
			t.Errorf("%s: goal %+v with ratio %v: want min_ratio 0.5, met when the ratio is at least that", r.Scenario, r.Goal, *r.Ratio)
		}
	}
	if strings.Join(got, " ") != "read-engineer read (bare) read-custodian" {
		t.Errorf("scenarios %q, want read-engineer, read (bare), read-custodian", got)
	}
}

func TestSelectScenarios(t *testing.T) {
	names := func(filter string) string {
		sel, err := selectScenarios(filter)
		if err != nil {
			return "error: " + err.Error()
		}
		var n []string
		for _, s := range sel {
			n = append(n, s.name)
		}
		return strings.Join(n, " ")
	}
	tests := []struct{ filter, want string }{
		{"", "write read-service read-engineer read-custodian read-monitor detokenize audit-append recommend export aggregate audit-verify"},
		{"read", "read-service read-engineer read-custodian read-monitor"},
		{"^audit-", "audit-append audit-verify"},
		{"export,write", "write export"},
		{"write,nope", `error: --scenarios: no scenario "nope" (scenarios: write, read-service, read-engineer, read-custodian, read-monitor, detokenize, audit-append, recommend, export, aggregate, audit-verify)`},
		{"zzz", `error: --scenarios "zzz" matches no scenario (scenarios: write, read-service, read-engineer, read-custodian, read-monitor, detokenize, audit-append, recommend, export, aggregate, audit-verify)`},
		{"(", "error: --scenarios: error parsing regexp: missing closing ): `(`"},
	}
	for _, tt := range tests {
		if got := names(tt.filter); got != tt.want {
			t.Errorf("--scenarios %q: %s, want %s", tt.filter, got, tt.want)
		}
	}
}

func TestBenchUsage(t *testing.T) {
	for _, args := range [][]string{
		{"bench", "--concurrency", "0"},
		{"bench", "--concurrency", "1,x"},
		{"bench", "--duration", "0s"},
		{"bench", "--users", "0"},
	} {
		var out, errOut bytes.Buffer
		if code := Main(context.Background(), args, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "Usage: custos bench") {
			t.Errorf("custos %s: exit %d, want 2 and the usage:\n%s", strings.Join(args, " "), code, errOut.String())
		}
	}
}

// TestBenchScale runs a scale series of two tiny sizes and checks that
// each has its row, its data set loaded and its log verified.
func TestBenchScale(t *testing.T) {
	var out, errOut bytes.Buffer
	args := []string{"bench", "--scale", "3,6", "--duration", "10ms", "--json"}
	if code := Main(context.Background(), args, &out, &errOut); code != 0 {
		t.Fatalf("custos %s: exit %d\n%s", strings.Join(args, " "), code, errOut.String())
	}
	var rs []struct {
		Users      int
		WriteRate  float64 `json:"write_per_second"`
		ReadP50    float64 `json:"read_p50_ms"`
		StoreBytes int64   `json:"store_bytes"`
		Entries    int     `json:"log_entries"`
	}
	if err := json.Unmarshal(out.Bytes(), &rs); err != nil {
		t.Fatalf("%v:\n%s", err, out.String())
	}
	if len(rs) != 2 || rs[0].Users != 3 || rs[1].Users != 6 {
		t.Fatalf("rows %+v, want 3 and 6 users", rs)
	}
	for _, r := range rs {
		// Each user's registration and write is on the log, with the
		// writes and reads measured.
		if r.WriteRate <= 0 || r.ReadP50 <= 0 || r.StoreBytes <= 0 || r.Entries < 2*r.Users {
			t.Errorf("%d users: %+v: want writes, reads, a store and at least two entries a user", r.Users, r)
		}
	}
}

// TestBenchWithoutGo checks that without the go tool the recommendation
// scenario is skipped with its reason, and the others still run.
func TestBenchWithoutGo(t *testing.T) {
	t.Setenv("PATH", "")
	var out, errOut bytes.Buffer
	args := []string{"bench", "--duration", "10ms", "--users", "4", "--concurrency", "1", "--scenarios", "recommend,read-monitor"}
	if code := Main(context.Background(), args, &out, &errOut); code != 0 {
		t.Fatalf("custos %s: exit %d\n%s", strings.Join(args, " "), code, errOut.String())
	}
	for _, re := range []string{
		`(?m)^read-monitor +1 +[0-9]+ ops/s`,
		`(?m)^recommend +- .* skipped: the go tool is not on PATH \(building the sample recommender needs the go tool`,
	} {
		if !regexp.MustCompile(re).MatchString(out.String()) {
			t.Errorf("no match of %s in\n%s", re, out.String())
		}
	}
}
