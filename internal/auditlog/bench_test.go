package auditlog

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/custos/custos/internal/auditlog/tilestore"
	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/storage/posix"
)

// BenchmarkAppend measures durable appends per second with concurrent
// writers, each waiting for its entry to be durable as a request would.
// When the writers are done, up to maxBacklog acknowledged entries may still
// wait to be integrated: integrated/s counts until the last one is,
// the rate the log sustains, which appends/s overstates on short runs.
//
//	go test ./internal/auditlog/ -run '^$' -bench Append -benchtime 200000x
func BenchmarkAppend(b *testing.B) {
	for _, c := range []int{1, 16, 256, 1024, 4096} {
		b.Run(fmt.Sprintf("concurrency=%d", c), func(b *testing.B) {
			l := openLog(b, benchConfig(b))
			e := entry(1)
			var next atomic.Int64
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for range c {
				wg.Go(func() {
					for next.Add(1) <= int64(b.N) {
						if _, err := l.Record(ctx, e); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "appends/s")
			b.StopTimer()
			if err := l.waitIntegrated(ctx, l.Size()); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "integrated/s")
		})
	}
}

// BenchmarkLoneLatency measures one writer's durable append latency.
//
//	go test ./internal/auditlog/ -run '^$' -bench LoneLatency -benchtime 2000x
func BenchmarkLoneLatency(b *testing.B) {
	l := openLog(b, benchConfig(b))
	e := entry(1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if _, err := l.Record(ctx, e); err != nil {
			b.Fatal(err)
		}
		d = append(d, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(d)
	b.ReportMetric(float64(d[len(d)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(d[len(d)*99/100].Microseconds())/1000, "p99-ms")
}

// benchConfig is the production configuration, batching as set by
// AUDITLOG_BATCH=size,age when tuning.
func benchConfig(b *testing.B) Config {
	cfg := testConfig(b, b.TempDir())
	cfg.CheckpointInterval = 0
	if v := os.Getenv("AUDITLOG_BATCH"); v != "" {
		var age string
		if _, err := fmt.Sscanf(strings.Replace(v, ",", " ", 1), "%d %s", &cfg.BatchMaxSize, &age); err != nil {
			b.Fatal(err)
		}
		var err error
		if cfg.BatchMaxAge, err = time.ParseDuration(age); err != nil {
			b.Fatal(err)
		}
	}
	return cfg
}

// BenchmarkTesseraIntegration measures the ceiling of the tile storage
// alone, through Tessera's appender, without the collector of commit.go:
// one caller hands it batches of exactly batch entries and waits for each
// to be integrated before the next. driver=posix is Tessera's POSIX
// driver, which syncs every file as it writes it (the log's storage before
// package tilestore); driver=tilestore is the log's. Anything that makes
// entries durable ahead of the storage (a write-ahead log) and feeds them
// to it later can sustain no more than this rate.
//
//	go test ./internal/auditlog/ -run '^$' -bench TesseraIntegration -benchtime 200000x
func BenchmarkTesseraIntegration(b *testing.B) {
	drivers := []struct {
		name string
		new  func(dir string) (tessera.Driver, error)
	}{
		{"posix", func(dir string) (tessera.Driver, error) {
			return posix.New(context.Background(), posix.Config{Path: dir})
		}},
		{"tilestore", func(dir string) (tessera.Driver, error) {
			return tilestore.New(tilestore.Config{Path: dir}), nil
		}},
	}
	for _, batch := range []int{256, 4096, 16384} {
		for _, d := range drivers {
			b.Run(fmt.Sprintf("batch=%d/driver=%s", batch, d.name), func(b *testing.B) {
				driver, err := d.new(b.TempDir())
				if err != nil {
					b.Fatal(err)
				}
				benchIntegration(b, driver, batch)
			})
		}
	}
}

func benchIntegration(b *testing.B, driver tessera.Driver, batch int) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, _ := testKeys(b)
	opts := tessera.NewAppendOptions().WithCheckpointSigner(s).
		WithBatching(uint(batch), time.Hour).WithCheckpointInterval(time.Second)
	app, shutdown, _, err := tessera.NewAppender(ctx, driver, opts)
	if err != nil {
		b.Fatal(err)
	}
	defer shutdown(ctx)
	data := mustMarshal(b, entry(1))
	futures := make([]tessera.IndexFuture, batch)
	b.ResetTimer()
	start := time.Now()
	n := 0
	for ; n < b.N; n += batch {
		for i := range futures {
			futures[i] = app.Add(ctx, tessera.NewEntry(data))
		}
		for _, f := range futures {
			if _, err := f(); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "entries/s")
	b.StopTimer() // shutdown waits for a checkpoint
}
