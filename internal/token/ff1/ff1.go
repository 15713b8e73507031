// Package ff1 implements FF1, the format-preserving encryption mode of NIST
// SP 800-38G Rev. 1, over AES.
//
// FF1 encrypts a string of numerals in a radix into a string of numerals of
// the same length in the same radix: ten decimal digits become ten decimal
// digits. A Cipher is a keyed pseudorandom permutation of each such domain,
// selected further by a tweak.
//
// What FF1 guarantees, and what it does not:
//
//   - It is deterministic: under one key and tweak, equal inputs give equal
//     outputs. It therefore reveals equality, and nothing else, to whoever
//     sees ciphertexts without the key.
//   - It does not authenticate: every string of numerals decrypts to some
//     string of numerals.
//   - Its strength depends on the size of the domain. As the standard
//     requires, inputs shorter than MinLen numerals, where
//     radix^MinLen >= 1,000,000, are refused. Inputs longer than MaxLen
//     numerals and tweaks longer than MaxTweakLen bytes are refused too:
//     the standard allows up to 2^32, custos needs far less, and bounded
//     inputs bound the work of a call.
//   - It is not constant-time with respect to the numerals: arithmetic on
//     them uses integer division and, for long inputs, math/big.
//
// The key never leaves the Cipher and never appears in an error.
package ff1

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"math/bits"
)

const (
	// MaxRadix is the largest radix FF1 allows.
	MaxRadix = 1 << 16
	// MaxLen is the largest number of numerals Encrypt and Decrypt accept.
	MaxLen = 4096
	// MaxTweakLen is the largest tweak, in bytes, Encrypt and Decrypt accept.
	MaxTweakLen = 256

	rounds = 10
	// minDomain is the smallest domain size the standard allows.
	minDomain = 1_000_000
)

// Cipher is FF1 under one AES key for one radix. It is safe for concurrent
// use.
type Cipher struct {
	block  cipher.Block
	radix  int
	minLen int
}

// New returns a Cipher for numerals in the given radix under key, an AES key
// of 16, 24 or 32 bytes. The radix is between 2 and MaxRadix.
func New(key []byte, radix int) (*Cipher, error) {
	switch len(key) {
	case 16, 24, 32:
	default:
		return nil, fmt.Errorf("ff1: key is %d bytes, want 16, 24 or 32", len(key))
	}
	if radix < 2 || radix > MaxRadix {
		return nil, fmt.Errorf("ff1: radix %d is not between 2 and %d", radix, MaxRadix)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, errors.New("ff1: couldn't set up AES")
	}
	return &Cipher{block: block, radix: radix, minLen: minLen(radix)}, nil
}

// minLen returns the least length L >= 2 with radix^L >= minDomain.
func minLen(radix int) int {
	l, size := 1, radix
	for size < minDomain {
		size *= radix
		l++
	}
	return max(l, 2)
}

// Radix returns the radix of c's numerals.
func (c *Cipher) Radix() int { return c.radix }

// MinLen returns the least number of numerals c accepts.
func (c *Cipher) MinLen() int { return c.minLen }

// String describes c without its key.
func (c *Cipher) String() string { return fmt.Sprintf("ff1.Cipher{radix: %d}", c.radix) }

// Encrypt returns the encryption of the numerals x under tweak. Every numeral
// is below c's radix and len(x) is between MinLen and MaxLen. x is not
// modified.
func (c *Cipher) Encrypt(tweak []byte, x []uint16) ([]uint16, error) {
	return c.crypt(tweak, x, false, false)
}

// Decrypt returns the decryption of the numerals x under tweak, under the
// same conditions as Encrypt.
func (c *Cipher) Decrypt(tweak []byte, x []uint16) ([]uint16, error) {
	return c.crypt(tweak, x, true, false)
}

// crypt runs the FF1 Feistel network forwards or backwards. wide forces the
// math/big arithmetic that inputs too long for uint64 need, so that tests
// can hold both paths to the same vectors.
func (c *Cipher) crypt(tweak []byte, x []uint16, decrypt, wide bool) ([]uint16, error) {
	if err := c.check(tweak, x); err != nil {
		return nil, err
	}
	f := c.newFeistel(tweak, len(x), wide)
	out := make([]uint16, len(x))
	if f.narrow {
		f.runNarrow(x, out, decrypt)
	} else {
		f.runWide(x, out, decrypt)
	}
	return out, nil
}

