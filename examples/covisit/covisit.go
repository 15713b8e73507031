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
// history gets the popular ones. Ties go to the smaller id, bytewise. It
// reads the model where it lies, without decoding it: its work grows with
// the subject's history and k, not with the catalogue.
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
//   - Each model has exactly one encoding. Recommend checks a model's
//     layout in constant time and each part it reads before it uses it:
//     whatever the bytes, it returns an error or at most k distinct ids
//     taken from them, never panics, and does work bounded by the model's
//     length. It does not check the parts it does not read.
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
	m, err := openModel(b)
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
	return m.recommend(seen, in.K)
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
		ids:  ids,
		near: make([][]neighbour, len(ids)),
	}
	// count[a] counts a's users; watchers[a] lists the users, as indices
	// into histories, who count towards a's similarities, n(a) of them.
	count := make([]uint64, len(ids))
	watchers := make([][]uint32, len(ids))
	for u, h := range histories {
		for _, v := range h {
			count[v]++
			if len(h) <= MaxUserVideos {
				watchers[v] = append(watchers[v], uint32(u))
			}
		}
	}
	// co[b] counts co(a, b) for the current a; touched lists the b with
	// co[b] > 0, so that resetting costs what counting did.
	co := make([]uint32, len(ids))
	var touched []uint32
	var scratch []uint64
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
				scratch = append(scratch, rank(neighbour{item: b, weight: uint16(w)}))
			}
			co[b] = 0
		}
		co[a] = 0
		touched = touched[:0]
		m.near[a] = nearest(scratch)
	}
	m.popular = make([]uint32, len(ids))
	for i := range m.popular {
		m.popular[i] = uint32(i)
	}
	slices.SortFunc(m.popular, func(x, y uint32) int {
		return cmp.Or(cmp.Compare(count[y], count[x]), cmp.Compare(x, y))
	})
	return m
}

// rank packs a neighbour into a key that orders the heavier first, the
// smaller item first on ties.
func rank(n neighbour) uint64 { return uint64(maxWeight-n.weight)<<32 | uint64(n.item) }

// nearest returns the MaxNeighbours heaviest of the ranked candidates, the
// smaller item first on ties, sorted by item. It keeps the best in a heap
// with the last of them on top, so that most candidates cost a comparison.
func nearest(ranked []uint64) []neighbour {
	h := make([]uint64, 0, min(len(ranked), MaxNeighbours))
	for _, r := range ranked {
		switch {
		case len(h) < MaxNeighbours:
			h = append(h, r)
			for i := len(h) - 1; i > 0 && h[(i-1)/2] < h[i]; i = (i - 1) / 2 {
				h[i], h[(i-1)/2] = h[(i-1)/2], h[i]
			}
		case r < h[0]:
			h[0] = r
			for i := 0; ; {
				last, l := i, 2*i+1
				if l < len(h) && h[last] < h[l] {
					last = l
				}
				if l+1 < len(h) && h[last] < h[l+1] {
					last = l + 1
				}
				if last == i {
					break
				}
				h[i], h[last] = h[last], h[i]
				i = last
			}
		}
	}
	if len(h) == 0 {
		return nil
	}
	near := make([]neighbour, len(h))
	for i, r := range h {
		near[i] = neighbour{item: uint32(r), weight: uint16(maxWeight - r>>32)}
	}
	slices.SortFunc(near, func(x, y neighbour) int { return cmp.Compare(x.item, y.item) })
	return near
}

// A scored item is an item and its summed similarity to what was watched.
type scored struct {
	item  uint32
	score uint64
}

