// Package guest is the custos algorithm ABI, version 1, for algorithms
// written in Go and compiled to WebAssembly (GOOS=wasip1 GOARCH=wasm).
//
// An algorithm implements Algorithm and registers it from an init function
// of its main package:
//
//	//go:build wasip1
//
//	package main
//
//	import "github.com/custos/custos/algo/guest"
//
//	func init() { guest.Register(myAlgorithm{}) }
//
//	func main() {}
//
// and is built as a reactor module:
//
//	GOOS=wasip1 GOARCH=wasm go build -trimpath -buildmode=c-shared -o algo.wasm ./path/to/main
//
// Importing this package is all it takes to export custos_abi_version,
// custos_alloc, custos_train and custos_recommend: Go accepts
// //go:wasmexport in any package, not only in main, so the exports live
// here, in a file built only for wasip1, and need no copying or code
// generation. -buildmode=c-shared makes the module export _initialize,
// which runs the init functions, and keeps main.main from ever running; an
// algorithm that registers from main.main is therefore never registered.
//
// The package guarantees that:
//
//   - Inputs reach the Algorithm only after validation: the ABI version is
//     1, the seed is a decimal uint64, k is in 1..MaxK, and the JSON is one
//     well-formed value with nothing after it. Numbers in records decode as
//     json.Number, so ids keep their digits. Inputs of the shape a
//     custodian sends are decoded without reflection, others by
//     encoding/json; both give the same result (FuzzFastDecode).
//   - Outputs leave only in the ABI's shape: a recommendation is encoded as
//     {"items":[...]} with at most k ids and no duplicate; an algorithm that
//     returns more, or a duplicate, fails the call rather than being
//     silently corrected.
//   - Buffers live as long as the ABI promises: those handed out by
//     custos_alloc until the entry call that follows them returns, an entry
//     call's output until the next call into the module. Entry calls read
//     only buffers that custos_alloc handed out.
//   - A failure is reported as the ABI asks, by a one-line reason on stderr
//     and exit code 2. Reasons written by this package name what failed,
//     never input data; a panic of the Algorithm is reported by its runtime
//     error message or, for any other value, by the value's type only.
//
// It trusts the Algorithm's error messages: they go to stderr as they are,
// which the custodian logs, so they must not contain input data.
package guest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// ABIVersion is the version of the ABI this package implements, returned by
// custos_abi_version.
const ABIVersion = 1

// MaxK is the largest number of items a recommendation may ask for.
const MaxK = 100

// A Record is one record of a collection: the fields the algorithm's
// manifest declares, by name. A protected field holds a token string in the
// algorithm's own audience; other fields hold a string, a json.Number or a
// bool. A field the record lacks is absent.
type Record map[string]any

// TrainInput is the input of custos_train.
type TrainInput struct {
	ABI  int    `json:"abi"`
	Seed string `json:"seed"` // a uint64 in decimal, chosen and logged by the custodian
	// Collections holds the records of each declared collection, in a
	// deterministic order (by subject token, then record id).
	Collections map[string][]Record `json:"collections"`
}

// RecommendInput is the input of custos_recommend.
type RecommendInput struct {
	ABI     int    `json:"abi"`
	Seed    string `json:"seed"`
	Subject string `json:"subject"` // the subject's token in the algorithm's audience
	K       int    `json:"k"`       // at most this many items, 1..MaxK
	// History holds the subject's records of each declared collection.
	History map[string][]Record `json:"history"`
}

// RecommendOutput is the output of custos_recommend.
type RecommendOutput struct {
	Items []string `json:"items"`
}

// An Algorithm is an operator's recommendation algorithm.
//
// Each method is called once per module instance, with validated input,
// and must be a function of its arguments: the custodian instantiates the
// module afresh for every call and expects the same inputs and seed to give
// the same result. Errors are written to stderr, which the custodian logs:
// they must not contain input data.
type Algorithm interface {
	// Train returns the model state learnt from in. The custodian seals it
	// and passes it back, unchanged, to Recommend; it must fit the model
	// size limit of the custodian's configuration.
	Train(in TrainInput) ([]byte, error)
	// Recommend returns at most in.K distinct content ids for in.Subject,
	// best first.
	Recommend(model []byte, in RecommendInput) ([]string, error)
}

// registered is the module's Algorithm. The ABI has no way to pass one to
// the exports but a package variable, set once at initialization.
var registered Algorithm

