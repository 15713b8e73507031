package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"
	"time"

	"github.com/custos/custos"
	"github.com/custos/custos/internal/bench"
	"github.com/custos/custos/internal/custody"
)

// Writers that load a scale series' data set, and the concurrency of its
// writes.
const (
	scaleLoaders = 8
	scaleWriters = 16
)

// benchScale measures, for each size, on a fresh deployment of that many
// users, how fast they load, write and read, what they take on disk, and
// how long the audit log takes to verify.
func (e *env) benchScale(ctx context.Context, sizes []int, dur time.Duration, asJSON bool) error {
	fmt.Fprintf(e.stderr, "custos bench --scale: users loaded through the custody service in process (%d writers, no HTTP); writes (concurrency %d) and reads (alone) through the API, %s each after %s of warm-up\n",
		scaleLoaders, scaleWriters, dur, dur/4)
	var rs []bench.ScaleResult
	for _, n := range sizes {
		r, err := e.scaleRow(ctx, n, dur)
		if err != nil {
			return fmt.Errorf("at %d users: %w", n, err)
		}
		rs = append(rs, r)
	}
	if asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rs)
	}
	if err := bench.WriteScaleTable(e.stdout, rs); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "\nLOADED/S: users registered and written through the custody service in process (%d writers, no HTTP). WRITE/S: users' records replaced through the API. READ: a lone reader, the operator's service. STORE B/USER: the SQLite files over users. VERIFY: custos audit verify of the whole log from an empty state.\n", scaleLoaders)
	return nil
}

// scaleRow measures one size of a scale series.
func (e *env) scaleRow(ctx context.Context, n int, dur time.Duration) (bench.ScaleResult, error) {
	r := bench.ScaleResult{Users: n, WriteConcurrency: scaleWriters}
	r.Load, _ = strconv.ParseFloat(loadAverage(), 64)
	b, err := newBenchEnv(ctx, e, n, nil)
	if err != nil {
		return r, err
	}
	defer b.Close()
	start := time.Now()
	for from, step := 0, max(n/10, 1); from < n; from += step {
		if err := b.loadInProcess(ctx, from, min(from+step, n), scaleLoaders); err != nil {
			return r, fmt.Errorf("couldn't load the data set: %w", err)
		}
		fmt.Fprintf(e.stderr, "%d users: loaded %d in %s (load %s)\n", n, min(from+step, n), time.Since(start).Round(time.Second), loadAverage())
	}
	r.LoadRate = float64(n) / time.Since(start).Seconds()
	write, err := b.writeOp(ctx)
	if err != nil {
		return r, err
	}
	w, err := b.row(ctx, "write", "users' records replaced through the API", "", scaleWriters, dur, write)
	if err != nil {
		return r, err
	}
	r.WriteRate, r.WriteP99 = w.Rate, w.P99
	read, err := readOp("SVC", "serving")(b, ctx)
	if err != nil {
		return r, err
	}
	rd, err := b.row(ctx, "read-service", "a lone reader's latency", "", 1, dur, read)
	if err != nil {
		return r, err
	}
	r.ReadP50, r.ReadP99 = rd.P50, rd.P99
	if r.StoreBytes, err = dirSize(filepath.Join(b.dir, "data")); err != nil {
		return r, err
	}
	if r.LogBytes, err = dirSize(filepath.Join(b.dir, "log")); err != nil {
		return r, err
	}
	verify, err := b.verifyOp(ctx)
	if err != nil {
		return r, err
	}
	fmt.Fprintf(e.stderr, "%d users: verifying the audit log (load %s)\n", n, loadAverage())
	m, err := bench.Run(ctx, bench.Config{Concurrency: 1}, verify)
	if err != nil {
		return r, err
	}
	r.Entries, r.VerifySeconds = m.Units, m.Elapsed.Seconds()
	return r, nil
}

// dirSize returns the bytes of the files under dir.
func dirSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err == nil {
			n += fi.Size()
		}
		return err
	})
	return n, err
}

// loadInProcess registers users from..to-1 and writes their records
// through the custody service in this process, with writers goroutines:
// the request path without HTTP, to load large data sets sooner.
func (b *benchEnv) loadInProcess(ctx context.Context, from, to, writers int) error {
	svc := custody.Request{Principal: demoPrincipals[0].p, Purpose: "serving"}
	return parallel(ctx, from, to, writers, func(ctx context.Context, i int) error {
		if _, err := b.d.custody.Register(ctx, svc, custos.Subject{ID: benchUser(i), Residency: "US"}); err != nil {
			return err
		}
		raw := map[string]json.RawMessage{}
		for k, v := range userFields(i, 0) {
			raw[k], _ = json.Marshal(v)
		}
		_, _, err := b.d.custody.Write(ctx, svc, "users", benchUser(i), raw)
		return err
	})
}
