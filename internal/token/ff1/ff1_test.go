package ff1

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"testing"
)

const alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"

const (
	key128 = "2B7E151628AED2A6ABF7158809CF4F3C"
	key192 = "2B7E151628AED2A6ABF7158809CF4F3CEF4359D8D580AA4F"
	key256 = "2B7E151628AED2A6ABF7158809CF4F3CEF4359D8D580AA4F7F036D6F04FC6A94"
)

// samples are the FF1 samples NIST publishes for SP 800-38G
// (FF1samples.pdf, Examples of FF1 with AES-128, -192 and -256).
var samples = []struct {
	name       string
	key        string
	radix      int
	tweak      string
	plaintext  string
	ciphertext string
}{
	{"Sample1", key128, 10, "", "0123456789", "2433477484"},
	{"Sample2", key128, 10, "39383736353433323130", "0123456789", "6124200773"},
	{"Sample3", key128, 36, "3737373770717273373737", "0123456789abcdefghi", "a9tv40mll9kdu509eum"},
	{"Sample4", key192, 10, "", "0123456789", "2830668132"},
	{"Sample5", key192, 10, "39383736353433323130", "0123456789", "2496655549"},
	{"Sample6", key192, 36, "3737373770717273373737", "0123456789abcdefghi", "xbj3kv35jrawxv32ysr"},
	{"Sample7", key256, 10, "", "0123456789", "6657667009"},
	{"Sample8", key256, 10, "39383736353433323130", "0123456789", "1001623463"},
	{"Sample9", key256, 36, "3737373770717273373737", "0123456789abcdefghi", "xs8a0azh2avyalyzuwd"},
}

func numerals(tb testing.TB, s string) []uint16 {
	tb.Helper()
	x := make([]uint16, len(s))
	for i, r := range s {
		n := strings.IndexRune(alphabet, r)
		if n < 0 {
			tb.Fatalf("no numeral for %q", r)
		}
		x[i] = uint16(n)
	}
	return x
}

func text(x []uint16) string {
	var b strings.Builder
	for _, n := range x {
		b.WriteByte(alphabet[n])
	}
	return b.String()
}

func unhex(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestNISTSamples(t *testing.T) {
	for _, s := range samples {
		t.Run(s.name, func(t *testing.T) {
			c, err := New(unhex(t, s.key), s.radix)
			if err != nil {
				t.Fatal(err)
			}
			tweak, pt, ct := unhex(t, s.tweak), numerals(t, s.plaintext), numerals(t, s.ciphertext)
			for _, path := range []struct {
				name string
				wide bool
			}{{"narrow", false}, {"wide", true}} {
				got, err := c.crypt(tweak, pt, false, path.wide)
				if err != nil {
					t.Fatalf("%s: encrypt: %v", path.name, err)
				}
				if text(got) != s.ciphertext {
					t.Errorf("%s: encrypt = %s, want %s", path.name, text(got), s.ciphertext)
				}
				got, err = c.crypt(tweak, ct, true, path.wide)
				if err != nil {
					t.Fatalf("%s: decrypt: %v", path.name, err)
				}
				if text(got) != s.plaintext {
					t.Errorf("%s: decrypt = %s, want %s", path.name, text(got), s.plaintext)
				}
			}
			// The exported methods take the narrow path for these lengths.
			if got, _ := c.Encrypt(tweak, pt); text(got) != s.ciphertext {
				t.Errorf("Encrypt = %s, want %s", text(got), s.ciphertext)
			}
			if got, _ := c.Decrypt(tweak, ct); text(got) != s.plaintext {
				t.Errorf("Decrypt = %s, want %s", text(got), s.plaintext)
			}
		})
	}
}

func TestNarrowPath(t *testing.T) {
	// The samples must exercise the uint64 arithmetic, or the comparison
	// with the math/big path above proves nothing.
	for _, s := range samples {
		n := len(s.plaintext)
		if _, _, ok := narrowPowers(s.radix, n/2, n-n/2); !ok {
			t.Errorf("%s does not take the narrow path", s.name)
		}
	}
	if _, _, ok := narrowPowers(MaxRadix, 4, 4); ok {
		t.Error("radix 2^16, 8 numerals takes the narrow path, but 2^64 overflows")
	}
	if _, _, ok := narrowPowers(2, 63, 63); !ok {
		t.Error("radix 2, 126 numerals does not take the narrow path, but 2^63 fits")
	}
}

func TestNew(t *testing.T) {
	key := make([]byte, 32)
	for _, tt := range []struct {
		key   []byte
		radix int
		ok    bool
	}{
		{key[:16], 10, true},
		{key[:24], 10, true},
		{key, 10, true},
		{key, 2, true},
		{key, MaxRadix, true},
		{key[:15], 10, false},
		{key[:31], 10, false},
		{nil, 10, false},
		{key, 1, false},
		{key, 0, false},
		{key, -10, false},
		{key, MaxRadix + 1, false},
	} {
		_, err := New(tt.key, tt.radix)
		if (err == nil) != tt.ok {
			t.Errorf("New(%d-byte key, %d): err = %v, want ok %v", len(tt.key), tt.radix, err, tt.ok)
		}
	}
}

func TestMinLen(t *testing.T) {
	for _, tt := range []struct{ radix, min int }{
		{2, 20},   // 2^20 = 1,048,576
		{10, 6},   // 10^6
		{16, 5},   // 16^5 = 1,048,576
		{36, 4},   // 36^4 = 1,679,616
		{100, 3},  // 100^3
		{1000, 2}, // 1000^2
		{1001, 2}, // never less than 2
		{MaxRadix, 2},
	} {
		c, err := New(make([]byte, 16), tt.radix)
		if err != nil {
			t.Fatal(err)
		}
		if c.MinLen() != tt.min {
			t.Errorf("radix %d: MinLen = %d, want %d", tt.radix, c.MinLen(), tt.min)
		}
	}
}

func TestDomain(t *testing.T) {
	c, err := New(make([]byte, 16), 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name  string
		tweak []byte
		x     []uint16
		ok    bool
	}{
		{"min", nil, make([]uint16, 6), true},
		{"max", nil, make([]uint16, MaxLen), true},
		{"max tweak", make([]byte, MaxTweakLen), make([]uint16, 6), true},
		{"short", nil, make([]uint16, 5), false},
		{"empty", nil, nil, false},
		{"long", nil, make([]uint16, MaxLen+1), false},
		{"long tweak", make([]byte, MaxTweakLen+1), make([]uint16, 6), false},
		{"numeral = radix", nil, []uint16{0, 1, 2, 3, 4, 10}, false},
		{"numeral > radix", nil, []uint16{65535, 1, 2, 3, 4, 5}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, eerr := c.Encrypt(tt.tweak, tt.x)
			_, derr := c.Decrypt(tt.tweak, tt.x)
			if (eerr == nil) != tt.ok || (derr == nil) != tt.ok {
				t.Errorf("Encrypt: %v, Decrypt: %v, want ok %v", eerr, derr, tt.ok)
			}
		})
	}
}

