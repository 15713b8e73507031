//go:build wasip1

// The host calls the exports, through //go:wasmexport, which staticcheck
// does not see.
//lint:file-ignore U1000 used by the host

package guest

import (
	"fmt"
	"os"
	"runtime"
	"unsafe"
)

// The module runs one goroutine at a time and the host makes one call at a
// time, so these need no lock.
var (
	// allocs holds what custos_alloc handed out since the last entry call:
	// the host writes into these after custos_alloc has returned, so only
	// this reference keeps the collector from reusing them. (Go's collector
	// does not move objects, so their addresses stay put.)
	allocs [][]byte
	// output holds the last entry call's result until the next call into
	// the module, for the host to read it after the call returned.
	output []byte
)

// init warms what encoding/json learns of the ABI's types on first use,
// by reflection: a custodian that pre-initializes the module (see the ABI
// document) starts every entry call with it learnt. The inputs are fixed,
// so the module's state after initialization still depends on nothing else.
func init() {
	DecodeTrainInput([]byte(`{"abi":1,"seed":"0","collections":{"c":[{"f":"v","n":1,"b":true}]}}`))
	DecodeRecommendInput([]byte(`{"abi":1,"seed":"0","subject":"s","k":1,"history":{"c":[{"f":"v","n":1,"b":true}]}}`))
	EncodeRecommendOutput([]string{"i"}, 1)
}

// maxAlloc bounds custos_alloc. Linear memory is at most 4 GiB and holds
// the runtime and the heap too, so a larger request cannot succeed; failing
// it with 0 lets the host report it instead of the runtime aborting.
const maxAlloc = 1 << 31

//go:wasmexport custos_abi_version
func exportABIVersion() int32 {
	output = nil
	return ABIVersion
}

//go:wasmexport custos_alloc
func exportAlloc(size uint32) uint32 {
	output = nil
	if size >= maxAlloc {
		return 0
	}
	// Capacity at least 1, so that even an empty buffer has an address.
	b := make([]byte, size, max(size, 1))
	allocs = append(allocs, b)
	return addr(b)
}

//go:wasmexport custos_train
func exportTrain(inPtr, inLen uint32) uint64 {
	const entry = "custos_train"
	defer guard(entry)
	output = nil
	in := lookup(entry, "input", inPtr, inLen)
	out, err := train(registered, in)
	allocs = nil
	if err != nil {
		fail(entry, err)
	}
	return keep(out)
}

//go:wasmexport custos_recommend
func exportRecommend(modelPtr, modelLen, inPtr, inLen uint32) uint64 {
	const entry = "custos_recommend"
	defer guard(entry)
	output = nil
	model := lookup(entry, "model", modelPtr, modelLen)
	in := lookup(entry, "input", inPtr, inLen)
	out, err := recommend(registered, model, in)
	allocs = nil
	if err != nil {
		fail(entry, err)
	}
	return keep(out)
}

// lookup returns the n bytes at ptr, which must lie in a buffer that
// custos_alloc handed out, so that an entry call never reads memory that
// was not written for it.
func lookup(entry, what string, ptr, n uint32) []byte {
	for _, b := range allocs {
		if addr(b) == ptr && int(n) <= len(b) {
			return b[:n]
		}
	}
	fail(entry, fmt.Errorf("%s at %#x, length %d, is not in a buffer from custos_alloc", what, ptr, n))
	return nil
}

// keep holds out until the next call and packs its place as the ABI asks.
func keep(out []byte) uint64 {
	if len(out) == 0 {
		out = make([]byte, 0, 1) // an address inside memory, as for alloc
	}
	output = out
	return uint64(addr(out))<<32 | uint64(len(out))
}

// addr is the address of b's first byte in linear memory, where pointers
// are 32-bit.
func addr(b []byte) uint32 {
	return uint32(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
}

// guard turns a panic of the entry call into a failure, reporting a
// runtime error (an index out of range, a nil dereference) by its message,
// which holds no data, and any other value only by its type, which cannot.
func guard(entry string) {
	r := recover()
	if r == nil {
		return
	}
	if rerr, ok := r.(runtime.Error); ok {
		fail(entry, fmt.Errorf("panic: %w", rerr))
	}
	fail(entry, fmt.Errorf("panic with a value of type %T", r))
}

// fail reports err as the ABI asks: a reason on stderr, then proc_exit 2.
func fail(entry string, err error) {
	fmt.Fprintf(os.Stderr, "%s: %v\n", entry, err)
	os.Exit(2)
}
