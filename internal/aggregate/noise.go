package aggregate

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
)

// Laplace returns a draw of the Laplace distribution of mean 0 and scale b,
// by inversion of a uniform draw of 53 bits read from rnd (crypto/rand in
// custos). The figures custos releases with noise are rounded (counts) or
// large beside the noise, but the draw is a float64 and does not resist
// the attacks on the low bits of floating-point Laplace samples: see
// docs/aggregates.md.
func Laplace(rnd io.Reader, b float64) (float64, error) {
	var buf [8]byte
	for {
		if _, err := io.ReadFull(rnd, buf[:]); err != nil {
			return 0, fmt.Errorf("couldn't draw noise: %w", err)
		}
		u := float64(binary.LittleEndian.Uint64(buf[:])>>11)/(1<<53) - 0.5 // [-0.5, 0.5)
		if u == -0.5 {
			continue // ln(0)
		}
		return -b * math.Copysign(1, u) * math.Log(1-2*math.Abs(u)), nil
	}
}
