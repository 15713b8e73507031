package verifier

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

func (l *testLog) config(state []byte) Config {
	return Config{LogURL: l.url(), Verifier: l.key.verifier, State: state}
}

func verify(t testing.TB, cfg Config) (Result, error) {
	t.Helper()
	return Verify(context.Background(), cfg)
}

func TestVerifyGrowingLog(t *testing.T) {
	l := newTestLog(t, newKey(t, testOrigin))
	l.add(t, entries(t, 0, 300)...)
	var r Report
	cfg := l.config(nil)
	cfg.Each = r.Add
	var progress uint64
	cfg.Progress = func(done, total uint64) {
		if total != 300 || done < progress {
			t.Errorf("progress %d of %d after %d", done, total, progress)
		}
		progress = done
	}
	res, err := verify(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Size != 300 || res.Entries != 300 || res.From != 0 || r.Entries != 300 || progress != 300 {
		t.Fatalf("got size %d, %d entries from %d, report of %d, progress %d; want 300 from 0", res.Size, res.Entries, res.From, r.Entries, progress)
	}

	l.add(t, entries(t, 300, 600)...)
	l.served()
	r = Report{}
	cfg = l.config(res.NewState)
	cfg.Each = r.Add
	res2, err := verify(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res2.Size != 900 || res2.Entries != 600 || res2.From != 300 || r.Entries != 600 {
		t.Fatalf("got size %d, %d entries from %d, report of %d; want 900, 600 from 300", res2.Size, res2.Entries, res2.From, r.Entries)
	}
	// Bundles 0..3 cover 0..1023: bundle 0 is already verified, 1, 2 and
	// the partial 3 are new.
	var bundles []string
	for _, p := range l.served() {
		if strings.HasPrefix(p, "/tile/entries/") {
			bundles = append(bundles, p)
		}
	}
	slices.Sort(bundles)
	want := []string{"/tile/entries/001", "/tile/entries/002", "/tile/entries/003.p/132"}
	if !slices.Equal(bundles, want) {
		t.Fatalf("fetched bundles %q, want %q", bundles, want)
	}

	// Nothing new: nothing to download.
	l.served()
	res3, err := verify(t, l.config(res2.NewState))
	if err != nil {
		t.Fatal(err)
	}
	if res3.Entries != 0 || len(l.served()) != 1 {
		t.Fatalf("verified %d entries again", res3.Entries)
	}
}

func TestVerifyChangedEntry(t *testing.T) {
	l := newTestLog(t, newKey(t, testOrigin))
	l.add(t, entries(t, 0, 300)...)
	b := l.readFile(t, "tile/entries/001.p/44")
	// Entry 256+5: skip five length-prefixed entries, change a byte of the
	// sixth.
	o := 0
	for range 5 {
		o += 2 + int(b[o])<<8 + int(b[o+1])
	}
	b[o+20] ^= 1
	l.writeFile(t, "tile/entries/001.p/44", b)
	_, err := verify(t, l.config(nil))
	mustContain(t, err, "entry 261 changed or missing: leaf hash mismatch")
	var ee *EntryError
	if !errors.As(err, &ee) || ee.Index != 261 || !errors.Is(err, ErrChanged) {
		t.Fatalf("got %v, want an EntryError for 261", err)
	}
}

func TestVerifyTruncated(t *testing.T) {
	l := newTestLog(t, newKey(t, testOrigin))
	l.add(t, entries(t, 0, 100)...)
	old := l.readFile(t, "checkpoint")
	res, err := verify(t, l.config(nil))
	if err != nil {
		t.Fatal(err)
	}
	l.add(t, entries(t, 100, 300)...)
	res2, err := verify(t, l.config(res.NewState))
	if err != nil {
		t.Fatal(err)
	}

	t.Run("checkpoint rolled back", func(t *testing.T) {
		l.serveCheckpoint(old)
		defer l.serveCheckpoint(nil)
		_, err := verify(t, l.config(res2.NewState))
		mustContain(t, err, "checkpoint rolled back from 400 to 100")
		if !errors.Is(err, ErrRolledBack) {
			t.Fatal(err)
		}
	})
	t.Run("last bundle deleted", func(t *testing.T) {
		if err := os.Remove(filepath.Join(l.dir, "tile/entries/001.p/144")); err != nil {
			t.Fatal(err)
		}
		_, err := verify(t, l.config(res.NewState))
		mustContain(t, err, "entry 256 changed or missing: tile/entries/001")
		if !errors.Is(err, ErrChanged) {
			t.Fatal(err)
		}
	})
}

func TestVerifyFork(t *testing.T) {
	key := newKey(t, testOrigin)
	a, b := newTestLog(t, key), newTestLog(t, key)
	a.add(t, entries(t, 0, 300)...)
	b.add(t, entries(t, 1, 300)...)
	resA, err := verify(t, a.config(nil))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := verify(t, b.config(nil)); err != nil {
		t.Fatal(err)
	}
	_, err = verify(t, b.config(resA.NewState))
	mustContain(t, err, "fork: consistency proof from 300 to 300 fails")

	b.add(t, entries(t, 1000, 10)...)
	_, err = verify(t, b.config(resA.NewState))
	mustContain(t, err, "fork: consistency proof from 300 to 310 fails")
	if !errors.Is(err, ErrFork) {
		t.Fatal(err)
	}
}

func TestVerifyBadSignature(t *testing.T) {
	l := newTestLog(t, newKey(t, testOrigin))
	l.add(t, entries(t, 0, 10)...)
	other := newKey(t, testOrigin)
	cfg := l.config(nil)
	cfg.Verifier = other.verifier
	_, err := verify(t, cfg)
	mustContain(t, err, "bad signature")

	// The right key name and hash with a signature that does not verify.
	cp := l.readFile(t, "checkpoint")
	i := bytes.LastIndex(cp, []byte(" ")) + 10
	flipBase64(cp, i)
	l.serveCheckpoint(cp)
	_, err = verify(t, l.config(nil))
	mustContain(t, err, "bad signature")
	if !errors.Is(err, ErrBadSignature) {
		t.Fatal(err)
	}

	// A checkpoint signed for another origin.
	l.serveCheckpoint(nil)
	cfg = l.config(nil)
	cfg.Origin = "custos.test/other"
	_, err = verify(t, cfg)
	mustContain(t, err, `checkpoint origin is "custos.test/log", want "custos.test/other"`)
}

func TestVerifyUnparsableEntry(t *testing.T) {
	l := newTestLog(t, newKey(t, testOrigin))
	es := entries(t, 0, 10)
	es[7] = append([]byte(" "), es[7]...)
	l.add(t, es...)
	var r Report
	cfg := l.config(nil)
	cfg.Each = r.Add
	_, err := verify(t, cfg)
	mustContain(t, err, "entry 7 does not parse: audit entry is not in canonical encoding")
	var ee *EntryError
	if !errors.As(err, &ee) || ee.Index != 7 || !errors.Is(err, ErrUnparsable) {
		t.Fatalf("got %v, want an EntryError for 7", err)
	}
}

func TestVerifyWitnesses(t *testing.T) {
	l := newTestLog(t, newKey(t, testOrigin))
	l.add(t, entries(t, 0, 10)...)
	w1, w2 := newKey(t, "witness-1.test"), newKey(t, "witness-2.test")
	cp := cosign(t, l.readFile(t, "checkpoint"), w1)
	l.serveCheckpoint(cp)

	cfg := l.config(nil)
	cfg.Witnesses = []note.Verifier{witnessVerifier(t, w1), witnessVerifier(t, w2)}
	cfg.Quorum = 1
	res, err := verify(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Witnesses, []string{"witness-1.test"}) {
		t.Fatalf("cosigned by %q", res.Witnesses)
	}
	cfg.Quorum = 2
	_, err = verify(t, cfg)
	mustContain(t, err, "witness quorum not met: 1 of 2")

	// A cosignature that does not verify does not count.
	bad := cosign(t, l.readFile(t, "checkpoint"), w2)
	flipBase64(bad, len(bad)-10)
	l.serveCheckpoint(bad)
	cfg.Quorum = 1
	_, err = verify(t, cfg)
	mustContain(t, err, "witness quorum not met: 0 of 1")

	l.serveCheckpoint(cosign(t, cp, w2))
	cfg.Quorum = 2
	if _, err := verify(t, cfg); err != nil {
		t.Fatal(err)
	}
	// The same witness twice is one witness.
	twice := cosignAt(t, cp, w1, 1_700_000_000)
	l.serveCheckpoint(twice)
	_, err = verify(t, cfg)
	mustContain(t, err, "witness quorum not met: 1 of 2")
	cfg.Quorum = 1
	if _, err := verify(t, cfg); err != nil {
		t.Fatalf("hand-made cosignature: %v", err)
	}
}

func TestVerifyState(t *testing.T) {
	l := newTestLog(t, newKey(t, testOrigin))
	l.add(t, entries(t, 0, 5)...)
	res, err := verify(t, l.config(nil))
	if err != nil {
		t.Fatal(err)
	}
	var f stateFile
	if err := json.Unmarshal(res.NewState, &f); err != nil {
		t.Fatal(err)
	}
	bad := func(change func(f *stateFile)) []byte {
		g := f
		g.Range = append([][]byte(nil), f.Range...)
		change(&g)
		b, err := json.Marshal(g)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, c := range []struct {
		state []byte
		want  string
	}{
		{bad(func(f *stateFile) { f.Range[1] = f.Range[0] }), "state range does not hash to its checkpoint's root"},
		{bad(func(f *stateFile) { f.Range = f.Range[1:] }), "state range has 1 hashes, want 2"},
		{bad(func(f *stateFile) { f.Version = 2 }), "state version 2, want 1"},
		{bad(func(f *stateFile) { f.Checkpoint = strings.Replace(f.Checkpoint, "\n5\n", "\n6\n", 1) }), "state checkpoint: bad signature"},
		{[]byte(`{"version":1,"extra":1}`), "malformed state"},
		{append(bytes.Clone(res.NewState), "{}"...), "data after the object"},
	} {
		_, err := verify(t, l.config(c.state))
		mustContain(t, err, c.want)
	}
}

func TestVerifyEmptyLog(t *testing.T) {
	l := newTestLog(t, newKey(t, testOrigin))
	l.add(t)
	res, err := verify(t, l.config(nil))
	if err != nil {
		t.Fatal(err)
	}
	if res.Size != 0 {
		t.Fatalf("size %d", res.Size)
	}
	l.add(t, entries(t, 0, 3)...)
	if res, err = verify(t, l.config(res.NewState)); err != nil || res.Entries != 3 {
		t.Fatalf("verified %d entries, %v", res.Entries, err)
	}
}

func TestVerifyStateFromOtherLog(t *testing.T) {
	a, b := newTestLog(t, newKey(t, testOrigin)), newTestLog(t, newKey(t, testOrigin))
	a.add(t, entries(t, 0, 3)...)
	b.add(t, entries(t, 0, 3)...)
	res, err := verify(t, a.config(nil))
	if err != nil {
		t.Fatal(err)
	}
	_, err = verify(t, b.config(res.NewState))
	mustContain(t, err, "state checkpoint: bad signature")
}

// flipBase64 changes the base64 character at b[i] into another one.
func flipBase64(b []byte, i int) {
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
}

func hashLeaf(b []byte) []byte { return rfc6962.DefaultHasher.HashLeaf(b) }

func TestVerifyMalformedBundle(t *testing.T) {
	l := newTestLog(t, newKey(t, testOrigin))
	l.add(t, entries(t, 0, 300)...)
	orig := l.readFile(t, "tile/entries/001.p/44")
	extra := append(bytes.Clone(orig), 0, 1, 'x')
	l.writeFile(t, "tile/entries/001.p/44", extra)
	_, err := verify(t, l.config(nil))
	mustContain(t, err, "entry 256 changed or missing: tile/entries/001.p/44: malformed: 45 entries, want 44")

	l.writeFile(t, "tile/entries/001.p/44", orig[:len(orig)-1])
	_, err = verify(t, l.config(nil))
	mustContain(t, err, "entry 256 changed or missing: tile/entries/001.p/44: malformed: entry 43 of the bundle is truncated")
}
