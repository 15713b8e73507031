package covisit

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"
)

// modelVersion is the first byte of every model.
const modelVersion = 2

// A model is what Train learns.
type model struct {
	ids  []string      // the catalogue, strictly ascending
	near [][]neighbour // near[i] is ids[i]'s neighbours, by ascending item
	// popular lists every item by descending number of watchers, then by
	// ascending index.
	popular []uint32
}

// A neighbour is a similar item and its similarity, times maxWeight.
type neighbour struct {
	item   uint32 // index into the model's ids, never the item's own
	weight uint16 // at least 1
}

// headerBytes is the length of a model's fixed fields.
const headerBytes = 1 + 3*4

// encode returns m's encoding: fixed-width little-endian integers, so that
// Recommend reads a model where it lies instead of decoding it.
//
//	version     byte, modelVersion
//	items       u32, n
//	edges       u32, the number of neighbours of all items
//	idBytes     u32, the length of all ids
//	idEnd       n × u32: where each id ends in ids; id i starts where id i-1 ends, the first at 0
//	nearEnd     n × u32: where each item's neighbours end in nearItem and nearWeight, likewise
//	popular     n × u32: the items by descending number of watchers, then ascending index
//	nearItem    edges × u32: each item's neighbours, by strictly ascending index
//	nearWeight  edges × u16: their weights, 1..maxWeight
//	ids         idBytes bytes: the ids, UTF-8, strictly ascending (bytewise)
//
// An index is the position of an item in idEnd.
func (m *model) encode() []byte {
	var edges, idBytes int
	for i, id := range m.ids {
		edges += len(m.near[i])
		idBytes += len(id)
	}
	n := len(m.ids)
	b := make([]byte, 0, headerBytes+12*n+6*edges+idBytes)
	b = append(b, modelVersion)
	b = binary.LittleEndian.AppendUint32(b, uint32(n))
	b = binary.LittleEndian.AppendUint32(b, uint32(edges))
	b = binary.LittleEndian.AppendUint32(b, uint32(idBytes))
	end := 0
	for _, id := range m.ids {
		end += len(id)
		b = binary.LittleEndian.AppendUint32(b, uint32(end))
	}
	end = 0
	for _, near := range m.near {
		end += len(near)
		b = binary.LittleEndian.AppendUint32(b, uint32(end))
	}
	for _, p := range m.popular {
		b = binary.LittleEndian.AppendUint32(b, p)
	}
	for _, near := range m.near {
		for _, nb := range near {
			b = binary.LittleEndian.AppendUint32(b, nb.item)
		}
	}
	for _, near := range m.near {
		for _, nb := range near {
			b = binary.LittleEndian.AppendUint16(b, nb.weight)
		}
	}
	for _, id := range m.ids {
		b = append(b, id...)
	}
	return b
}

var errMalformed = errors.New("malformed model")

func malformed(why string) error { return fmt.Errorf("%w: %s", errMalformed, why) }

// A view reads a model's encoding in place. Opening one checks only that
// the tables fit the length; each read checks what it reads, so that any
// bytes give values or errMalformed, never a panic or a read out of range.
type view struct {
	n, edges                  uint32
	idEnd, nearEnd, popular   []byte // n × u32 each
	nearItem, nearWeight, ids []byte
}

// openModel returns the view of a model's encoding, in constant time.
func openModel(b []byte) (*view, error) {
	if len(b) < headerBytes || b[0] != modelVersion {
		return nil, fmt.Errorf("%w: not a version %d covisit model", errMalformed, modelVersion)
	}
	n := binary.LittleEndian.Uint32(b[1:])
	edges := binary.LittleEndian.Uint32(b[5:])
	idBytes := binary.LittleEndian.Uint32(b[9:])
	if uint64(len(b)) != headerBytes+12*uint64(n)+6*uint64(edges)+uint64(idBytes) {
		return nil, malformed("length does not match the tables")
	}
	v := &view{n: n, edges: edges}
	rest := b[headerBytes:]
	take := func(size uint64) []byte {
		out := rest[:size:size]
		rest = rest[size:]
		return out
	}
	v.idEnd, v.nearEnd, v.popular = take(4*uint64(n)), take(4*uint64(n)), take(4*uint64(n))
	v.nearItem, v.nearWeight, v.ids = take(4*uint64(edges)), take(2*uint64(edges)), take(uint64(idBytes))
	return v, nil
}

