// Package bench measures operations under load: a number of workers call
// an operation over and over for a duration, each call's latency is kept,
// and a Measure states the throughput and the latency percentiles of the
// calls. Results render as a table for people or as JSON for programs.
//
// It measures what it is given and trusts the operation to report the
// work it did (Op's units) and to fail when that work was not done right;
// it makes no I/O of its own but to the writers it is given.
package bench

import (
	"context"
	"errors"
	"math"
	"slices"
	"sync"
	"time"
)

// Op does one operation for worker w (0 ≤ w < concurrency) and returns
// how many units of work it did: 1 for a request, the records of a page,
// the entries of a verification. An error stops the run. Op is called
// concurrently, never twice at once for the same w.
type Op func(ctx context.Context, w int) (units int, err error)

// Config says how to load an operation.
type Config struct {
	// Concurrency is how many workers call the operation at once; at least 1.
	Concurrency int
	// Duration is how long workers start new calls for. Calls under way
	// at its end are waited for and counted.
	Duration time.Duration
	// Warmup is how long the operation is loaded before the measured
	// part, its calls not counted; 0 for none.
	Warmup time.Duration
}

// Measure is what a run measured.
type Measure struct {
	Ops     int           // calls completed
	Units   int           // units of work they reported
	Elapsed time.Duration // from the first call's start to the last one's end
	// Latencies are the calls' durations, sorted.
	Latencies []time.Duration
}

// Rate returns the units done per second.
func (m Measure) Rate() float64 {
	if m.Elapsed <= 0 {
		return 0
	}
	return float64(m.Units) / m.Elapsed.Seconds()
}

// Percentile returns the p-th percentile of the calls' latencies.
func (m Measure) Percentile(p float64) time.Duration { return Percentile(m.Latencies, p) }

// Percentile returns the p-th percentile (0 < p ≤ 100) of sorted by the
// nearest-rank method: the smallest value at least p percent of the values
// are at most. It is 0 for no values.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// Ratio returns a/b, or NaN when b is not positive: no baseline to compare
// with.
func Ratio(a, b float64) float64 {
	if b <= 0 {
		return math.NaN()
	}
	return a / b
}

// Run loads op as cfg says and returns what it measured, or the first
// error of a call, or ctx's error if ctx ends first.
func Run(ctx context.Context, cfg Config, op Op) (Measure, error) {
	if cfg.Concurrency < 1 {
		return Measure{}, errors.New("bench: concurrency must be at least 1")
	}
	if cfg.Warmup > 0 {
		if _, err := run(ctx, cfg.Concurrency, cfg.Warmup, op); err != nil {
			return Measure{}, err
		}
	}
	return run(ctx, cfg.Concurrency, cfg.Duration, op)
}

// run loads op with n workers for d. Every worker makes at least one call.
func run(ctx context.Context, n int, d time.Duration, op Op) (Measure, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	lat := make([][]time.Duration, n)
	units := make([]int, n)
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for w := range n {
		wg.Go(func() {
			for first := true; first || time.Now().Before(deadline); first = false {
				if ctx.Err() != nil {
					return
				}
				t := time.Now()
				u, err := op(ctx, w)
				if err != nil {
					cancel(err)
					return
				}
				lat[w] = append(lat[w], time.Since(t))
				units[w] += u
			}
		})
	}
	wg.Wait()
	m := Measure{Elapsed: time.Since(start)}
	if err := context.Cause(ctx); err != nil {
		return m, err
	}
	for w := range n {
		m.Units += units[w]
		m.Latencies = append(m.Latencies, lat[w]...)
	}
	m.Ops = len(m.Latencies)
	slices.Sort(m.Latencies)
	return m, nil
}
