package verifier

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/custos/custos"
	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
)

// fuzzKey is a fixed log key, made for these tests only, so that seeds
// stay meaningful across runs.
const (
	fuzzSKey = "PRIVATE+KEY+custos.test/log+ea3bbafb+AYWMPt1VphP/gSp65u+sxdLjRTYD0wCAZvjJMy4KKMiN"
	fuzzVKey = "custos.test/log+ea3bbafb+ATXy1e5GSyS4tNDLbeT8op4LDINBe42sC4qjUtjMZhsL"
)

func fuzzKeys(t testing.TB) testKey {
	t.Helper()
	k := testKey{skey: fuzzSKey, vkey: fuzzVKey}
	var err error
	if k.signer, err = note.NewSigner(fuzzSKey); err != nil {
		t.Fatal(err)
	}
	if k.verifier, err = note.NewVerifier(fuzzVKey); err != nil {
		t.Fatal(err)
	}
	return k
}

func signedCheckpoint(t testing.TB, k testKey, size uint64, root []byte) []byte {
	t.Helper()
	cp, err := note.Sign(&note.Note{Text: string(log.Checkpoint{Origin: testOrigin, Size: size, Hash: root}.Marshal())}, k.signer)
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

// vectorState is the state after verifying the first n vector leaves.
func vectorState(t testing.TB, k testKey, n int) []byte {
	t.Helper()
	rng := rangeFactory.NewEmptyRange(0)
	for _, h := range vectorLeafHashes[:n] {
		if err := rng.Append(unhex(t, h), nil); err != nil {
			t.Fatal(err)
		}
	}
	cp, err := openCheckpoint(signedCheckpoint(t, k, uint64(n), rangeRoot(rng)), k.verifier, testOrigin, nil)
	if err != nil {
		t.Fatal(err)
	}
	return marshalState(state{cp: cp, rng: rng})
}

func FuzzParseState(f *testing.F) {
	k := fuzzKeys(f)
	for n := range 9 {
		f.Add(vectorState(f, k, n))
	}
	f.Add([]byte(`{"version":1,"checkpoint":"","range":[]}`))
	f.Add([]byte(`{"version":2}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := parseState(data, k.verifier, testOrigin)
		if err != nil {
			return
		}
		if len(data) > maxStateSize {
			t.Fatalf("accepted a state of %d bytes", len(data))
		}
		if !bytes.Equal(rangeRoot(s.rng), s.cp.Root) {
			t.Fatal("accepted a range that does not hash to the checkpoint's root")
		}
		again, err := parseState(marshalState(s), k.verifier, testOrigin)
		if err != nil || again.cp.Size != s.cp.Size || !bytes.Equal(again.cp.Root, s.cp.Root) {
			t.Fatalf("state does not round-trip: %v", err)
		}
	})
}

func FuzzCheckpoint(f *testing.F) {
	k := fuzzKeys(f)
	w := newKey(f, "witness.test")
	for n := range 9 {
		cp := signedCheckpoint(f, k, uint64(n), unhex(f, vectorRoots[n]))
		f.Add(cp)
		f.Add(cosign(f, cp, w))
	}
	f.Add([]byte("custos.test/log\n1\nAAAA\n\n— custos.test/log AAAA\n"))
	wv := witnessVerifier(f, w)
	f.Fuzz(func(t *testing.T, raw []byte) {
		cp, err := openCheckpoint(raw, k.verifier, testOrigin, []note.Verifier{wv})
		if err != nil {
			return
		}
		if len(raw) > custos.MaxCheckpointSize || len(cp.Root) != hashSize || cp.Origin != testOrigin || len(cp.Witnesses) > 1 {
			t.Fatalf("accepted %q as %+v", raw, cp)
		}
		body := log.Checkpoint{Origin: cp.Origin, Size: cp.Size, Hash: cp.Root}.Marshal()
		if !bytes.HasPrefix(raw, body) {
			t.Fatalf("checkpoint %q parsed as %q", raw, body)
		}
	})
}

func FuzzEntryBundle(f *testing.F) {
	var b []byte
	for _, e := range vectorLeaves {
		leaf := unhex(f, e)
		b = binary.BigEndian.AppendUint16(b, uint16(len(leaf)))
		b = append(b, leaf...)
		f.Add(bytes.Clone(b))
	}
	for _, e := range entries(f, 0, 3) {
		f.Add(append(binary.BigEndian.AppendUint16(nil, uint16(len(e))), e...))
	}
	f.Add([]byte{0xff, 0xff, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		es, err := parseBundle(data)
		if err != nil {
			return
		}
		if len(es) > 256 {
			t.Fatalf("accepted %d entries", len(es))
		}
		var again []byte
		for _, e := range es {
			again = binary.BigEndian.AppendUint16(again, uint16(len(e)))
			again = append(again, e...)
		}
		if !bytes.Equal(again, data) {
			t.Fatal("bundle does not round-trip")
		}
	})
}