// Register makes a the Algorithm behind the module's exports. It must be
// called exactly once, from an init function; it panics if a is nil or if
// an Algorithm is already registered.
func Register(a Algorithm) {
	if a == nil {
		panic("guest: Register of a nil Algorithm")
	}
	if registered != nil {
		panic("guest: Register called twice")
	}
	registered = a
}

// DecodeTrainInput decodes and validates the input of custos_train.
func DecodeTrainInput(b []byte) (TrainInput, error) {
	in, ok := fastTrain(b)
	if !ok {
		in = TrainInput{}
		if err := decode(b, &in); err != nil {
			return TrainInput{}, fmt.Errorf("couldn't decode train input: %w", err)
		}
	}
	if err := checkHeader(in.ABI, in.Seed); err != nil {
		return TrainInput{}, fmt.Errorf("invalid train input: %w", err)
	}
	return in, nil
}

// DecodeRecommendInput decodes and validates the input of custos_recommend.
func DecodeRecommendInput(b []byte) (RecommendInput, error) {
	in, ok := fastRecommend(b)
	if !ok {
		in = RecommendInput{}
		if err := decode(b, &in); err != nil {
			return RecommendInput{}, fmt.Errorf("couldn't decode recommend input: %w", err)
		}
	}
	if err := checkHeader(in.ABI, in.Seed); err != nil {
		return RecommendInput{}, fmt.Errorf("invalid recommend input: %w", err)
	}
	if in.K < 1 || in.K > MaxK {
		return RecommendInput{}, fmt.Errorf("invalid recommend input: k is %d, not in 1..%d", in.K, MaxK)
	}
	return in, nil
}

// EncodeRecommendOutput encodes items as the output of custos_recommend,
// after checking that they are at most k and have no duplicate.
func EncodeRecommendOutput(items []string, k int) ([]byte, error) {
	if len(items) > k {
		return nil, fmt.Errorf("recommendation has %d items, more than k = %d", len(items), k)
	}
	seen := make(map[string]bool, len(items))
	for i, id := range items {
		if seen[id] {
			return nil, fmt.Errorf("recommendation repeats an item at position %d", i)
		}
		seen[id] = true
	}
	if items == nil {
		items = []string{} // "items":[] rather than null
	}
	return json.Marshal(RecommendOutput{Items: items})
}

// decode decodes one JSON value from b into v. Its errors name the position
// or field at fault, never a value from b.
func decode(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	err := d.Decode(v)
	if err == nil && d.Decode(new(json.RawMessage)) != io.EOF {
		return errors.New("data after the JSON value")
	}
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return fmt.Errorf("malformed JSON at byte %d", syntax.Offset)
	case errors.As(err, &typ):
		// Value reads like "number 1e400": keep the kind, drop the literal.
		kind, _, _ := strings.Cut(typ.Value, " ")
		return fmt.Errorf("%q is a JSON %s, want Go type %v", typ.Field, kind, typ.Type)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("truncated JSON")
	case err != nil:
		return errors.New("malformed JSON")
	}
	return nil
}

func checkHeader(abi int, seed string) error {
	if abi != ABIVersion {
		return fmt.Errorf("abi is %d, not %d", abi, ABIVersion)
	}
	if _, err := strconv.ParseUint(seed, 10, 64); err != nil {
		return errors.New("seed is not a decimal uint64")
	}
	return nil
}

var errNotRegistered = errors.New("no algorithm registered: call guest.Register from an init function of package main")

// train runs custos_train's work on its input bytes.
func train(a Algorithm, b []byte) ([]byte, error) {
	if a == nil {
		return nil, errNotRegistered
	}
	in, err := DecodeTrainInput(b)
	if err != nil {
		return nil, err
	}
	model, err := a.Train(in)
	if err != nil {
		return nil, fmt.Errorf("training failed: %w", err)
	}
	return model, nil
}

// recommend runs custos_recommend's work on its input bytes.
func recommend(a Algorithm, model, b []byte) ([]byte, error) {
	if a == nil {
		return nil, errNotRegistered
	}
	in, err := DecodeRecommendInput(b)
	if err != nil {
		return nil, err
	}
	items, err := a.Recommend(model, in)
	if err != nil {
		return nil, fmt.Errorf("recommendation failed: %w", err)
	}
	return EncodeRecommendOutput(items, in.K)
}
