//go:build wasip1

// Command grow is a test algorithm that allocates without bound.
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

var keep [][]byte

//go:wasmexport custos_train
func train(ptr, size uint32) uint64 {
	for {
		b := make([]byte, 1<<20)
		b[len(b)-1] = 1
		keep = append(keep, b)
	}
}

//go:wasmexport custos_recommend
func recommend(mptr, msize, iptr, isize uint32) uint64 {
	return train(iptr, isize)
}
