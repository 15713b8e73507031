//go:build wasip1

// Command trap is a test algorithm that fails: train panics with its input
// in the message, recommend divides by zero.
package main

import "unsafe"

func main() {}

var buf []byte

//go:wasmexport custos_abi_version
func abiVersion() int32 { return 1 }

//go:wasmexport custos_alloc
func alloc(size uint32) uint32 {
	buf = make([]byte, size+1)
	return uint32(uintptr(unsafe.Pointer(&buf[0])))
}

//go:wasmexport custos_train
func train(ptr, size uint32) uint64 {
	panic("trap guest got " + string(buf[:size]))
}

var zero uint64

//go:wasmexport custos_recommend
func recommend(mptr, msize, iptr, isize uint32) uint64 {
	return uint64(isize) / zero
}
