package aggregate

import (
	"encoding/binary"
	"errors"
	"math/bits"
)

// Sketch summarizes a set of subjects (as 64-bit keyed hashes) so that the
// symmetric difference of two sets can be recovered from their sketches
// alone, as long as it is small: an invertible Bloom lookup table of three
// partitions. custos keeps the sketch of each answered query and refuses a
// new query whose subjects differ from an earlier one's by at least one
// and fewer than k: the difference of the two answers would describe those
// few subjects.
//
// A sketch of capacity c recovers any difference of up to c elements but
// for a vanishing probability; a larger difference is reported as at
// least c. Sketches hold keyed hashes only: without the key, nothing links
// them to a subject.
type Sketch struct {
	cells []sketchCell // 3 partitions of len(cells)/3
}

type sketchCell struct {
	count int64
	keys  uint64 // XOR of the hashes
	check uint64 // XOR of a second hash of each, to tell a pure cell
}

// NewSketch returns an empty sketch that recovers differences of up to
// capacity elements.
func NewSketch(capacity int) *Sketch {
	// Three-hash IBLTs peel w.h.p. up to about 0.81 elements per cell;
	// four cells per element leave a wide margin.
	part := max(4*capacity/3, 8)
	return &Sketch{cells: make([]sketchCell, 3*part)}
}

// Capacity returns the difference the sketch recovers.
func (s *Sketch) Capacity() int { return len(s.cells) / 4 }

func mix(x uint64) uint64 {
	// splitmix64's finalizer
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

func (s *Sketch) index(x uint64, i int) int {
	part := len(s.cells) / 3
	h := mix(x + uint64(i+1)*0x9e3779b97f4a7c15)
	hi, _ := bits.Mul64(h, uint64(part))
	return i*part + int(hi)
}

func check(x uint64) uint64 { return mix(x ^ 0x5851f42d4c957f2d) }

// Insert adds x to the set.
func (s *Sketch) Insert(x uint64) { s.update(x, 1) }

func (s *Sketch) update(x uint64, d int64) {
	c := check(x)
	for i := range 3 {
		cl := &s.cells[s.index(x, i)]
		cl.count += d
		cl.keys ^= x
		cl.check ^= c
	}
}

// Difference returns the size of the symmetric difference of the sets of s
// and o, if it is at most s's capacity; otherwise ok is false and the
// difference is larger than the capacity (but for a vanishing
// probability). Sketches of different sizes cannot be compared: ok is
// false and n -1.
func (s *Sketch) Difference(o *Sketch) (n int, ok bool) {
	if len(s.cells) != len(o.cells) {
		return -1, false
	}
	d := &Sketch{cells: make([]sketchCell, len(s.cells))}
	for i := range d.cells {
		a, b := s.cells[i], o.cells[i]
		d.cells[i] = sketchCell{count: a.count - b.count, keys: a.keys ^ b.keys, check: a.check ^ b.check}
	}
	// Peel pure cells (one element, of either side) until none is left.
	queue := make([]int, 0, len(d.cells))
	for i := range d.cells {
		queue = append(queue, i)
	}
	for len(queue) > 0 && n <= s.Capacity() {
		i := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		c := d.cells[i]
		if (c.count != 1 && c.count != -1) || check(c.keys) != c.check {
			continue
		}
		x, sign := c.keys, c.count
		for j := range 3 {
			k := d.index(x, j)
			d.update1(k, x, -sign)
			queue = append(queue, k)
		}
		n++
	}
	for _, c := range d.cells {
		if c != (sketchCell{}) {
			return n, false
		}
	}
	return n, true
}

func (s *Sketch) update1(i int, x uint64, d int64) {
	cl := &s.cells[i]
	cl.count += d
	cl.keys ^= x
	cl.check ^= check(x)
}

// MarshalBinary encodes the sketch.
func (s *Sketch) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, 24*len(s.cells))
	for _, c := range s.cells {
		b = binary.LittleEndian.AppendUint64(b, uint64(c.count))
		b = binary.LittleEndian.AppendUint64(b, c.keys)
		b = binary.LittleEndian.AppendUint64(b, c.check)
	}
	return b, nil
}

// MaxSketchCells caps a decoded sketch.
const MaxSketchCells = 3 << 16

// UnmarshalBinary decodes a sketch MarshalBinary encoded.
func (s *Sketch) UnmarshalBinary(b []byte) error {
	if len(b)%72 != 0 || len(b) == 0 || len(b)/24 > MaxSketchCells {
		return errors.New("not a sketch")
	}
	s.cells = make([]sketchCell, len(b)/24)
	for i := range s.cells {
		s.cells[i] = sketchCell{
			count: int64(binary.LittleEndian.Uint64(b[24*i:])),
			keys:  binary.LittleEndian.Uint64(b[24*i+8:]),
			check: binary.LittleEndian.Uint64(b[24*i+16:]),
		}
	}
	return nil
}
