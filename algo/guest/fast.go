package guest

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// A decoder of the ABI's inputs without reflection, for the inputs a
// custodian sends: exactly the members the ABI names, each once, with the
// types it gives them, and records whose fields are strings, numbers,
// booleans or null. For anything else it reports false, and the input is
// decoded by encoding/json, whose result or error stands. Where it reports
// true its result is what encoding/json would give (FuzzFastDecode).
// encoding/json learns types by reflection and calls through them for
// every value, which in wasm costs more than the algorithm's own work.

// fastTrain decodes a train input, if it can.
func fastTrain(b []byte) (in TrainInput, ok bool) {
	p := &parser{b: b}
	ok = p.members(func(key string) bool {
		switch key {
		case "abi":
			return p.int(&in.ABI)
		case "seed":
			return p.string(&in.Seed)
		case "collections":
			return p.collections(&in.Collections)
		}
		return false
	})
	return in, ok && p.end()
}

// fastRecommend decodes a recommend input, if it can.
func fastRecommend(b []byte) (in RecommendInput, ok bool) {
	p := &parser{b: b}
	ok = p.members(func(key string) bool {
		switch key {
		case "abi":
			return p.int(&in.ABI)
		case "seed":
			return p.string(&in.Seed)
		case "subject":
			return p.string(&in.Subject)
		case "k":
			return p.int(&in.K)
		case "history":
			return p.collections(&in.History)
		}
		return false
	})
	return in, ok && p.end()
}

// parser reads JSON from b at i.
type parser struct {
	b []byte
	i int
}

func (p *parser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// next skips white space and reports whether the next byte is c, taking it
// if so.
func (p *parser) next(c byte) bool {
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// end reports whether only white space is left.
func (p *parser) end() bool {
	p.ws()
	return p.i == len(p.b)
}

// object reads an object, calling member for each member's value with the
// parser at the value.
func (p *parser) object(member func(key string) bool) bool {
	if !p.next('{') {
		return false
	}
	if p.next('}') {
		return true
	}
	for {
		var key string
		if !p.string(&key) || !p.next(':') || !member(key) {
			return false
		}
		if p.next('}') {
			return true
		}
		if !p.next(',') {
			return false
		}
	}
}

// members reads an object in which no member appears twice, calling
// member as object does. A repeated member is left to encoding/json.
func (p *parser) members(member func(key string) bool) bool {
	seen := map[string]bool{}
	return p.object(func(key string) bool {
		if seen[key] {
			return false
		}
		seen[key] = true
		return member(key)
	})
}

// collections reads an object of arrays of records.
func (p *parser) collections(out *map[string][]Record) bool {
	m := map[string][]Record{}
	*out = m
	return p.object(func(name string) bool {
		if !p.next('[') {
			return false
		}
		records := []Record{}
		if !p.next(']') {
			for {
				r, ok := p.record()
				if !ok {
					return false
				}
				records = append(records, r)
				if p.next(']') {
					break
				}
				if !p.next(',') {
					return false
				}
			}
		}
		m[name] = records
		return true
	})
}

// record reads a flat object of strings, numbers, booleans and nulls.
func (p *parser) record() (Record, bool) {
	r := Record{}
	ok := p.object(func(field string) bool {
		v, ok := p.scalar()
		r[field] = v
		return ok
	})
	return r, ok
}

// scalar reads a string, a number as a json.Number, a boolean or null.
func (p *parser) scalar() (any, bool) {
	p.ws()
	if p.i == len(p.b) {
		return nil, false
	}
	switch c := p.b[p.i]; {
	case c == '"':
		var s string
		ok := p.string(&s)
		return s, ok
	case c == '-' || '0' <= c && c <= '9':
		n, ok := p.number()
		return json.Number(n), ok
	}
	for _, lit := range []struct {
		text string
		v    any
	}{{"true", true}, {"false", false}, {"null", nil}} {
		if len(p.b)-p.i >= len(lit.text) && string(p.b[p.i:p.i+len(lit.text)]) == lit.text {
			p.i += len(lit.text)
			return lit.v, true
		}
	}
	return nil, false
}

// int reads a number without fraction or exponent that fits an int.
func (p *parser) int(out *int) bool {
	p.ws()
	n, ok := p.number()
	if !ok {
		return false
	}
	v, err := strconv.ParseInt(n, 10, strconv.IntSize)
	*out = int(v)
	return err == nil
}

// number reads a number as the JSON grammar has it and returns its text.
func (p *parser) number() (string, bool) {
	start := p.i
	p.take('-')
	switch {
	case p.take('0'):
	case p.digits() == 0:
		return "", false
	}
	if p.take('.') && p.digits() == 0 {
		return "", false
	}
	if p.take('e') || p.take('E') {
		if !p.take('+') {
			p.take('-')
		}
		if p.digits() == 0 {
			return "", false
		}
	}
	return string(p.b[start:p.i]), true
}

// take takes c if it is next, without skipping white space.
func (p *parser) take(c byte) bool {
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// digits takes decimal digits and returns how many.
func (p *parser) digits() int {
	start := p.i
	for p.i < len(p.b) && '0' <= p.b[p.i] && p.b[p.i] <= '9' {
		p.i++
	}
	return p.i - start
}

// string reads a string of valid UTF-8 whose escapes are the simple ones
// or \u of a code point outside the surrogates.
func (p *parser) string(out *string) bool {
	if !p.next('"') {
		return false
	}
	start := p.i
	var buf []byte // nil until an escape
	for p.i < len(p.b) {
		switch c := p.b[p.i]; {
		case c == '"':
			if buf == nil {
				*out = string(p.b[start:p.i])
			} else {
				*out = string(buf)
			}
			p.i++
			return true
		case c < 0x20:
			return false
		case c == '\\':
			if buf == nil {
				buf = append([]byte(nil), p.b[start:p.i]...)
			}
			var ok bool
			if buf, ok = p.escape(buf); !ok {
				return false
			}
		case c < utf8.RuneSelf:
			if buf != nil {
				buf = append(buf, c)
			}
			p.i++
		default:
			r, size := utf8.DecodeRune(p.b[p.i:])
			if r == utf8.RuneError && size == 1 {
				return false
			}
			if buf != nil {
				buf = append(buf, p.b[p.i:p.i+size]...)
			}
			p.i += size
		}
	}
	return false
}

// escape appends what the escape at p.i stands for to buf.
func (p *parser) escape(buf []byte) ([]byte, bool) {
	if p.i+1 >= len(p.b) {
		return buf, false
	}
	c := p.b[p.i+1]
	p.i += 2
	switch c {
	case '"', '\\', '/':
		return append(buf, c), true
	case 'b':
		return append(buf, '\b'), true
	case 'f':
		return append(buf, '\f'), true
	case 'n':
		return append(buf, '\n'), true
	case 'r':
		return append(buf, '\r'), true
	case 't':
		return append(buf, '\t'), true
	case 'u':
		if p.i+4 > len(p.b) {
			return buf, false
		}
		v, err := strconv.ParseUint(string(p.b[p.i:p.i+4]), 16, 16)
		if err != nil || 0xd800 <= v && v < 0xe000 {
			return buf, false
		}
		p.i += 4
		return utf8.AppendRune(buf, rune(v)), true
	}
	return buf, false
}
