//go:build wasip1

// Command echo is a well-behaved test algorithm: train returns its input,
// recommend returns items built from its inputs and from random_get, so the
// host's seed shows in the output.
package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"unsafe"
)

func main() {}

// held keeps buffers handed to the host alive until the next call.
var held [][]byte

//go:wasmexport custos_abi_version
func abiVersion() int32 { return 1 }

//go:wasmexport custos_alloc
func alloc(size uint32) uint32 {
	b := make([]byte, size+1) // +1: a valid pointer for size 0
	held = append(held, b)
	return uint32(uintptr(unsafe.Pointer(&b[0])))
}

//go:wasmexport custos_train
func train(ptr, n uint32) uint64 {
	return result(bytesAt(ptr, n))
}

//go:wasmexport custos_recommend
func recommend(mptr, mn, iptr, in uint32) uint64 {
	var req struct {
		Subject string `json:"subject"`
		K       int    `json:"k"`
	}
	if err := json.Unmarshal(bytesAt(iptr, in), &req); err != nil {
		panic(err)
	}
	var r [8]byte
	rand.Read(r[:])
	items := []string{req.Subject, string(bytesAt(mptr, mn)), hex.EncodeToString(r[:])}
	if req.K < len(items) {
		items = items[:req.K]
	}
	out, _ := json.Marshal(map[string][]string{"items": items})
	return result(out)
}

func bytesAt(ptr, n uint32) []byte {
	if n == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(uintptr(ptr))), n)
}

func result(b []byte) uint64 {
	out := append([]byte(nil), b...)
	held = [][]byte{out}
	if len(out) == 0 {
		return 0
	}
	return uint64(uintptr(unsafe.Pointer(&out[0])))<<32 | uint64(len(out))
}
