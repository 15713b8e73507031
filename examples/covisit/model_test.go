package covisit

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
)

// small is a model of five videos watched by four users.
func small() *model {
	ids := []string{"a", "b", "c", "d", "é"}
	return learn(ids, [][]uint32{{0, 1}, {0, 1, 2}, {1, 2, 4}, {4}})
}

func TestModelRoundTrip(t *testing.T) {
	m := small()
	b := m.encode()
	got, err := decodeModel(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Errorf("decoded %+v, want %+v", got, m)
	}
	// a and b: 2 common users of 2 and 3, so 2/sqrt(6) × 65535 ≈ 53509.1.
	if want := (neighbour{item: 1, weight: 53509}); m.near[0][0] != want {
		t.Errorf("a's first neighbour is %+v, want %+v", m.near[0][0], want)
	}
	// b has 3 users; a, c and é 2; d, watched by nobody, none.
	if want := []uint32{1, 0, 2, 4, 3}; !slices.Equal(m.popular, want) || len(m.near[3]) != 0 {
		t.Errorf("popular %v, want %v; d's neighbours %v", m.popular, want, m.near[3])
	}
}

func TestNeighboursBounded(t *testing.T) {
	// One user who watched everything makes every pair similar.
	ids := make([]string, 3*MaxNeighbours)
	all := make([]uint32, len(ids))
	for i := range ids {
		ids[i] = fmt.Sprintf("%03d", i)
		all[i] = uint32(i)
	}
	m := learn(ids, [][]uint32{all, {7, 9}})
	for i, near := range m.near {
		if len(near) != MaxNeighbours {
			t.Fatalf("item %d has %d neighbours", i, len(near))
		}
	}
	// 7 and 9 are closer to each other than to anything else.
	if got := m.near[7]; got[0].item != 0 || !slices.ContainsFunc(got, func(n neighbour) bool { return n.item == 9 && n.weight == maxWeight }) {
		t.Errorf("7's neighbours: %v", got)
	}
	if _, err := decodeModel(m.encode()); err != nil {
		t.Fatal(err)
	}
}

// A user with more than MaxUserVideos videos makes them popular, not similar.
func TestHeavyUser(t *testing.T) {
	ids := make([]string, MaxUserVideos+1)
	all := make([]uint32, len(ids))
	for i := range ids {
		ids[i] = fmt.Sprintf("%04d", i)
		all[i] = uint32(i)
	}
	m := learn(ids, [][]uint32{all, {1, 2}})
	if !slices.Equal(m.popular[:3], []uint32{1, 2, 0}) {
		t.Errorf("most popular %v, want [1 2 0]", m.popular[:3])
	}
	if len(m.near[0]) != 0 || len(m.near[1]) != 1 || m.near[1][0] != (neighbour{item: 2, weight: maxWeight}) {
		t.Errorf("neighbours of 0: %v, of 1: %v", m.near[0], m.near[1])
	}
}

// encoded encodes a model from its parts, without the checks of learn.
func encoded(ids []string, near [][]neighbour, popular []uint32) []byte {
	return (&model{ids: ids, near: near, popular: popular}).encode()
}

