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
	if len(m.near[3]) != 0 || m.count[3] != 0 {
		t.Errorf("d, watched by nobody, has %d watchers and neighbours %v", m.count[3], m.near[3])
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
	if m.count[0] != 1 || m.count[1] != 2 {
		t.Errorf("counts %d, %d; want 1, 2", m.count[0], m.count[1])
	}
	if len(m.near[0]) != 0 || len(m.near[1]) != 1 || m.near[1][0] != (neighbour{item: 2, weight: maxWeight}) {
		t.Errorf("neighbours of 0: %v, of 1: %v", m.near[0], m.near[1])
	}
}

// Each case breaks one rule of the encoding that encode never breaks.
func TestDecodeModelStrict(t *testing.T) {
	uv := func(vs ...uint64) []byte {
		var b []byte
		for _, v := range vs {
			b = binary.AppendUvarint(b, v)
		}
		return b
	}
	item := func(id string, count uint64, near ...uint64) []byte {
		b := append(uv(uint64(len(id))), id...)
		return append(b, uv(append([]uint64{count, uint64(len(near) / 2)}, near...)...)...)
	}
	model := func(items ...[]byte) []byte {
		return slices.Concat(append([][]byte{{modelVersion}, uv(uint64(len(items)))}, items...)...)
	}
	valid := model(item("a", 2, 1, 9), item("b", 1, 0, 9))
	if _, err := decodeModel(valid); err != nil {
		t.Fatalf("valid model: %v", err)
	}
	manyNear := []uint64{}
	for range MaxNeighbours + 1 {
		manyNear = append(manyNear, 0, 1)
	}
	for name, b := range map[string][]byte{
		"ids not ascending":   model(item("b", 1), item("a", 1)),
		"ids repeated":        model(item("a", 1), item("a", 1)),
		"id not UTF-8":        model(item("\xff", 1)),
		"own neighbour":       model(item("a", 1, 0, 9), item("b", 1)),
		"neighbour too far":   model(item("a", 1, 2, 9), item("b", 1)),
		"neighbour after end": model(item("a", 1, 1, 9, 0, 9), item("b", 1)),
		"zero weight":         model(item("a", 1, 1, 0), item("b", 1)),
		"weight too large":    model(item("a", 1, 1, maxWeight+1), item("b", 1)),
		"too many neighbours": model(append([][]byte{item("a", 1, manyNear...)}, slices.Repeat([][]byte{item("b", 1)}, 1)...)...),
		"varint not minimal":  append(model(), 0x80, 0x00)[:1+1+2],
		"count not minimal":   slices.Concat([]byte{modelVersion}, uv(1, 1), []byte("a"), []byte{0x81, 0x00}, uv(0)),
		"items beyond data":   slices.Concat([]byte{modelVersion}, uv(1000), item("a", 1)),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := decodeModel(b); !errors.Is(err, errMalformed) {
				t.Fatalf("got %v, want errMalformed", err)
			}
		})
	}
}

// FuzzDecodeModel checks that decoding never panics, that every model has
// exactly one encoding, and that a decoded model is safe to recommend from.
func FuzzDecodeModel(f *testing.F) {
	f.Add(small().encode())
	f.Add([]byte{modelVersion, 0})
	f.Add([]byte{modelVersion, 2, 1, 'a', 3, 1, 1, 7, 1, 'b', 0, 1, 0, 7})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeModel(b)
		if err != nil {
			return
		}
		if !bytes.Equal(m.encode(), b) {
			t.Fatalf("%x decodes but encodes as %x", b, m.encode())
		}
		watched := slices.Clone(m.ids[:len(m.ids)/2])
		items := m.recommend(watched, 5)
		if len(items) > 5 {
			t.Fatalf("%d items for k = 5", len(items))
		}
		for i, it := range items {
			if slices.Contains(watched, it) || slices.Contains(items[:i], it) || !slices.Contains(m.ids, it) {
				t.Fatalf("recommended %q: watched, repeated or unknown", it)
			}
		}
	})
}