func (c *Cipher) check(tweak []byte, x []uint16) error {
	if len(x) < c.minLen || len(x) > MaxLen {
		return fmt.Errorf("ff1: input has %d numerals, want %d to %d", len(x), c.minLen, MaxLen)
	}
	if len(tweak) > MaxTweakLen {
		return fmt.Errorf("ff1: tweak is %d bytes, want at most %d", len(tweak), MaxTweakLen)
	}
	for i, n := range x {
		if int(n) >= c.radix {
			return fmt.Errorf("ff1: numeral at position %d is not below radix %d", i, c.radix)
		}
	}
	return nil
}

// feistel holds what the rounds of one call share: the lengths of the
// halves, and the CBC-MAC state over P and the constant prefix of Q.
type feistel struct {
	c      *Cipher
	u, v   int // lengths of the halves A and B, u <= v
	b, d   int // bytes of NUM(B) in Q, bytes of S
	narrow bool
	powU   uint64 // radix^u when narrow
	powV   uint64 // radix^v when narrow

	state []byte // CBC-MAC state after P and the constant blocks of Q
	tail  []byte // the remaining blocks of Q: [i] and NUM(B) at its end
	s     []byte // S, in whole blocks
}

// newFeistel prepares the rounds for n numerals under tweak (steps 1 to 5 of
// Algorithm 7, and the part of step 6.i that does not change per round).
func (c *Cipher) newFeistel(tweak []byte, n int, wide bool) *feistel {
	f := &feistel{c: c, u: n / 2, v: n - n/2}
	var bitLen int
	f.powU, f.powV, f.narrow = narrowPowers(c.radix, f.u, f.v)
	if f.narrow = f.narrow && !wide; f.narrow {
		bitLen = bits.Len64(f.powV - 1)
	} else {
		p := pow(c.radix, f.v)
		bitLen = p.Sub(p, big.NewInt(1)).BitLen()
	}
	f.b = (bitLen + 7) / 8
	f.d = 4*((f.b+3)/4) + 4

	t := len(tweak)
	pad := mod(-t-f.b-1, 16)
	qLen := t + pad + 1 + f.b
	sLen := 16 * ((f.d + 15) / 16)
	buf := make([]byte, 16+16+qLen+sLen)
	f.state, buf = buf[:16], buf[16:]
	pq, s := buf[:16+qLen], buf[16+qLen:]
	f.s = s

	// P = [1]^1 || [2]^1 || [1]^1 || [radix]^3 || [10]^1 || [u mod 256]^1 || [n]^4 || [t]^4
	pq[0], pq[1], pq[2] = 1, 2, 1
	pq[3], pq[4], pq[5] = byte(c.radix>>16), byte(c.radix>>8), byte(c.radix)
	pq[6] = rounds
	pq[7] = byte(f.u)
	binary.BigEndian.PutUint32(pq[8:], uint32(n))
	binary.BigEndian.PutUint32(pq[12:], uint32(t))
	// Q = T || [0]^pad || [i]^1 || [NUM(B)]^b; the zeros are already there.
	copy(pq[16:], tweak)

	constant := 16 + 16*((t+pad)/16)
	f.cbc(f.state, pq[:constant])
	f.tail = pq[constant:]
	return f
}

// narrowPowers returns radix^u and radix^v and whether every value a round
// computes fits a uint64: radix^v <= 2^63, so that a sum of two numbers
// below it does not overflow.
func narrowPowers(radix, u, v int) (powU, powV uint64, ok bool) {
	p := uint64(1)
	for i := 1; i <= v; i++ {
		hi, lo := bits.Mul64(p, uint64(radix))
		if hi != 0 || lo > 1<<63 {
			return 0, 0, false
		}
		p = lo
		if i == u {
			powU = p
		}
	}
	return powU, p, true
}

// cbc runs CBC-MAC from state over data, a whole number of blocks, in place.
func (f *feistel) cbc(state, data []byte) {
	for len(data) > 0 {
		subtle.XORBytes(state, state, data[:16])
		f.c.block.Encrypt(state, state)
		data = data[16:]
	}
}

// slot sets the round number i in Q and returns the b bytes of Q where NUM
// of the half entering round i goes.
func (f *feistel) slot(i int) []byte {
	f.tail[len(f.tail)-1-f.b] = byte(i)
	return f.tail[len(f.tail)-f.b:]
}