func TestKeyNotShown(t *testing.T) {
	key := bytes.Repeat([]byte{0xAB}, 32)
	c, err := New(key, 10)
	if err != nil {
		t.Fatal(err)
	}
	s := fmt.Sprintf("%v %+v %s", c, c, c)
	if strings.Contains(s, "171") || strings.Contains(strings.ToLower(s), "abab") {
		t.Errorf("key visible in %q", s)
	}
	_, err = New(key[:5], 10)
	if err != nil && strings.Contains(err.Error(), "171") {
		t.Errorf("key visible in %q", err)
	}
}

// TestLong round-trips inputs that take the math/big path through the
// exported methods, and checks the paths agree where both apply.
func TestLong(t *testing.T) {
	c, err := New(unhex(t, key256), MaxRadix)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{2, 3, 7, 8, 9, 33, 100, MaxLen} {
		x := make([]uint16, n)
		for i := range x {
			x[i] = uint16(i*7919 + n)
		}
		ct, err := c.Encrypt([]byte("tweak"), x)
		if err != nil {
			t.Fatal(err)
		}
		wide, err := c.crypt([]byte("tweak"), x, false, true)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ct, wide) {
			t.Errorf("n=%d: narrow and wide paths disagree", n)
		}
		if slices.Equal(ct, x) && n > 2 {
			t.Errorf("n=%d: ciphertext equals plaintext", n)
		}
		pt, err := c.Decrypt([]byte("tweak"), ct)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(pt, x) {
			t.Errorf("n=%d: round trip failed", n)
		}
	}
}

func TestTweakMatters(t *testing.T) {
	c, err := New(unhex(t, key128), 10)
	if err != nil {
		t.Fatal(err)
	}
	x := numerals(t, "0123456789")
	a, _ := c.Encrypt([]byte("phone"), x)
	b, _ := c.Encrypt([]byte("phonf"), x)
	if slices.Equal(a, b) {
		t.Error("different tweaks give the same ciphertext")
	}
}

func FuzzFF1(f *testing.F) {
	for _, s := range samples {
		f.Add(unhex(f, s.key), uint16(s.radix), unhex(f, s.tweak), []byte(s.plaintext))
	}
	f.Add(make([]byte, 32), uint16(0), []byte{}, bytes.Repeat([]byte{0xff}, 40))
	f.Fuzz(func(t *testing.T, key []byte, radix16 uint16, tweak, raw []byte) {
		// radix 0 stands for 2^16; keys are cut or padded to an AES size.
		radix := int(radix16)
		if radix < 2 {
			radix = MaxRadix
		}
		key = append(key, make([]byte, 32)...)[:16+8*(len(key)%3)]
		c, err := New(key, radix)
		if err != nil {
			t.Fatal(err)
		}
		x := make([]uint16, len(raw)/2)
		for i := range x {
			x[i] = uint16((int(raw[2*i])<<8 | int(raw[2*i+1])) % radix)
		}
		ct, err := c.Encrypt(tweak, x)
		if err != nil {
			if len(x) >= c.MinLen() && len(x) <= MaxLen && len(tweak) <= MaxTweakLen {
				t.Fatalf("Encrypt of a valid input: %v", err)
			}
			return
		}
		if len(ct) != len(x) {
			t.Fatalf("ciphertext has %d numerals, want %d", len(ct), len(x))
		}
		for i, n := range ct {
			if int(n) >= radix {
				t.Fatalf("numeral %d of ciphertext is %d, radix %d", i, n, radix)
			}
		}
		pt, err := c.Decrypt(tweak, ct)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(pt, x) {
			t.Fatal("Decrypt(Encrypt(x)) != x")
		}
		wide, err := c.crypt(tweak, x, false, true)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(wide, ct) {
			t.Fatal("narrow and wide paths disagree")
		}
	})
}

func BenchmarkEncrypt(b *testing.B) {
	c, err := New(unhex(b, key256), 10)
	if err != nil {
		b.Fatal(err)
	}
	x := numerals(b, "5550109999")
	tweak := []byte("phone")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Encrypt(tweak, x); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncryptLong(b *testing.B) {
	c, err := New(unhex(b, key256), 10)
	if err != nil {
		b.Fatal(err)
	}
	x := make([]uint16, 64)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Encrypt(nil, x); err != nil {
			b.Fatal(err)
		}
	}
}
