//go:build wasip1

// Command compute is a loop-heavy test algorithm for benchmarks: train runs
// nested loops, as many outer rounds as its input says, and returns a hash.
package main

import (
	"strconv"
	"unsafe"
)

func main() {}

var buf, out []byte

//go:wasmexport custos_abi_version
func abiVersion() int32 { return 1 }

//go:wasmexport custos_alloc
func alloc(size uint32) uint32 {
	buf = make([]byte, size+1)
	return uint32(uintptr(unsafe.Pointer(&buf[0])))
}

//go:wasmexport custos_train
func train(ptr, size uint32) uint64 {
	rounds, _ := strconv.Atoi(string(buf[:size]))
	var grid [64][64]uint32
	h := uint32(2166136261)
	for r := 0; r < rounds; r++ {
		for i := range grid {
			for j := range grid[i] {
				h = (h ^ uint32(r+i*j)) * 16777619
				grid[i][j] += h >> 7
			}
		}
	}
	for i := range grid {
		h ^= grid[i][i]
	}
	out = strconv.AppendUint(out[:0], uint64(h), 10)
	return uint64(uintptr(unsafe.Pointer(&out[0])))<<32 | uint64(len(out))
}

//go:wasmexport custos_recommend
func recommend(mptr, msize, iptr, isize uint32) uint64 {
	return train(iptr, isize)
}