// prf returns S for the Q that slot prepared (steps 6.ii and 6.iii).
func (f *feistel) prf() []byte {
	r := f.s[:16]
	copy(r, f.state)
	f.cbc(r, f.tail)
	for j := 1; 16*j < len(f.s); j++ {
		blk := f.s[16*j : 16*j+16]
		copy(blk, r)
		binary.BigEndian.PutUint64(blk[8:], binary.BigEndian.Uint64(r[8:])^uint64(j))
		f.c.block.Encrypt(blk, blk)
	}
	return f.s[:f.d]
}

func (f *feistel) runNarrow(x, out []uint16, decrypt bool) {
	radix := uint64(f.c.radix)
	a, b := numNarrow(x[:f.u], radix), numNarrow(x[f.u:], radix)
	for k := range rounds {
		i := k
		if decrypt {
			i = rounds - 1 - k
		}
		m := f.powU
		if i%2 == 1 {
			m = f.powV
		}
		in := b
		if decrypt {
			in = a
		}
		putUint(f.slot(i), in)
		y := remBytes(f.prf(), m)
		if decrypt {
			c := b - y
			if b < y {
				c = b + (m - y)
			}
			a, b = c, a
		} else {
			a, b = b, (a+y)%m
		}
	}
	strNarrow(out[:f.u], a, radix)
	strNarrow(out[f.u:], b, radix)
}

func (f *feistel) runWide(x, out []uint16, decrypt bool) {
	radix := big.NewInt(int64(f.c.radix))
	powU, powV := pow(f.c.radix, f.u), pow(f.c.radix, f.v)
	a, b, c, y := numWide(x[:f.u], radix), numWide(x[f.u:], radix), new(big.Int), new(big.Int)
	for k := range rounds {
		i := k
		if decrypt {
			i = rounds - 1 - k
		}
		m := powU
		if i%2 == 1 {
			m = powV
		}
		in := b
		if decrypt {
			in = a
		}
		in.FillBytes(f.slot(i))
		y.SetBytes(f.prf())
		if decrypt {
			c.Sub(b, y)
			c.Mod(c, m)
			a, b, c = c, a, b
		} else {
			c.Add(a, y)
			c.Mod(c, m)
			a, b, c = b, c, a
		}
	}
	strWide(out[:f.u], a, radix)
	strWide(out[f.u:], b, radix)
}

// numNarrow returns NUM_radix(x), which must fit a uint64.
func numNarrow(x []uint16, radix uint64) uint64 {
	var n uint64
	for _, d := range x {
		n = n*radix + uint64(d)
	}
	return n
}

// strNarrow writes STR_radix(n) into out, most significant numeral first.
func strNarrow(out []uint16, n, radix uint64) {
	for i := len(out) - 1; i >= 0; i-- {
		out[i] = uint16(n % radix)
		n /= radix
	}
}

func numWide(x []uint16, radix *big.Int) *big.Int {
	n, d := new(big.Int), new(big.Int)
	for _, v := range x {
		n.Mul(n, radix)
		n.Add(n, d.SetUint64(uint64(v)))
	}
	return n
}

func strWide(out []uint16, n, radix *big.Int) {
	n = new(big.Int).Set(n)
	r := new(big.Int)
	for i := len(out) - 1; i >= 0; i-- {
		n.QuoRem(n, radix, r)
		out[i] = uint16(r.Uint64())
	}
}

// pow returns radix^e.
func pow(radix, e int) *big.Int {
	return new(big.Int).Exp(big.NewInt(int64(radix)), big.NewInt(int64(e)), nil)
}

// remBytes returns NUM(s) mod m, s being big-endian and a multiple of 4
// bytes long.
func remBytes(s []byte, m uint64) uint64 {
	var r uint64
	if len(s)%8 == 4 {
		r = uint64(binary.BigEndian.Uint32(s)) % m
		s = s[4:]
	}
	for ; len(s) > 0; s = s[8:] {
		r = bits.Rem64(r, binary.BigEndian.Uint64(s), m)
	}
	return r
}

// putUint writes n big-endian into all of dst, which is at most 8 bytes.
func putUint(dst []byte, n uint64) {
	for i := len(dst) - 1; i >= 0; i-- {
		dst[i] = byte(n)
		n >>= 8
	}
}

// mod returns x mod m in [0, m).
func mod(x, m int) int {
	return ((x % m) + m) % m
}
