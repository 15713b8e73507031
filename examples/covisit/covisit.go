// Package covisit is a sample recommender for custos: item-to-item
// co-visitation learnt from the users' watch histories.
//
// Training reads the collection "watch_events" (fields "user", the
// watcher's token, and "video", a clear video id) and the catalogue
// "videos" (field "id"). Two videos are similar when the same users watched
// both: the similarity of a and b is the cosine co(a,b) / sqrt(n(a)·n(b)),
// where n(a) counts the users who watched a and co(a,b) those who watched
// both. The model keeps, for each video, its MaxNeighbours most similar
// videos, so that it grows with the catalogue and not with its square.
//
// Recommend scores each video the subject has not watched by its summed
// similarity to the videos the subject watched, best first, and fills what
// k leaves with the videos most users watched, so that a subject without
// history gets the popular ones. Ties go to the smaller id, bytewise.
//
// The package guarantees that:
//
//   - Training is deterministic: the model is a function of the set of
//     (user, video) pairs and of the catalogue, not of record order, seed
//     or platform, and equal inputs give byte-identical models.
//     Similarities are stored as integers, so scoring does no floating
//     point arithmetic.
//   - Recommend returns at most k distinct catalogue ids, none of which the
//     subject has watched.
//   - Decoding a model does work and allocation bounded by its length,
//     never panics, and accepts only the encoding Train produces: each
//     model has exactly one encoding.
//
// Only catalogue videos are learnt from and recommended: a watch of a video
// missing from the catalogue (say, one taken down) is ignored. A user with
// more than MaxUserVideos distinct videos counts towards their popularity
// but not towards similarities, since pair counting is quadratic in a
// user's history and a history that long is more likely a crawler's than a
// taste.
package covisit

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"maps"
	"math"
	"slices"

	"github.com/custos/custos/algo/guest"
)

// MaxNeighbours is how many similar videos the model keeps per video.
const MaxNeighbours = 50

// MaxUserVideos is the most distinct videos a user may have watched and
// still count towards similarities.
const MaxUserVideos = 1000

// The collections and fields covisit's manifest declares.
const (
	watchEvents = "watch_events" // fields user (protected: token), video (public)
	videos      = "videos"       // field id (public)
)

// maxWeight is the weight of similarity 1: similarities are stored as
// round(similarity × maxWeight), so that scores are sums of integers.
const maxWeight = math.MaxUint16

// Algorithm is the covisit recommender. Its zero value is ready to use.
type Algorithm struct{}

var _ guest.Algorithm = Algorithm{}

// Train learns a model from in's watch events and catalogue.
func (Algorithm) Train(in guest.TrainInput) ([]byte, error) {
	ids, err := catalogue(in.Collections[videos])
	if err != nil {
		return nil, err
	}
	histories, err := watched(in.Collections[watchEvents], ids)
	if err != nil {
		return nil, err
	}
	return learn(ids, histories).encode(), nil
}

// Recommend returns at most in.K videos for the subject whose history is
// in.History, best first.
func (Algorithm) Recommend(b []byte, in guest.RecommendInput) ([]string, error) {
	if in.K < 1 || in.K > guest.MaxK {
		return nil, fmt.Errorf("k is %d, not in 1..%d", in.K, guest.MaxK)
	}
	m, err := decodeModel(b)
	if err != nil {
		return nil, err
	}
	var seen []string
	for i, r := range in.History[watchEvents] {
		video, ok, err := field(r, "video")
		if err != nil {
			return nil, fmt.Errorf("history record %d: %w", i, err)
		}
		if ok {
			seen = append(seen, video)
		}
	}
	return m.recommend(seen, in.K), nil
}

