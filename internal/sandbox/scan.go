package sandbox

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// A reader of the two sections of a module's binary that wazero's
// CompiledModule does not describe fully: the import section (wazero lists
// imported functions and memories, not tables or globals) and the memory
// section (wazero refuses a module whose initial memory is over the limit
// without saying so in a way a caller could branch on). Pure: no I/O.

// Kinds of import, as encoded in an importdesc.
const (
	kindFunc   = 0x00
	kindTable  = 0x01
	kindMemory = 0x02
	kindGlobal = 0x03
	kindTag    = 0x04
)

// wasmImport is one entry of the import section.
type wasmImport struct {
	module, name string
	kind         byte
}

// moduleLayout is what scanModule learns of a module.
type moduleLayout struct {
	imports []wasmImport
	// memMin is the initial size in pages of the first memory the module
	// defines itself, 0 if it defines none.
	memMin uint32
}

const (
	sectionImport = 2
	sectionMemory = 5
	// maxImports is far above the few dozen a real module imports.
	maxImports = 10000
)

var errMalformed = errors.New("malformed module")

// scanModule reads the header, the import section and the memory section of
// a binary module. It reads no further than the memory section and does not
// validate the rest: wazero does that.
func scanModule(b []byte) (*moduleLayout, error) {
	r := &wasmReader{b: b}
	if string(r.bytes(4)) != "\x00asm" || string(r.bytes(4)) != "\x01\x00\x00\x00" {
		return nil, fmt.Errorf("%w: not a WebAssembly 1.0 binary", errMalformed)
	}
	var l moduleLayout
	for r.err == nil && len(r.b) > 0 {
		id := r.byte()
		body := &wasmReader{b: r.bytes(int(r.u32()))}
		switch {
		case r.err != nil:
		case id == sectionImport:
			l.imports = body.imports()
		case id == sectionMemory:
			l.memMin = body.memory()
		case id > sectionMemory && id != 0 && id != 13:
			// Sections come in order (custom ones anywhere, the tag section
			// between memory and global): nothing of interest is left.
			return &l, nil
		}
		if body.err != nil {
			return nil, fmt.Errorf("%w: section %d: %v", errMalformed, id, body.err)
		}
	}
	if r.err != nil {
		return nil, fmt.Errorf("%w: %v", errMalformed, r.err)
	}
	return &l, nil
}

// wasmReader reads the binary encoding; after the first error every read
// returns zero values and err stays set.
type wasmReader struct {
	b   []byte
	err error
}

func (r *wasmReader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf(format, args...)
	}
	r.b = nil
}

func (r *wasmReader) bytes(n int) []byte {
	if r.err != nil || n < 0 || n > len(r.b) {
		r.fail("unexpected end")
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *wasmReader) byte() byte {
	if b := r.bytes(1); b != nil {
		return b[0]
	}
	return 0
}

// u32 reads an unsigned LEB128 of at most 32 bits.
func (r *wasmReader) u32() uint32 {
	var v uint32
	for i := range 5 {
		c := r.byte()
		if r.err != nil {
			return 0
		}
		if i == 4 && c > 0x0f {
			r.fail("integer over 32 bits")
			return 0
		}
		v |= uint32(c&0x7f) << (7 * i)
		if c < 0x80 {
			return v
		}
	}
	return v
}

func (r *wasmReader) name() string {
	b := r.bytes(int(r.u32()))
	if r.err == nil && !utf8.Valid(b) {
		r.fail("name is not UTF-8")
	}
	return string(b)
}

func (r *wasmReader) limits() (min uint32) {
	flag := r.byte()
	min = r.u32()
	switch flag {
	case 0x00, 0x02:
	case 0x01, 0x03:
		r.u32()
	default:
		r.fail("limits flag %#x", flag)
	}
	return min
}

func (r *wasmReader) imports() []wasmImport {
	n := r.u32()
	if n > maxImports {
		r.fail("%d imports", n)
		return nil
	}
	var out []wasmImport
	for range n {
		im := wasmImport{module: r.name(), name: r.name(), kind: r.byte()}
		switch im.kind {
		case kindFunc:
			r.u32()
		case kindTable:
			r.byte()
			r.limits()
		case kindMemory:
			r.limits()
		case kindGlobal:
			r.byte()
			r.byte()
		case kindTag:
			r.byte()
			r.u32()
		default:
			r.fail("import kind %#x", im.kind)
		}
		if r.err != nil {
			return nil
		}
		out = append(out, im)
	}
	return out
}

func (r *wasmReader) memory() (min uint32) {
	if r.u32() == 0 {
		return 0
	}
	return r.limits()
}

// kindName names an import kind for messages.
func kindName(kind byte) string {
	switch kind {
	case kindFunc:
		return "function"
	case kindTable:
		return "table"
	case kindMemory:
		return "memory"
	case kindGlobal:
		return "global"
	case kindTag:
		return "tag"
	}
	return "unknown"
}
