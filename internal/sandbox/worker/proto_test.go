package worker

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"

	"github.com/custos/custos/internal/sandbox"
)

func sampleMessages() []message {
	return []message{
		&configMsg{version: protocolVersion, cacheDir: "/var/cache/custos"},
		&helloMsg{version: protocolVersion},
		&loadMsg{digest: [32]byte{1, 2}, wasm: []byte("\x00asm\x01\x00\x00\x00")},
		&runMsg{digest: [32]byte{3}, call: sandbox.Call{Entry: sandbox.Train, Seed: 7, Limits: limits(1, 1<<20), Input: []byte("in")}},
		&runMsg{digest: [32]byte{4}, call: sandbox.Call{Entry: sandbox.Recommend, Seed: 1<<64 - 1, Limits: limits(4<<30, 5), Model: []byte("m"), Input: []byte{}}},
		&resultMsg{Output: []byte(`{"items":[]}`), Stdout: []byte("out"), Stderr: []byte("err")},
		&resultMsg{Err: &sandbox.Error{Code: sandbox.CodeTrap, Message: "the module trapped"}, Stderr: []byte("panic")},
		&missingMsg{},
	}
}

func limits(memory uint64, output int) sandbox.Limits {
	return sandbox.Limits{MemoryBytes: memory, OutputBytes: output}
}

func encode(m message) []byte {
	var b bytes.Buffer
	writeFrame(&b, m)
	return b.Bytes()
}

func TestProtocolRoundTrip(t *testing.T) {
	for _, m := range sampleMessages() {
		frame := encode(m)
		payload, err := readFrame(bytes.NewReader(frame), len(frame))
		if err != nil {
			t.Fatal(err)
		}
		got, err := parseMessage(payload, 1<<20)
		if err != nil {
			t.Fatalf("%T: %v", m, err)
		}
		if !bytes.Equal(encode(got), frame) {
			t.Errorf("%T: %x re-encodes as %x", m, frame, encode(got))
		}
		if reflect.TypeOf(got) != reflect.TypeOf(m) {
			t.Errorf("%T parsed as %T", m, got)
		}
	}
}

func TestProtocolBounds(t *testing.T) {
	tests := []struct {
		name  string
		frame []byte
	}{
		{"empty", []byte{}},
		{"unknown type", []byte{'Z'}},
		{"trailing bytes", append(encode(&helloMsg{1})[4:], 0)},
		{"short", encode(&helloMsg{1})[4:7]},
		{"output over the bound", encode(&resultMsg{Output: make([]byte, 11)})[4:]},
		{"stderr over the bound", encode(&resultMsg{Stderr: make([]byte, sandbox.CaptureBytes+1)})[4:]},
		{"unknown code", encode(&resultMsg{Err: &sandbox.Error{Code: "algo_other"}})[4:]},
		{"zero memory", encode(&runMsg{call: sandbox.Call{Entry: sandbox.Train, Limits: limits(0, 1)}})[4:]},
		{"zero output", encode(&runMsg{call: sandbox.Call{Entry: sandbox.Train, Limits: limits(1, 0)}})[4:]},
		{"memory over 4 GiB", encode(&runMsg{call: sandbox.Call{Entry: sandbox.Train, Limits: limits(4<<30+1, 1)}})[4:]},
		{"output over 1 GiB", encode(&runMsg{call: sandbox.Call{Entry: sandbox.Train, Limits: limits(1, 1<<30+1)}})[4:]},
		{"module over the bound", append(append([]byte{msgLoad}, make([]byte, 32)...), 0x04, 0, 0, 1)},
		{"entry 3", encode(&runMsg{call: sandbox.Call{Entry: 3, Limits: limits(1, 1)}})[4:]},
		{"model for train", encode(&runMsg{call: sandbox.Call{Entry: sandbox.Train, Limits: limits(1, 1), Model: []byte("m")}})[4:]},
		{"length over the frame", []byte{msgOK, 0xff, 0xff, 0xff, 0xff}},
	}
	for _, tc := range tests {
		if m, err := parseMessage(tc.frame, 10); !errors.Is(err, errProtocol) {
			t.Errorf("%s: parsed as %#v, %v", tc.name, m, err)
		}
	}
}

func TestReadFrame(t *testing.T) {
	if _, err := readFrame(bytes.NewReader(nil), 10); err != io.EOF {
		t.Errorf("empty stream: %v, want io.EOF", err)
	}
	if _, err := readFrame(bytes.NewReader([]byte{0, 0, 0, 11}), 10); !errors.Is(err, errProtocol) {
		t.Errorf("frame over the bound: %v", err)
	}
	if _, err := readFrame(bytes.NewReader([]byte{0, 0, 0, 0}), 10); !errors.Is(err, errProtocol) {
		t.Errorf("empty frame: %v", err)
	}
	if _, err := readFrame(bytes.NewReader([]byte{0, 0, 0, 5, 1}), 10); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("frame cut short: %v", err)
	}
}

// FuzzParseMessage checks that parsing never panics, holds to its bounds,
// and accepts exactly one encoding of each message.
func FuzzParseMessage(f *testing.F) {
	for _, m := range sampleMessages() {
		f.Add(encode(m)[4:])
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		m, err := parseMessage(payload, 16)
		if err != nil {
			return
		}
		if r, ok := m.(*resultMsg); ok && len(r.Output) > 16 {
			t.Fatalf("output of %d bytes over the bound", len(r.Output))
		}
		if again := m.appendTo(nil); !bytes.Equal(again, payload) {
			t.Fatalf("%x parses and re-encodes as %x", payload, again)
		}
	})
}
