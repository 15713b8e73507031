package worker

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/custos/custos/internal/sandbox"
)

// The protocol between a Pool and a worker, over the worker's stdin and
// stdout. A frame is a 4-byte big-endian length and that many bytes: a
// message type, then the message's fields. Integers are big-endian; byte
// strings carry a 4-byte length. Every length is checked against its bound
// before anything is allocated, and a message must end where its frame ends,
// so each message has exactly one encoding.
//
//	parent → worker            worker → parent
//	config (once, first)       hello
//	load                       result
//	run                        result, or missing if the module is not loaded

const protocolVersion = 1

// Message types.
const (
	msgConfig  = 'C' // protocol version, compilation cache directory
	msgHello   = 'H' // protocol version
	msgLoad    = 'L' // digest, module bytes
	msgRun     = 'R' // digest, entry, seed, memory limit, output limit, model, input
	msgOK      = 'O' // output, stdout, stderr
	msgFail    = 'F' // code, message, stdout, stderr
	msgMissing = 'M' // nothing
)

const (
	// maxInputs caps the model and input of a run together.
	maxInputs = 1 << 30
	// maxRequest caps a frame from the parent: a run's inputs or a module,
	// and the fixed fields.
	maxRequest  = maxInputs + 1<<10
	maxCacheDir = 4 << 10
	maxText     = 1 << 10
)

var errProtocol = errors.New("protocol error")

type configMsg struct {
	version  uint32
	cacheDir string
}

type helloMsg struct{ version uint32 }

type loadMsg struct {
	digest [32]byte
	wasm   []byte
}

// runMsg is a call, whose limits have their defaults filled in. Their
// Timeout is the Pool's to enforce and is not sent.
type runMsg struct {
	digest [32]byte
	call   sandbox.Call
}

// resultMsg is an outcome: msgOK if its Err is nil, else msgFail. Err
// carries only a code and a message; its Stderr is the outcome's.
type resultMsg sandbox.Outcome

type missingMsg struct{}

type message interface {
	// appendTo appends the message's type and fields to b.
	appendTo(b []byte) []byte
}

func (m *configMsg) appendTo(b []byte) []byte {
	b = binary.BigEndian.AppendUint32(append(b, msgConfig), m.version)
	return appendBytes(b, []byte(m.cacheDir))
}

func (m *helloMsg) appendTo(b []byte) []byte {
	return binary.BigEndian.AppendUint32(append(b, msgHello), m.version)
}

func (m *loadMsg) appendTo(b []byte) []byte {
	return appendBytes(append(append(b, msgLoad), m.digest[:]...), m.wasm)
}

func (m *runMsg) appendTo(b []byte) []byte {
	b = append(append(append(b, msgRun), m.digest[:]...), byte(m.call.Entry))
	b = binary.BigEndian.AppendUint64(b, m.call.Seed)
	b = binary.BigEndian.AppendUint64(b, m.call.Limits.MemoryBytes)
	b = binary.BigEndian.AppendUint32(b, uint32(m.call.Limits.OutputBytes))
	return appendBytes(appendBytes(b, m.call.Model), m.call.Input)
}

func (m *resultMsg) appendTo(b []byte) []byte {
	if m.Err == nil {
		b = appendBytes(append(b, msgOK), m.Output)
	} else {
		b = appendBytes(append(b, msgFail), []byte(m.Err.Code))
		b = appendBytes(b, []byte(m.Err.Message))
	}
	return appendBytes(appendBytes(b, m.Stdout), m.Stderr)
}

func (*missingMsg) appendTo(b []byte) []byte { return append(b, msgMissing) }

func appendBytes(b, s []byte) []byte {
	return append(binary.BigEndian.AppendUint32(b, uint32(len(s))), s...)
}

// knownCodes are the codes a worker may send.
var knownCodes = []sandbox.Code{sandbox.CodeInvalidModule, sandbox.CodeForbiddenImport, sandbox.CodeTimeout,
	sandbox.CodeTrap, sandbox.CodeMemoryLimit, sandbox.CodeOutputTooLarge, sandbox.CodeUnavailable}

