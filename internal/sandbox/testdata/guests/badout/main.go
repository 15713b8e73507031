//go:build wasip1

// Command badout is a test algorithm whose results break the rules: train
// points outside its memory after writing 100 KiB to stdout and stderr,
// recommend returns 2 MiB.
package main

import (
	"bytes"
	"os"
	"unsafe"
)

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
	os.Stdout.Write(bytes.Repeat([]byte("o"), 100<<10))
	os.Stderr.Write(bytes.Repeat([]byte("e"), 100<<10))
	return 0xffff0000<<32 | 0x1000
}

var big []byte

//go:wasmexport custos_recommend
func recommend(mptr, msize, iptr, isize uint32) uint64 {
	big = make([]byte, 2<<20)
	return uint64(uintptr(unsafe.Pointer(&big[0])))<<32 | uint64(len(big))
}
