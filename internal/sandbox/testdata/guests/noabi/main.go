//go:build wasip1

// Command noabi is a test algorithm that lacks custos_recommend.
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
	return 0
}