// parseMessage parses the payload of a frame. outputBytes bounds the output
// of a result.
func parseMessage(b []byte, outputBytes int) (message, error) {
	d := &decoder{b: b}
	var m message
	switch t := d.byte(); t {
	case msgConfig:
		m = &configMsg{version: d.u32(), cacheDir: string(d.bytes(maxCacheDir))}
	case msgHello:
		m = &helloMsg{version: d.u32()}
	case msgLoad:
		m = &loadMsg{digest: d.digest(), wasm: d.bytes(sandbox.MaxModuleBytes)}
	case msgRun:
		m = parseRun(d)
	case msgOK:
		m = &resultMsg{Output: d.bytes(outputBytes), Stdout: d.bytes(sandbox.CaptureBytes), Stderr: d.bytes(sandbox.CaptureBytes)}
	case msgFail:
		e := &sandbox.Error{Code: d.code(), Message: string(d.bytes(maxText))}
		m = &resultMsg{Err: e, Stdout: d.bytes(sandbox.CaptureBytes), Stderr: d.bytes(sandbox.CaptureBytes)}
	case msgMissing:
		m = &missingMsg{}
	default:
		d.fail("message type %#x", t)
	}
	if d.err == nil && len(d.b) > 0 {
		d.fail("%d bytes after the message", len(d.b))
	}
	if d.err != nil {
		return nil, fmt.Errorf("%w: %v", errProtocol, d.err)
	}
	return m, nil
}

func parseRun(d *decoder) *runMsg {
	m := &runMsg{digest: d.digest()}
	c := &m.call
	c.Entry = sandbox.Entry(d.byte())
	c.Seed = d.u64()
	c.Limits = sandbox.Limits{MemoryBytes: d.u64(), OutputBytes: int(d.u32())}
	c.Model = d.bytes(maxInputs)
	c.Input = d.bytes(maxInputs - len(c.Model))
	if d.err != nil {
		return m
	}
	// Zero limits would take their defaults: the Pool fills them in, so
	// that a call has one encoding.
	_, err := c.Limits.WithDefaults()
	switch {
	case c.Limits.MemoryBytes == 0 || c.Limits.OutputBytes == 0:
		d.fail("zero limits")
	case err != nil:
		d.fail("%v", err)
	case c.Entry != sandbox.Train && c.Entry != sandbox.Recommend:
		d.fail("entry %d", c.Entry)
	case c.Entry == sandbox.Train && len(c.Model) > 0:
		d.fail("a model for train")
	}
	return m
}

// decoder reads fields; after the first error every read returns zero
// values and err stays set.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf(format, args...)
	}
	d.b = nil
}

func (d *decoder) take(n int) []byte {
	if d.err != nil || n > len(d.b) {
		d.fail("message too short")
		return nil
	}
	out := d.b[:n:n]
	d.b = d.b[n:]
	return out
}

func (d *decoder) byte() byte {
	if b := d.take(1); b != nil {
		return b[0]
	}
	return 0
}

func (d *decoder) u32() uint32 {
	if b := d.take(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (d *decoder) u64() uint64 {
	if b := d.take(8); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

func (d *decoder) digest() (out [32]byte) {
	copy(out[:], d.take(32))
	return out
}

// bytes reads a byte string of at most max bytes.
func (d *decoder) bytes(max int) []byte {
	n := d.u32()
	if d.err == nil && uint64(n) > uint64(max) {
		d.fail("%d bytes over the bound of %d", n, max)
	}
	return d.take(int(n))
}

func (d *decoder) code() sandbox.Code {
	c := sandbox.Code(d.bytes(64))
	if d.err == nil && !slices.Contains(knownCodes, c) {
		d.fail("unknown code of %d bytes", len(c))
	}
	return c
}

// writeFrame writes m as one frame.
func writeFrame(w io.Writer, m message) error {
	b := m.appendTo(make([]byte, 4, 64))
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	_, err := w.Write(b)
	return err
}

// readFrame reads one frame of at most max bytes and returns its payload.
// It returns io.EOF only if the stream ended before the frame began.
func readFrame(r io.Reader, max int) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 || uint64(n) > uint64(max) {
		return nil, fmt.Errorf("%w: frame of %d bytes, bound %d", errProtocol, n, max)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("%w: frame cut short: %w", errProtocol, noEOF(err))
	}
	return b, nil
}

// noEOF turns io.EOF into io.ErrUnexpectedEOF: a stream that ends inside a
// frame did not end cleanly.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
