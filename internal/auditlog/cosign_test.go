package auditlog

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/custos/custos/internal/witness"
	fnote "github.com/transparency-dev/formats/note"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

func TestConsistencyProof(t *testing.T) {
	l := openLog(t, testConfig(t, t.TempDir()))
	ctx := context.Background()
	const n = 600
	recordInGroups(t, l, n, 41)
	cp := waitCheckpoint(t, l, n)
	leaves := readAll(t, l, cp.Size)
	sizes := []uint64{1, 2, 3, 7, 8, 255, 256, 257, 300, 511, 512, 513, cp.Size}
	for _, from := range sizes {
		for _, to := range sizes {
			if from > to {
				continue
			}
			p, err := l.ConsistencyProof(ctx, from, to)
			if err != nil {
				t.Fatalf("ConsistencyProof(%d, %d): %v", from, to, err)
			}
			r1, r2 := rootOf(t, leaves[:from]), rootOf(t, leaves[:to])
			if err := proof.VerifyConsistency(rfc6962.DefaultHasher, from, to, p, r1, r2); err != nil {
				t.Fatalf("proof from %d to %d does not verify: %v", from, to, err)
			}
			if from > 1 && from < to {
				if err := proof.VerifyConsistency(rfc6962.DefaultHasher, from-1, to, p, rootOf(t, leaves[:from-1]), r2); err == nil {
					t.Fatalf("proof from %d to %d verifies from %d", from, to, from-1)
				}
			}
		}
	}
	if p, err := l.ConsistencyProof(ctx, 0, cp.Size); err != nil || len(p) != 0 {
		t.Errorf("ConsistencyProof(0, %d) = %d hashes, %v; want none", cp.Size, len(p), err)
	}
	for _, c := range []struct{ from, to uint64 }{{5, 4}, {1, cp.Size + 1000}} {
		if _, err := l.ConsistencyProof(ctx, c.from, c.to); err == nil {
			t.Errorf("ConsistencyProof(%d, %d) succeeded", c.from, c.to)
		}
	}
}

// cosign returns a witness's signature lines on checkpoint and the
// witness's verifier.
func cosign(t testing.TB, checkpoint []byte) ([][]byte, note.Verifier) {
	t.Helper()
	skey, vkey, err := witness.GenerateKey("witness.test")
	if err != nil {
		t.Fatal(err)
	}
	s, err := fnote.NewSignerForCosignatureV1(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := fnote.NewVerifierForCosignatureV1(vkey)
	if err != nil {
		t.Fatal(err)
	}
	text, _, _ := bytes.Cut(checkpoint, []byte("\n\n"))
	signed, err := note.Sign(&note.Note{Text: string(text) + "\n"}, s)
	if err != nil {
		t.Fatal(err)
	}
	return [][]byte{signed[len(text)+2:]}, v
}

func getCheckpoint(t testing.TB, h http.Handler) []byte {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/checkpoint", nil))
	if w.Code != 200 {
		t.Fatalf("GET /checkpoint = %d", w.Code)
	}
	if w.Header().Get("Last-Modified") != "" {
		t.Error("checkpoint served with Last-Modified")
	}
	b, _ := io.ReadAll(w.Body)
	return b
}

func TestCosignedCheckpoint(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.CosignedHold = 500 * time.Millisecond
	l := openLog(t, cfg)
	// The hold runs on a clock the test moves, so a slow checkpoint cannot
	// outlast it.
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	l.now = func() time.Time { return time.Unix(0, clock.Load()) }
	h := l.Handler()
	ctx := context.Background()
	if _, err := l.Record(ctx, entry(0)); err != nil {
		t.Fatal(err)
	}
	waitCheckpoint(t, l, 1)
	cp1, err := l.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := getCheckpoint(t, h); !bytes.Equal(got, cp1) {
		t.Fatalf("served %q, want the bare checkpoint %q", got, cp1)
	}

	// Cosignatures are served attached to their checkpoint, and verify.
	sigs1, wv := cosign(t, cp1)
	if err := l.SetCosignatures(cp1, sigs1); err != nil {
		t.Fatal(err)
	}
	_, lv := testKeys(t)
	served := getCheckpoint(t, h)
	if !bytes.Equal(served, witness.AttachCosignatures(cp1, sigs1...)) {
		t.Fatalf("served %q", served)
	}
	n, err := note.Open(served, note.VerifierList(lv, wv))
	if err != nil || len(n.Sigs) != 2 {
		t.Fatalf("served checkpoint: %v sigs, %v", len(n.Sigs), err)
	}

	// A newer checkpoint without cosignatures: the cosigned one is served
	// for the hold, then the newer one, bare.
	if _, err := l.Record(ctx, entry(1)); err != nil {
		t.Fatal(err)
	}
	waitCheckpoint(t, l, 2)
	cp2, _ := l.Checkpoint(ctx)
	if got := getCheckpoint(t, h); !bytes.Equal(got, served) {
		t.Fatalf("within the hold, served %q, want the cosigned checkpoint", got)
	}
	clock.Add(int64(cfg.CosignedHold))
	if got := getCheckpoint(t, h); !bytes.Equal(got, cp2) {
		t.Fatalf("after the hold, served %q, want the newest checkpoint bare", got)
	}

	// Once the newer one was served, the older one never is again.
	if err := l.SetCosignatures(cp1, sigs1); err != nil {
		t.Fatal(err)
	}
	if got := getCheckpoint(t, h); !bytes.Equal(got, cp2) {
		t.Fatalf("served %q after the newer checkpoint, want it bare", got)
	}
	sigs2, _ := cosign(t, cp2)
	if err := l.SetCosignatures(cp2, sigs2); err != nil {
		t.Fatal(err)
	}
	if got := getCheckpoint(t, h); !bytes.Equal(got, witness.AttachCosignatures(cp2, sigs2...)) {
		t.Fatalf("served %q, want the newest checkpoint cosigned", got)
	}
	// A smaller checkpoint set later does not replace it.
	if err := l.SetCosignatures(cp1, sigs1); err != nil {
		t.Fatal(err)
	}
	if got := getCheckpoint(t, h); !bytes.Equal(got, witness.AttachCosignatures(cp2, sigs2...)) {
		t.Fatalf("served %q after an older SetCosignatures", got)
	}

	for _, bad := range [][]byte{nil, []byte("custos.test/audit\n1\n"), []byte("other/log\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n— x y\n")} {
		if err := l.SetCosignatures(bad, sigs1); err == nil {
			t.Errorf("SetCosignatures(%q) succeeded", bad)
		}
	}
}
