package sandbox

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
)

// Pre-initialization: a module's _initialize (in Go, the runtime and the
// init functions) costs as much as the entry call of a small algorithm, and
// wazero pays per data segment at every instantiation (a Go module has tens
// of thousands). So a Program runs _initialize once, in an instance that
// sees no input, and rewrites the module into one that starts where that
// instance stopped: its mutable globals' initial values are what
// _initialize left, its memory starts at the size it left, and its data
// segments are the non-zero runs of that memory. Each entry call then gets a
// fresh instance of the rewritten module and skips _initialize. Isolation is
// unchanged, since nothing of one call reaches another, and so is
// determinism: the rewritten module is a function of the module's bytes.
//
// This file is the pure part: reading and rewriting a module's binary.

// The sections a rewrite touches or must not meet.
const (
	sectionGlobal    = 6
	sectionExport    = 7
	sectionStart     = 8
	sectionCode      = 10
	sectionData      = 11
	sectionDataCount = 12
)

// Value types a global may have and a rewrite can set.
const (
	typeI32 = 0x7f
	typeI64 = 0x7e
	typeF32 = 0x7d
	typeF64 = 0x7c
)

// globalPrefix names the exports a probe adds for the module's globals.
const globalPrefix = "custos.preinit.global."

// maxSegmentGap is the longest run of zero bytes a data segment of a
// rewritten module spans rather than starting another: a segment costs
// wazero an allocation or two at every instantiation.
const maxSegmentGap = 4 << 10

var errNotPreinit = errors.New("the module cannot be pre-initialized")

type section struct {
	id   byte
	body []byte
}

// wasmGlobal is one entry of the global section.
type wasmGlobal struct {
	valType byte
	mutable bool
	init    []byte // the constant expression, with its end
}

// preinitLayout is what a rewrite needs of a module.
type preinitLayout struct {
	sections []section
	globals  []wasmGlobal
}

// scanPreinit splits a module into sections and reads its globals. It
// returns errNotPreinit for a module a rewrite cannot keep equivalent: one
// with a start function, a data count section (whose code may name data
// segments), a passive data segment, a memory it does not define, or a
// mutable global of a type other than a number.
func scanPreinit(b []byte) (*preinitLayout, error) {
	r := &wasmReader{b: b}
	if string(r.bytes(8)) != "\x00asm\x01\x00\x00\x00" {
		return nil, errMalformed
	}
	var l preinitLayout
	for r.err == nil && len(r.b) > 0 {
		s := section{id: r.byte()}
		s.body = r.bytes(int(r.u32()))
		switch s.id {
		case sectionStart, sectionDataCount:
			return nil, errNotPreinit
		case sectionGlobal:
			l.globals = globals(&wasmReader{b: s.body})
			if l.globals == nil {
				return nil, errNotPreinit
			}
		case sectionData:
			if !activeData(&wasmReader{b: s.body}) {
				return nil, errNotPreinit
			}
		}
		l.sections = append(l.sections, s)
	}
	if r.err != nil {
		return nil, r.err
	}
	return &l, nil
}

// globals reads a global section, nil if it holds what a rewrite cannot
// set: a mutable global that is not a number, or an expression it cannot
// read.
func globals(r *wasmReader) []wasmGlobal {
	n := r.u32()
	out := make([]wasmGlobal, 0, min(n, 1<<16))
	for range n {
		g := wasmGlobal{valType: r.byte(), mutable: r.byte() == 1}
		g.init = r.constExpr()
		if r.err != nil || g.init == nil || g.mutable && numBytes(g.valType) == 0 {
			return nil
		}
		out = append(out, g)
	}
	return out
}

// numBytes is the size of a number type, 0 for any other type.
func numBytes(t byte) int {
	switch t {
	case typeI32, typeF32:
		return 4
	case typeI64, typeF64:
		return 8
	}
	return 0
}

// constExpr reads a constant expression of one instruction and its end,
// nil if it is of another kind.
func (r *wasmReader) constExpr() []byte {
	start := r.b
	switch op := r.byte(); op {
	case 0x41, 0x42, 0x23, 0xd2: // i32.const, i64.const, global.get, ref.func
		r.leb()
	case 0x43: // f32.const
		r.bytes(4)
	case 0x44: // f64.const
		r.bytes(8)
	case 0xd0: // ref.null
		r.byte()
	default:
		return nil
	}
	if r.byte() != 0x0b || r.err != nil {
		return nil
	}
	return start[:len(start)-len(r.b)]
}

// leb skips a LEB128 number of at most 10 bytes.
func (r *wasmReader) leb() {
	for i := 0; r.err == nil; i++ {
		if i == 10 {
			r.fail("LEB128 too long")
			return
		}
		if r.byte()&0x80 == 0 {
			return
		}
	}
}

// activeData reports whether every segment of a data section is active,
// for memory 0.
func activeData(r *wasmReader) bool {
	n := r.u32()
	for range n {
		if r.u32() != 0 || r.constExpr() == nil {
			return false
		}
		r.bytes(int(r.u32()))
		if r.err != nil {
			return false
		}
	}
	return r.err == nil && len(r.b) == 0
}

