package covisit

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"unicode/utf8"
)

// modelVersion is the first byte of every model.
const modelVersion = 1

// A model is what Train learns.
type model struct {
	ids   []string      // the catalogue, strictly ascending
	count []uint64      // count[i] is how many users watched ids[i]
	near  [][]neighbour // near[i] is ids[i]'s neighbours, by ascending item
}

// A neighbour is a similar item and its similarity, times maxWeight.
type neighbour struct {
	item   uint32 // index into the model's ids, never the item's own
	weight uint16 // at least 1
}

// encode returns m's encoding, all unsigned varints (encoding/binary,
// minimal length) but the version and the id bytes:
//
//	version      byte, modelVersion
//	items        number of items
//	per item, by strictly ascending id (bytewise):
//	  len(id), id  UTF-8
//	  count
//	  neighbours   number of neighbours, 0..MaxNeighbours
//	  per neighbour, by strictly ascending item:
//	    item       the index for the first, else the gap to the previous index, minus 1
//	    weight     1..maxWeight
//
// An index is the position of an item in the encoding.
func (m *model) encode() []byte {
	b := []byte{modelVersion}
	b = binary.AppendUvarint(b, uint64(len(m.ids)))
	for i, id := range m.ids {
		b = binary.AppendUvarint(b, uint64(len(id)))
		b = append(b, id...)
		b = binary.AppendUvarint(b, m.count[i])
		b = binary.AppendUvarint(b, uint64(len(m.near[i])))
		prev := -1
		for _, n := range m.near[i] {
			b = binary.AppendUvarint(b, uint64(int(n.item)-prev-1))
			b = binary.AppendUvarint(b, uint64(n.weight))
			prev = int(n.item)
		}
	}
	return b
}

var errMalformed = errors.New("malformed model")

// decodeModel decodes the encoding of a model, accepting nothing but what
// encode returns.
func decodeModel(b []byte) (*model, error) {
	if len(b) == 0 || b[0] != modelVersion {
		return nil, fmt.Errorf("%w: not a version %d covisit model", errMalformed, modelVersion)
	}
	r := &reader{b: b[1:]}
	// Every item takes at least 3 bytes: sizes are checked against what is
	// left before anything is allocated.
	n := r.uvarint("items", min(uint64(len(r.b)/3), math.MaxUint32))
	if r.err != nil {
		return nil, r.err
	}
	m := &model{
		ids:   make([]string, n),
		count: make([]uint64, n),
		near:  make([][]neighbour, n),
	}
	for i := range m.ids {
		m.ids[i] = r.id(i, m.ids)
		m.count[i] = r.uvarint("count", math.MaxUint64)
		m.near[i] = r.neighbours(uint32(i), uint64(n))
		if r.err != nil {
			return nil, r.err
		}
	}
	if len(r.b) > 0 {
		return nil, fmt.Errorf("%w: data after the last item", errMalformed)
	}
	return m, nil
}

// A reader decodes a model, remembering the first error.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(why string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", errMalformed, why)
	}
}

// uvarint reads a minimal unsigned varint of at most limit.
func (r *reader) uvarint(what string, limit uint64) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	switch {
	case n <= 0:
		r.fail(what + ": bad varint")
	case n != uvarintLen(v):
		r.fail(what + ": varint not minimal")
	case v > limit:
		r.fail(what + ": too large")
	default:
		r.b = r.b[n:]
		return v
	}
	return 0
}

// id reads the id of item i, which must follow the ids before it.
func (r *reader) id(i int, ids []string) string {
	n := r.uvarint("id length", math.MaxInt)
	if r.err == nil && n > uint64(len(r.b)) {
		r.fail("id beyond the data")
	}
	if r.err != nil {
		return ""
	}
	id := string(r.b[:n])
	r.b = r.b[n:]
	switch {
	case !utf8.ValidString(id):
		r.fail("id not UTF-8")
	case i > 0 && id <= ids[i-1]:
		r.fail("ids not strictly ascending")
	}
	return id
}

// neighbours reads the neighbours of item self, among items items.
func (r *reader) neighbours(self uint32, items uint64) []neighbour {
	n := r.uvarint("neighbours", min(MaxNeighbours, uint64(len(r.b)/2)))
	if r.err != nil || n == 0 {
		return nil
	}
	near := make([]neighbour, n)
	next := uint64(0) // the smallest index the next neighbour may have
	for j := range near {
		if next >= items {
			r.fail("neighbour out of range")
			return nil
		}
		item := next + r.uvarint("neighbour", items-1-next)
		weight := r.uvarint("weight", maxWeight)
		switch {
		case r.err != nil:
			return nil
		case item == uint64(self):
			r.fail("item is its own neighbour")
			return nil
		case weight == 0:
			r.fail("zero weight")
			return nil
		}
		near[j] = neighbour{item: uint32(item), weight: uint16(weight)}
		next = item + 1
	}
	return near
}

// uvarintLen is the length of v's minimal encoding.
func uvarintLen(v uint64) int {
	return max(1, (bits.Len64(v)+6)/7)
}
