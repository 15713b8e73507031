package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"text/tabwriter"
	"time"
)

// Result is one row of a report: an operation measured at a concurrency,
// compared with its bare baseline where it has one.
type Result struct {
	Scenario    string `json:"scenario"`
	Bare        bool   `json:"bare,omitempty"` // the row is a baseline, done without custody
	Concurrency int    `json:"concurrency,omitempty"`
	// Unit is what Rate counts: "ops", or "records" or "entries" when one
	// operation does many.
	Unit    string  `json:"unit,omitempty"`
	Ops     int     `json:"ops"`
	Units   int     `json:"units"`
	Seconds float64 `json:"seconds"`
	Rate    float64 `json:"per_second"`
	P50     float64 `json:"p50_ms"` // per operation
	P99     float64 `json:"p99_ms"`
	// Load is the one-minute load average as the row began, 0 when
	// unknown: what else the machine was doing.
	Load float64 `json:"load1,omitempty"`
	// Ratio is Rate over the baseline's at the same concurrency; nil when
	// the row has no baseline.
	Ratio *float64 `json:"ratio,omitempty"`
	// Goal is the least Ratio the design asks for, when it asks for one.
	Goal *Goal `json:"goal,omitempty"`
	// Note says why a row was not measured, or what it compares.
	Note string `json:"note,omitempty"`
}

// Goal is a target for a ratio, and whether it was met.
type Goal struct {
	MinRatio float64 `json:"min_ratio"`
	Met      bool    `json:"met"`
}

// NewResult returns the row of scenario at concurrency for m, counting
// unit.
func NewResult(scenario string, concurrency int, unit string, m Measure) Result {
	return Result{
		Scenario: scenario, Concurrency: concurrency, Unit: unit,
		Ops: m.Ops, Units: m.Units, Seconds: m.Elapsed.Seconds(), Rate: m.Rate(),
		P50: ms(m.Percentile(50)), P99: ms(m.Percentile(99)),
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Compare sets r's ratio to the baseline's rate and, if minRatio is
// positive, whether r meets it.
func (r *Result) Compare(baseline Result, minRatio float64) {
	q := Ratio(r.Rate, baseline.Rate)
	if math.IsNaN(q) {
		return
	}
	r.Ratio = &q
	if minRatio > 0 {
		r.Goal = &Goal{MinRatio: minRatio, Met: q >= minRatio}
	}
}

// WriteJSON writes results as one JSON array.
func WriteJSON(w io.Writer, results []Result) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(results)
}

// WriteTable writes results as an aligned table, one row each.
func WriteTable(w io.Writer, results []Result) error {
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tCONC\tRATE\tP50\tP99\tLOAD\tVS BARE\tGOAL")
	for _, r := range results {
		if r.Ops == 0 {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\t-\t%s\n", r.Scenario, r.Note)
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Scenario, r.Concurrency,
			rate(r.Rate, r.Unit), latency(r.P50), latency(r.P99), load(r.Load), ratio(r.Ratio), goal(r.Goal))
	}
	return flushTrimmed(w, tw, &b)
}

// flushTrimmed flushes tw, which writes to b, and copies b to w without
// the padding at the ends of its lines (rows without a goal would end in
// the padding of their last cell).
func flushTrimmed(w io.Writer, tw *tabwriter.Writer, b *bytes.Buffer) error {
	if err := tw.Flush(); err != nil {
		return err
	}
	for line := range bytes.Lines(b.Bytes()) {
		if _, err := fmt.Fprintf(w, "%s\n", bytes.TrimRight(line, " \n")); err != nil {
			return err
		}
	}
	return nil
}

func rate(v float64, unit string) string {
	if unit == "" {
		unit = "ops"
	}
	return strconv.FormatFloat(v, 'f', 0, 64) + " " + unit + "/s"
}

// latency formats milliseconds with about three significant digits.
func latency(v float64) string {
	switch {
	case v < 10:
		return strconv.FormatFloat(v, 'f', 2, 64) + "ms"
	case v < 1000:
		return strconv.FormatFloat(v, 'f', 1, 64) + "ms"
	}
	return strconv.FormatFloat(v/1000, 'f', 2, 64) + "s"
}

func load(l float64) string {
	if l == 0 {
		return "?"
	}
	return strconv.FormatFloat(l, 'f', 2, 64)
}

// ratio formats a ratio with two decimals, or two significant digits when
// it is under 0.1.
func ratio(q *float64) string {
	switch {
	case q == nil:
		return "-"
	case *q < 0.1:
		return strconv.FormatFloat(*q, 'g', 2, 64)
	}
	return strconv.FormatFloat(*q, 'f', 2, 64)
}

func goal(g *Goal) string {
	if g == nil {
		return ""
	}
	met := "met"
	if !g.Met {
		met = "NOT met"
	}
	return fmt.Sprintf(">= %.2f %s", g.MinRatio, met)
}