// probe returns the module with its mutable globals exported, under
// globalPrefix and their index, so that their values can be read.
func (l *preinitLayout) probe() ([]byte, error) {
	var added [][]byte
	for i, g := range l.globals {
		if g.mutable {
			name := globalPrefix + strconv.Itoa(i)
			added = append(added, append(append(wasmString(name), kindGlobal), uleb(uint64(i))...))
		}
	}
	i := l.index(sectionExport)
	if i < 0 {
		return nil, errNotPreinit // a module of the ABI has exports
	}
	r := &wasmReader{b: l.sections[i].body}
	n := r.u32()
	if r.err != nil || bytes.Contains(r.b, []byte(globalPrefix)) {
		return nil, errNotPreinit
	}
	body := append(uleb(uint64(n)+uint64(len(added))), r.b...)
	return l.encode(map[byte][]byte{sectionExport: bytes.Join(append([][]byte{body}, added...), nil)}), nil
}

// snapshot is the state _initialize left: the values of the mutable
// globals, by index, and the memory.
type snapshot struct {
	globals map[int]uint64
	memory  []byte
}

// rewrite returns the module that starts as s: globals set, memory as
// large, data segments the non-zero runs of s.memory. memPages is the size
// of s.memory in pages.
func (l *preinitLayout) rewrite(s snapshot, memPages uint32) ([]byte, error) {
	var globals []byte
	globals = append(globals, uleb(uint64(len(l.globals)))...)
	for i, g := range l.globals {
		globals = append(globals, g.valType, boolByte(g.mutable))
		if v, ok := s.globals[i]; ok && g.mutable {
			globals = append(globals, numConst(g.valType, v)...)
		} else {
			globals = append(globals, g.init...)
		}
	}
	mem := l.index(sectionMemory)
	if mem < 0 {
		return nil, errNotPreinit
	}
	memory, err := resizeMemory(l.sections[mem].body, memPages)
	if err != nil {
		return nil, err
	}
	out := map[byte][]byte{sectionMemory: memory, sectionData: dataSegments(s.memory)}
	if l.index(sectionGlobal) >= 0 {
		out[sectionGlobal] = globals
	}
	return l.encode(out), nil
}

// resizeMemory rewrites a memory section of one memory to start at pages.
func resizeMemory(body []byte, pages uint32) ([]byte, error) {
	r := &wasmReader{b: body}
	if r.u32() != 1 {
		return nil, errNotPreinit
	}
	flag := r.byte()
	r.u32()
	out := append(uleb(1), flag)
	out = append(out, uleb(uint64(pages))...)
	switch flag {
	case 0x00:
	case 0x01:
		max := r.u32()
		if max < pages {
			return nil, errNotPreinit
		}
		out = append(out, uleb(uint64(max))...)
	default:
		return nil, errNotPreinit // shared or 64-bit memories are not in the features enabled
	}
	if r.err != nil || len(r.b) > 0 {
		return nil, errNotPreinit
	}
	return out, nil
}

// dataSegments encodes a data section whose active segments write the
// non-zero runs of memory, joined across gaps of up to maxSegmentGap.
func dataSegments(memory []byte) []byte {
	var segs [][]byte
	for i := 0; i < len(memory); {
		if memory[i] == 0 {
			i++
			continue
		}
		end, zeros := i, 0
		for j := i; j < len(memory) && zeros <= maxSegmentGap; j++ {
			if memory[j] == 0 {
				zeros++
				continue
			}
			end, zeros = j+1, 0
		}
		seg := append([]byte{0, 0x41}, sleb(int64(int32(uint32(i))))...)
		seg = append(append(seg, 0x0b), uleb(uint64(end-i))...)
		segs = append(segs, append(seg, memory[i:end]...))
		i = end
	}
	return append(uleb(uint64(len(segs))), bytes.Join(segs, nil)...)
}

// index returns the position of the section with id, -1 if none.
func (l *preinitLayout) index(id byte) int {
	for i, s := range l.sections {
		if s.id == id {
			return i
		}
	}
	return -1
}

// encode returns the module with the sections in replace instead of its
// own, in their place. A data section the module lacks goes after code.
func (l *preinitLayout) encode(replace map[byte][]byte) []byte {
	b := []byte("\x00asm\x01\x00\x00\x00")
	put := func(id byte, body []byte) {
		b = append(append(append(b, id), uleb(uint64(len(body)))...), body...)
	}
	for _, s := range l.sections {
		body, ok := replace[s.id]
		if !ok || s.id == 0 {
			body = s.body
		}
		put(s.id, body)
		if s.id == sectionCode && l.index(sectionData) < 0 && replace[sectionData] != nil {
			put(sectionData, replace[sectionData])
		}
	}
	return b
}

// numConst is the constant expression of a number of type t whose bits
// are v.
func numConst(t byte, v uint64) []byte {
	switch t {
	case typeI32:
		return append(append([]byte{0x41}, sleb(int64(int32(uint32(v))))...), 0x0b)
	case typeI64:
		return append(append([]byte{0x42}, sleb(int64(v))...), 0x0b)
	case typeF32:
		return append(binary.LittleEndian.AppendUint32([]byte{0x43}, uint32(v)), 0x0b)
	case typeF64:
		return append(binary.LittleEndian.AppendUint64([]byte{0x44}, v), 0x0b)
	}
	panic(fmt.Sprintf("sandbox: no constant of type %#x", t))
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

func wasmString(s string) []byte { return append(uleb(uint64(len(s))), s...) }

// uleb encodes n as unsigned LEB128, which is Go's unsigned varint.
func uleb(n uint64) []byte { return binary.AppendUvarint(nil, n) }

func sleb(n int64) []byte {
	var b []byte
	for {
		c := byte(n & 0x7f)
		n >>= 7
		if (n == 0 && c&0x40 == 0) || (n == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}
