package keys

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"
)

// gcmVectors are the AES-256 test cases 13–16 of McGrew and Viega, "The
// Galois/Counter Mode of Operation (GCM)", also in NIST's GCM validation.
var gcmVectors = []struct {
	name                         string
	key, nonce, plain, aad, want string // want is ciphertext || tag
}{
	{"13", "0000000000000000000000000000000000000000000000000000000000000000", "000000000000000000000000", "", "",
		"530f8afbc74536b9a963b4f1c4cb738b"},
	{"14", "0000000000000000000000000000000000000000000000000000000000000000", "000000000000000000000000",
		"00000000000000000000000000000000", "",
		"cea7403d4d606b6e074ec5d3baf39d18" + "d0d1c8a799996bf0265b98b5d48ab919"},
	{"15", "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888",
		"d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255", "",
		"522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad" +
			"b094dac5d93471bdec1a502270e3cc6c"},
	{"16", "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888",
		"d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
		"feedfacedeadbeeffeedfacedeadbeefabaddad2",
		"522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662" +
			"76fc6ece0f4e1768cddf8853bb2d551b"},
}

// TestGCMVectors feeds the published vectors through seal and open, the
// functions Wrap and Unwrap use.
func TestGCMVectors(t *testing.T) {
	for _, v := range gcmVectors {
		t.Run(v.name, func(t *testing.T) {
			key, nonce, plain, aad, want := unhex(t, v.key), unhex(t, v.nonce), unhex(t, v.plain), unhex(t, v.aad), unhex(t, v.want)
			a, err := newAEAD(key)
			if err != nil {
				t.Fatal(err)
			}
			got := seal(a, nonce, plain, aad)
			if !bytes.Equal(got, append(bytes.Clone(nonce), want...)) {
				t.Fatalf("seal = %x, want nonce || %x", got, want)
			}
			p, err := open(a, got, aad)
			if err != nil || !bytes.Equal(p, plain) {
				t.Fatalf("open = %x, %v", p, err)
			}
			got[len(got)-1] ^= 1
			if _, err := open(a, got, aad); err == nil {
				t.Fatal("open accepted a changed tag")
			}
		})
	}
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

func jsonMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzParse checks that no keyring file makes parse panic, and that what it
// accepts it writes back unchanged in meaning.
func FuzzParse(f *testing.F) {
	dir := f.TempDir()
	if err := Create(dir+"/k", "US"); err != nil {
		f.Fatal(err)
	}
	good, err := readFile(dir + "/k")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`{"version":2}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := parse(data)
		if err != nil {
			return
		}
		out, err := r.marshal()
		if err != nil {
			t.Fatal(err)
		}
		r2, err := parse(out)
		if err != nil {
			t.Fatalf("re-parse of marshalled keyring: %v", err)
		}
		if r2.current != r.current || len(r2.keks) != len(r.keks) || !bytes.Equal(r2.tokenKey, r.tokenKey) {
			t.Fatal("keyring changed through a round trip")
		}
	})
}

func readFile(path string) ([]byte, error) { return os.ReadFile(path) }