// catalogue returns the distinct ids of the videos records, sorted.
func catalogue(records []guest.Record) ([]string, error) {
	ids := make([]string, 0, len(records))
	for i, r := range records {
		id, ok, err := field(r, "id")
		if err != nil {
			return nil, fmt.Errorf("%s record %d: %w", videos, i, err)
		}
		if ok {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	if len(ids) > math.MaxUint32 {
		return nil, errors.New("catalogue too large")
	}
	return ids, nil
}

// watched returns each user's distinct catalogue videos, as sorted indices
// into ids, in no particular order of users.
func watched(records []guest.Record, ids []string) ([][]uint32, error) {
	index := make(map[string]uint32, len(ids))
	for i, id := range ids {
		index[id] = uint32(i)
	}
	byUser := make(map[string][]uint32)
	for i, r := range records {
		user, okUser, err := field(r, "user")
		if err != nil {
			return nil, fmt.Errorf("%s record %d: %w", watchEvents, i, err)
		}
		video, okVideo, err := field(r, "video")
		if err != nil {
			return nil, fmt.Errorf("%s record %d: %w", watchEvents, i, err)
		}
		if v, ok := index[video]; ok && okUser && okVideo {
			byUser[user] = append(byUser[user], v)
		}
	}
	histories := make([][]uint32, 0, len(byUser))
	for _, h := range byUser {
		slices.Sort(h)
		histories = append(histories, slices.Compact(h))
	}
	return histories, nil
}

// field returns r's field name as a string, and whether r has it. Ids may
// come as JSON strings or numbers; a number keeps its literal digits.
func field(r guest.Record, name string) (string, bool, error) {
	switch v := r[name].(type) {
	case nil:
		return "", false, nil
	case string:
		return v, true, nil
	case json.Number:
		return string(v), true, nil
	default:
		// The type, not the value: errors reach the custodian's log.
		return "", false, fmt.Errorf("%s is a %T, not a string or number", name, v)
	}
}

// learn builds the model of the catalogue ids from the users' histories.
func learn(ids []string, histories [][]uint32) *model {
	m := &model{
		ids:   ids,
		count: make([]uint64, len(ids)),
		near:  make([][]neighbour, len(ids)),
	}
	// watchers[a] lists the users, as indices into histories, who count
	// towards a's similarities; n(a) is its length.
	watchers := make([][]uint32, len(ids))
	for u, h := range histories {
		for _, v := range h {
			m.count[v]++
			if len(h) <= MaxUserVideos {
				watchers[v] = append(watchers[v], uint32(u))
			}
		}
	}
	// co[b] counts co(a, b) for the current a; touched lists the b with
	// co[b] > 0, so that resetting costs what counting did.
	co := make([]uint32, len(ids))
	var touched []uint32
	var scratch []neighbour
	for a := range ids {
		for _, u := range watchers[a] {
			for _, b := range histories[u] {
				if co[b] == 0 {
					touched = append(touched, b)
				}
				co[b]++
			}
		}
		scratch = scratch[:0]
		for _, b := range touched {
			if b == uint32(a) {
				continue
			}
			sim := float64(co[b]) / math.Sqrt(float64(len(watchers[a]))*float64(len(watchers[b])))
			if w := math.Round(sim * maxWeight); w >= 1 {
				scratch = append(scratch, neighbour{item: b, weight: uint16(w)})
			}
			co[b] = 0
		}
		co[a] = 0
		touched = touched[:0]
		m.near[a] = nearest(scratch)
	}
	return m
}

// nearest returns the MaxNeighbours heaviest of cands, the smaller item
// first on ties, sorted by item.
func nearest(cands []neighbour) []neighbour {
	near := best(slices.Values(cands), MaxNeighbours, func(x, y neighbour) int {
		return cmp.Or(cmp.Compare(y.weight, x.weight), cmp.Compare(x.item, y.item))
	})
	if len(near) == 0 {
		return nil
	}
	slices.SortFunc(near, func(x, y neighbour) int { return cmp.Compare(x.item, y.item) })
	return near
}

// recommend returns at most k catalogue ids, none in watched, best first.
func (m *model) recommend(watched []string, k int) []string {
	seen := make(map[uint32]bool, len(watched))
	for _, id := range watched {
		if i, ok := slices.BinarySearch(m.ids, id); ok {
			seen[uint32(i)] = true
		}
	}
	// Scores are sums of integers, so the order of the sum is irrelevant.
	score := make(map[uint32]uint64)
	for a := range seen {
		for _, n := range m.near[a] {
			if !seen[n.item] {
				score[n.item] += uint64(n.weight)
			}
		}
	}
	// Indices follow the sorted ids, so the smaller index is the smaller id.
	top := best(maps.Keys(score), k, func(x, y uint32) int {
		return cmp.Or(cmp.Compare(score[y], score[x]), cmp.Compare(x, y))
	})
	if len(top) < k {
		// Every scored item is in top already.
		unscored := func(yield func(uint32) bool) {
			for i := range uint32(len(m.ids)) {
				if !seen[i] && score[i] == 0 && !yield(i) {
					return
				}
			}
		}
		top = append(top, best(unscored, k-len(top), func(x, y uint32) int {
			return cmp.Or(cmp.Compare(m.count[y], m.count[x]), cmp.Compare(x, y))
		})...)
	}
	items := make([]string, len(top))
	for i, b := range top {
		items[i] = m.ids[b]
	}
	return items
}

// best returns the k first values of seq by order, a total order, in that
// order. It keeps them in a heap with the last of them on top, so that seq,
// which may be much longer than k, costs O(len(seq)·log k), not a sort.
func best[T any](seq iter.Seq[T], k int, order func(x, y T) int) []T {
	if k <= 0 {
		return nil
	}
	h := make([]T, 0, k)
	for v := range seq {
		switch {
		case len(h) < k:
			h = append(h, v)
			for i := len(h) - 1; i > 0 && order(h[(i-1)/2], h[i]) < 0; i = (i - 1) / 2 {
				h[i], h[(i-1)/2] = h[(i-1)/2], h[i]
			}
		case order(v, h[0]) < 0:
			h[0] = v
			down(h, order)
		}
	}
	slices.SortFunc(h, order)
	return h
}

// down restores the heap h, whose top may be out of place.
func down[T any](h []T, order func(x, y T) int) {
	for i := 0; ; {
		last, l := i, 2*i+1
		if l < len(h) && order(h[last], h[l]) < 0 {
			last = l
		}
		if r := l + 1; r < len(h) && order(h[last], h[r]) < 0 {
			last = r
		}
		if last == i {
			return
		}
		h[i], h[last] = h[last], h[i]
		i = last
	}
}