// recommend returns at most k catalogue ids, none in watched, best first.
func (v *view) recommend(watched []string, k int) ([]string, error) {
	seen, err := v.indices(watched)
	if err != nil {
		return nil, err
	}
	// The neighbours of the watched items, their weights summed by item:
	// scores are sums of integers, so the order of the sum is irrelevant.
	scores := newTally(len(seen.items) * MaxNeighbours)
	for _, a := range seen.items {
		err := v.neighbours(a, func(nb neighbour) {
			if !seen.has(nb.item) {
				scores.add(nb.item, uint64(nb.weight))
			}
		})
		if err != nil {
			return nil, err
		}
	}
	// Indices follow the sorted ids, so the smaller index is the smaller id.
	top := best(scores.all(), k, func(x, y scored) int {
		return cmp.Or(cmp.Compare(y.score, x.score), cmp.Compare(x.item, y.item))
	})
	out := &picked{v: v, watched: slices.Sorted(slices.Values(watched)), items: make([]string, 0, k)}
	for _, t := range top {
		if err := out.add(t.item); err != nil {
			return nil, err
		}
	}
	err = v.fill(out, k, func(i uint32) bool { return scores.has(i) || seen.has(i) })
	return out.items, err
}

// A tally sums scores by item, in a hash table of open addressing: its
// cost follows the items it holds, not the catalogue.
type tally struct {
	items []uint32 // in the order added
	slots []uint32 // 1 + an index into items, or 0 for a free slot
	sums  []uint64 // by index into items
}

// newTally returns a tally with room for n items without growing.
func newTally(n int) *tally {
	size := 16
	for size < 2*n {
		size *= 2
	}
	return &tally{slots: make([]uint32, size)}
}

// slot returns the slot of item, or the free slot where it would go.
func (t *tally) slot(item uint32) int {
	mask := len(t.slots) - 1
	i := int(item*0x9e3779b1) & mask
	for t.slots[i] != 0 && t.items[t.slots[i]-1] != item {
		i = (i + 1) & mask
	}
	return i
}

func (t *tally) has(item uint32) bool { return t.slots[t.slot(item)] != 0 }

// add adds w to item's sum.
func (t *tally) add(item uint32, w uint64) {
	i := t.slot(item)
	if t.slots[i] == 0 {
		if 2*(len(t.items)+1) > len(t.slots) {
			t.grow()
			i = t.slot(item)
		}
		t.items = append(t.items, item)
		t.sums = append(t.sums, 0)
		t.slots[i] = uint32(len(t.items))
	}
	t.sums[t.slots[i]-1] += w
}

func (t *tally) grow() {
	t.slots = make([]uint32, 2*len(t.slots))
	for j, item := range t.items {
		t.slots[t.slot(item)] = uint32(j + 1)
	}
}

// all yields the items and their sums, in the order added.
func (t *tally) all() iter.Seq[scored] {
	return func(yield func(scored) bool) {
		for j, item := range t.items {
			if !yield(scored{item, t.sums[j]}) {
				return
			}
		}
	}
}

// indices returns the indices of the catalogue ids among watched, each
// once, in the order first watched.
func (v *view) indices(watched []string) (*tally, error) {
	seen := newTally(len(watched))
	for _, id := range watched {
		i, ok, err := v.find(id)
		if err != nil {
			return nil, err
		}
		if ok {
			seen.add(i, 0)
		}
	}
	return seen, nil
}

// fill adds the most popular items that skip does not skip, until out has
// k items.
func (v *view) fill(out *picked, k int, skip func(uint32) bool) error {
	for j := uint32(0); j < v.n && len(out.items) < k; j++ {
		p, err := v.popularAt(j)
		if err == nil && !skip(p) {
			err = out.add(p)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// picked is a recommendation being made.
type picked struct {
	v       *view
	watched []string // sorted
	items   []string
}

// add adds the id of item i unless it was watched or picked already: in a
// model from Train ids are distinct and popular is a permutation, but the
// view checks only what it reads.
func (p *picked) add(i uint32) error {
	b, err := p.v.id(i)
	if err != nil {
		return err
	}
	id := string(b)
	if _, watched := slices.BinarySearch(p.watched, id); !watched && !slices.Contains(p.items, id) {
		p.items = append(p.items, id)
	}
	return nil
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
