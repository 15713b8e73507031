package synth

import (
	"context"
	"fmt"
	"iter"
	"sync"
	"sync/atomic"
	"time"
)

// A Record is a write of one record: what POST /v1/records/{collection}
// takes, {"id": ID, "fields": Fields}.
type Record struct {
	Collection, ID string
	Fields         map[string]any
}

// Record returns u as a record of users.
func (u User) Record() Record {
	return Record{"users", u.ID, map[string]any{
		"id": u.ID, "handle": u.Handle, "email": u.Email, "phone": u.Phone,
		"birthdate": u.Birthdate, "ip": u.IP, "country": u.Country,
	}}
}

// Record returns v as a record of videos.
func (v Video) Record() Record {
	return Record{"videos", v.ID, map[string]any{
		"id": v.ID, "creator": v.Creator, "title": v.Title, "duration_ms": v.DurationMS,
	}}
}

// Record returns e as a record of watch_events.
func (e Event) Record() Record {
	return Record{"watch_events", e.ID, map[string]any{
		"user": e.User, "video": e.Video, "watched_ms": e.WatchedMS,
		"at": e.At.Format("2006-01-02T15:04:05.000Z07:00"),
	}}
}

// A Writer writes a platform's subjects and records: custos' API as the
// operator's service, say. Its methods are called concurrently. Load
// returns their errors, which must hold no personal data.
type Writer interface {
	// Register registers subject id as residing in jurisdiction. A
	// subject registered already is not an error.
	Register(ctx context.Context, id, jurisdiction string) error
	// Put writes r, replacing a record of its collection with its id.
	Put(ctx context.Context, r Record) error
}

// ProgressInterval is how often Load reports its progress.
const ProgressInterval = 200 * time.Millisecond

// Load writes p through w, concurrency writes at a time (at least one):
// first each user, registered as a subject residing in the platform's
// jurisdiction and then written, then the videos, which name users, then
// the events, which name users and videos. It stops at the first error and
// returns it, naming the collection but no id or value.
//
// progress, if not nil, is called from one goroutine, every
// ProgressInterval and once before Load returns, with the number of records
// written and the platform's Size; a user's registration and record count
// as one.
func Load(ctx context.Context, w Writer, p *Platform, concurrency int, progress func(done, total int)) error {
	var done atomic.Int64
	if progress != nil {
		stop := report(progress, &done, p.Size())
		defer stop()
	}
	put := func(ctx context.Context, r Record) error {
		if err := w.Put(ctx, r); err != nil {
			return fmt.Errorf("couldn't write a %s record: %w", r.Collection, err)
		}
		done.Add(1)
		return nil
	}
	register := func(ctx context.Context, r Record) error {
		if err := w.Register(ctx, r.ID, p.cfg.Jurisdiction); err != nil {
			return fmt.Errorf("couldn't register a user as a subject: %w", err)
		}
		return put(ctx, r)
	}
	if err := pool(ctx, concurrency, records(p.Users()), register); err != nil {
		return err
	}
	if err := pool(ctx, concurrency, records(p.Videos()), put); err != nil {
		return err
	}
	return pool(ctx, concurrency, records(p.Events()), put)
}

func records[T interface{ Record() Record }](s iter.Seq[T]) iter.Seq[Record] {
	return func(yield func(Record) bool) {
		for v := range s {
			if !yield(v.Record()) {
				return
			}
		}
	}
}

// pool calls write for each record of s, n at a time, and returns the first
// error, after which it starts no more writes.
func pool(ctx context.Context, n int, s iter.Seq[Record], write func(context.Context, Record) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	recs := make(chan Record)
	var wg sync.WaitGroup
	for range max(1, n) {
		wg.Go(func() {
			for r := range recs {
				if ctx.Err() != nil {
					return
				}
				if err := write(ctx, r); err != nil {
					cancel(err)
					return
				}
			}
		})
	}
	for r := range s {
		select {
		case recs <- r:
			continue
		case <-ctx.Done():
		}
		break
	}
	close(recs)
	wg.Wait()
	return context.Cause(ctx)
}

// report calls progress every ProgressInterval until stop, and once more
// then.
func report(progress func(done, total int), done *atomic.Int64, total int) (stop func()) {
	quit, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(ProgressInterval)
		defer t.Stop()
		for {
			progress(int(done.Load()), total)
			select {
			case <-t.C:
			case <-quit:
				progress(int(done.Load()), total)
				return
			}
		}
	}()
	return func() { close(quit); <-stopped }
}
