package flow

import (
	"math"
	"sync"
	"time"
)

// Limiter is a token bucket per flow: a flow of rate r releases at most r
// records per second, in bursts of at most one second's worth (at least
// one record). It is safe for concurrent use. It holds the rate within one
// process: several processes serving one deployment each allow the rate.
type Limiter struct {
	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// NewLimiter returns an empty Limiter: every flow starts with a full
// bucket.
func NewLimiter() *Limiter { return &Limiter{buckets: map[string]*bucket{}} }

func burst(rate float64) float64 { return math.Max(rate, 1) }

// Take takes up to want records from flow's bucket at now and returns how
// many it took. When it takes none it returns how long until one record
// is allowed.
func (l *Limiter) Take(flow string, rate float64, want int, now time.Time) (int, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[flow]
	if !ok {
		b = &bucket{tokens: burst(rate), last: now}
		l.buckets[flow] = b
	}
	if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = math.Min(burst(rate), b.tokens+dt*rate)
		b.last = now
	}
	n := min(want, int(b.tokens))
	if n < 1 {
		wait := time.Duration((1 - b.tokens) / rate * float64(time.Second))
		return 0, max(wait, time.Millisecond)
	}
	b.tokens -= float64(n)
	return n, 0
}

// Return gives back n records taken but not released, such as the part
// of a page beyond the collection's end.
func (l *Limiter) Return(flow string, rate float64, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b, ok := l.buckets[flow]; ok && n > 0 {
		b.tokens = math.Min(burst(rate), b.tokens+float64(n))
	}
}