func u32(b []byte, i uint32) uint32 { return binary.LittleEndian.Uint32(b[4*uint64(i):]) }

// span returns where entry i of a table of ends starts and ends, checked
// against the length of what it indexes.
func span(ends []byte, i, total uint32) (uint32, uint32, error) {
	var start uint32
	if i > 0 {
		start = u32(ends, i-1)
	}
	end := u32(ends, i)
	if start > end || end > total {
		return 0, 0, malformed("table of ends out of order")
	}
	return start, end, nil
}

// id returns the id of item i < v.n.
func (v *view) id(i uint32) ([]byte, error) {
	start, end, err := span(v.idEnd, i, uint32(len(v.ids)))
	if err != nil {
		return nil, err
	}
	return v.ids[start:end], nil
}

// find returns the index of id, if the catalogue has it.
func (v *view) find(id string) (uint32, bool, error) {
	lo, hi := uint32(0), v.n
	for lo < hi {
		mid := lo + (hi-lo)/2
		b, err := v.id(mid)
		if err != nil {
			return 0, false, err
		}
		switch {
		case string(b) == id:
			return mid, true, nil
		case string(b) < id:
			lo = mid + 1
		default:
			hi = mid
		}
	}
	return 0, false, nil
}

// neighbours calls f with each neighbour of item i < v.n, checked.
func (v *view) neighbours(i uint32, f func(neighbour)) error {
	start, end, err := span(v.nearEnd, i, v.edges)
	if err != nil {
		return err
	}
	if end-start > MaxNeighbours {
		return malformed("too many neighbours")
	}
	for j := start; j < end; j++ {
		nb := neighbour{item: u32(v.nearItem, j), weight: binary.LittleEndian.Uint16(v.nearWeight[2*uint64(j):])}
		if nb.item >= v.n || nb.item == i || nb.weight == 0 {
			return malformed("bad neighbour")
		}
		f(nb)
	}
	return nil
}

// popularAt returns the item at rank j < v.n of popularity.
func (v *view) popularAt(j uint32) (uint32, error) {
	p := u32(v.popular, j)
	if p >= v.n {
		return 0, malformed("popular item out of range")
	}
	return p, nil
}

// decodeModel decodes the encoding of a model, checking every rule of
// encode, so that it accepts nothing but what encode returns. Recommend
// does not call it: it reads the model in place.
func decodeModel(b []byte) (*model, error) {
	v, err := openModel(b)
	if err != nil {
		return nil, err
	}
	m := &model{ids: make([]string, v.n), near: make([][]neighbour, v.n), popular: make([]uint32, v.n)}
	ranked := make([]bool, v.n)
	for i := range v.n {
		if m.ids[i], err = v.checkedID(i, m.ids); err != nil {
			return nil, err
		}
		if m.near[i], err = v.checkedNear(i); err != nil {
			return nil, err
		}
		p, err := v.popularAt(i)
		if err != nil || ranked[p] {
			return nil, malformed("popular is not a permutation")
		}
		m.popular[i], ranked[p] = p, true
	}
	if u32End(v.idEnd, v.n) != uint32(len(v.ids)) || u32End(v.nearEnd, v.n) != v.edges {
		return nil, malformed("tables end before their data")
	}
	return m, nil
}

// u32End is the last of n ends, 0 if n is 0.
func u32End(ends []byte, n uint32) uint32 {
	if n == 0 {
		return 0
	}
	return u32(ends, n-1)
}

// checkedID returns id i, which must be UTF-8 and follow the ids before it.
func (v *view) checkedID(i uint32, ids []string) (string, error) {
	b, err := v.id(i)
	switch {
	case err != nil:
		return "", err
	case !utf8.Valid(b):
		return "", malformed("id not UTF-8")
	case i > 0 && string(b) <= ids[i-1]:
		return "", malformed("ids not strictly ascending")
	}
	return string(b), nil
}

// checkedNear returns the neighbours of item i, which must ascend.
func (v *view) checkedNear(i uint32) ([]neighbour, error) {
	var near []neighbour
	if err := v.neighbours(i, func(nb neighbour) { near = append(near, nb) }); err != nil {
		return nil, err
	}
	for j := 1; j < len(near); j++ {
		if near[j].item <= near[j-1].item {
			return nil, malformed("neighbours not strictly ascending")
		}
	}
	return near, nil
}
