package sandbox

import (
	"math"
	"syscall"
)

// reserve maps n bytes of zeroed memory that costs nothing until touched.
func reserve(n uint64) ([]byte, bool) {
	if n > math.MaxInt {
		return nil, false
	}
	b, err := syscall.Mmap(-1, 0, int(n), syscall.PROT_READ|syscall.PROT_WRITE,
		syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS|syscall.MAP_NORESERVE)
	return b, err == nil
}

// release unmaps what reserve mapped. Nothing may touch it afterwards.
func release(b []byte) { syscall.Munmap(b) }
