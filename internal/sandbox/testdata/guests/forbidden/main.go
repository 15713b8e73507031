//go:build wasip1

// Command forbidden is a test algorithm that imports a function from outside
// the allowlist.
package main

import "unsafe"

func main() {}

//go:wasmimport env something
func something() int32

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
	return uint64(something())
}

//go:wasmexport custos_recommend
func recommend(mptr, msize, iptr, isize uint32) uint64 {
	return uint64(something())
}
