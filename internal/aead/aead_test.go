package aead

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
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

// TestGCMVectors feeds the published vectors through Seal and Open, the
// functions the keyring and the vault encrypt with.
func TestGCMVectors(t *testing.T) {
	for _, v := range gcmVectors {
		t.Run(v.name, func(t *testing.T) {
			key, nonce, plain, aad, want := unhex(t, v.key), unhex(t, v.nonce), unhex(t, v.plain), unhex(t, v.aad), unhex(t, v.want)
			a, err := New(key)
			if err != nil {
				t.Fatal(err)
			}
			got := Seal(nil, a, nonce, plain, aad)
			if !bytes.Equal(got, append(bytes.Clone(nonce), want...)) {
				t.Fatalf("seal = %x, want nonce || %x", got, want)
			}
			p, err := Open(a, got, aad)
			if err != nil || !bytes.Equal(p, plain) {
				t.Fatalf("open = %x, %v", p, err)
			}
			got[len(got)-1] ^= 1
			if _, err := Open(a, got, aad); err == nil {
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

func TestOpenRefuses(t *testing.T) {
	a, err := New(bytes.Repeat([]byte{7}, KeySize))
	if err != nil {
		t.Fatal(err)
	}
	nonce := make([]byte, NonceSize)
	rand.Read(nonce)
	sealed := Seal(nil, a, nonce, []byte("secret"), []byte("aad"))
	for i := range sealed {
		c := bytes.Clone(sealed)
		c[i] ^= 0x80
		if _, err := Open(a, c, []byte("aad")); err != ErrOpen {
			t.Fatalf("byte %d changed: %v, want ErrOpen", i, err)
		}
	}
	if _, err := Open(a, sealed, []byte("other")); err != ErrOpen {
		t.Fatalf("other aad: %v", err)
	}
	if _, err := Open(a, sealed[:NonceSize+a.Overhead()-1], []byte("aad")); err != ErrOpen {
		t.Fatalf("short: %v", err)
	}
	if _, err := New(make([]byte, 16)); err == nil {
		t.Fatal("AES-128 key accepted")
	}
}
