//go:build wasip1

// Command loop is a test algorithm that never returns from an entry call.
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

var n uint64

//go:wasmexport custos_train
func train(ptr, size uint32) uint64 {
	for {
		n++
	}
}

//go:wasmexport custos_recommend
func recommend(mptr, msize, iptr, isize uint32) uint64 {
	for {
		n++
	}
}