// Each case breaks one rule of the encoding that encode never breaks.
func TestDecodeModelStrict(t *testing.T) {
	ab := []string{"a", "b"}
	nb := func(item uint32, weight uint16) []neighbour { return []neighbour{{item, weight}} }
	valid := encoded(ab, [][]neighbour{nb(1, 9), nb(0, 9)}, []uint32{0, 1})
	if _, err := decodeModel(valid); err != nil {
		t.Fatalf("valid model: %v", err)
	}
	many := make([]neighbour, MaxNeighbours+1)
	for i := range many {
		many[i] = neighbour{uint32(i + 1), 1}
	}
	manyIDs := make([]string, MaxNeighbours+2)
	for i := range manyIDs {
		manyIDs[i] = fmt.Sprintf("%03d", i)
	}
	popular := func(n int) []uint32 {
		p := make([]uint32, n)
		for i := range p {
			p[i] = uint32(i)
		}
		return p
	}
	// Tables whose ends go backwards: the second id ends before the first.
	backwards := slices.Clone(valid)
	binary.LittleEndian.PutUint32(backwards[headerBytes:], 2)
	binary.LittleEndian.PutUint32(backwards[headerBytes+4:], 1)
	for name, b := range map[string][]byte{
		"ids not ascending":     encoded([]string{"b", "a"}, make([][]neighbour, 2), []uint32{0, 1}),
		"ids repeated":          encoded([]string{"a", "a"}, make([][]neighbour, 2), []uint32{0, 1}),
		"id not UTF-8":          encoded([]string{"\xff"}, make([][]neighbour, 1), []uint32{0}),
		"own neighbour":         encoded(ab, [][]neighbour{nb(0, 9), nil}, []uint32{0, 1}),
		"neighbour too far":     encoded(ab, [][]neighbour{nb(2, 9), nil}, []uint32{0, 1}),
		"neighbours descending": encoded([]string{"a", "b", "c"}, [][]neighbour{{{2, 1}, {1, 1}}, nil, nil}, []uint32{0, 1, 2}),
		"neighbour repeated":    encoded([]string{"a", "b"}, [][]neighbour{{{1, 1}, {1, 1}}, nil}, []uint32{0, 1}),
		"zero weight":           encoded(ab, [][]neighbour{nb(1, 0), nil}, []uint32{0, 1}),
		"too many neighbours":   encoded(manyIDs, append([][]neighbour{many}, make([][]neighbour, len(manyIDs)-1)...), popular(len(manyIDs))),
		"popular repeated":      encoded(ab, make([][]neighbour, 2), []uint32{0, 0}),
		"popular out of range":  encoded(ab, make([][]neighbour, 2), []uint32{0, 2}),
		"ends backwards":        backwards,
		"version 1":             append([]byte{1}, valid[1:]...),
		"length over":           append(slices.Clone(valid), 0),
		"length under":          valid[:len(valid)-1],
		"items beyond data":     slices.Concat(valid[:1], []byte{0xff, 0xff, 0xff, 0xff}, valid[5:]),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := decodeModel(b); !errors.Is(err, errMalformed) {
				t.Fatalf("got %v, want errMalformed", err)
			}
		})
	}
}

// FuzzDecodeModel checks that decoding never panics and that every model
// has exactly one encoding.
func FuzzDecodeModel(f *testing.F) {
	f.Add(small().encode())
	f.Add(encoded(nil, nil, nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeModel(b)
		if err != nil {
			return
		}
		if !bytes.Equal(m.encode(), b) {
			t.Fatalf("%x decodes but encodes as %x", b, m.encode())
		}
	})
}

// FuzzRecommend checks that recommending from any bytes, read in place,
// never panics and returns at most k distinct ids, none watched; from a
// model that decodes, only its ids.
func FuzzRecommend(f *testing.F) {
	f.Add(small().encode(), 5)
	f.Add(encoded([]string{"a", "b"}, [][]neighbour{{{1, 1}}, {{0, 1}}}, []uint32{1, 1}), 3)
	f.Fuzz(func(t *testing.T, b []byte, k int) {
		k = 1 + abs(k)%10
		v, err := openModel(b)
		if err != nil {
			return
		}
		var watched []string
		if v.n > 0 {
			if id, err := v.id(0); err == nil {
				watched = append(watched, string(id))
			}
		}
		items, err := v.recommend(watched, k)
		if err != nil {
			return
		}
		if len(items) > k {
			t.Fatalf("%d items for k = %d", len(items), k)
		}
		m, decodeErr := decodeModel(b)
		for i, it := range items {
			if slices.Contains(watched, it) || slices.Contains(items[:i], it) || decodeErr == nil && !slices.Contains(m.ids, it) {
				t.Fatalf("recommended %q: watched, repeated or unknown", it)
			}
		}
	})
}

func abs(k int) int {
	if k < 0 {
		return -(k + 1)
	}
	return k
}
