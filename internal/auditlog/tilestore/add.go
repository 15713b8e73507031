package tilestore

import (
	"context"
	"errors"

	"github.com/transparency-dev/tessera"
)

// pendingAdd is an entry handed to Add and not yet integrated.
type pendingAdd struct {
	data  []byte
	index uint64
	err   error
	done  chan struct{}
}

// add is the Tessera appender's Add: it queues e, and its future resolves
// once e is integrated, with the index it was integrated at. A Storage
// sequences entries either through Add or through Integrate, not both.
func (s *Storage) add(ctx context.Context, e *tessera.Entry) tessera.IndexFuture {
	p := &pendingAdd{data: e.Data(), done: make(chan struct{})}
	select {
	case s.adds <- p:
	case <-ctx.Done():
		return func() (tessera.Index, error) { return tessera.Index{}, ctx.Err() }
	}
	return func() (tessera.Index, error) {
		<-p.done
		return tessera.Index{Index: p.index}, p.err
	}
}

// addLoop integrates what Add queued, up to max entries at a time, as soon
// as the previous batch is integrated: batches form while one is written,
// and no timer holds an entry back.
func (s *Storage) addLoop(ctx context.Context, max int) {
	batch := make([]*pendingAdd, 0, max)
	data := make([][]byte, 0, max)
	for {
		batch, data = batch[:0], data[:0]
		select {
		case p := <-s.adds:
			batch = append(batch, p)
		case <-ctx.Done():
			return
		}
	fill:
		for len(batch) < max {
			select {
			case p := <-s.adds:
				batch = append(batch, p)
			default:
				break fill
			}
		}
		for _, p := range batch {
			data = append(data, p.data)
		}
		first := s.Size()
		_, err := s.Integrate(ctx, first, data)
		if err == nil && s.Size() != first+uint64(len(batch)) {
			err = errors.New("tile storage integrated entries from elsewhere")
		}
		for i, p := range batch {
			p.index, p.err = first+uint64(i), err
			close(p.done)
		}
	}
}
