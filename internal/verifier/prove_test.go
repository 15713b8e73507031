package verifier

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"
)

func TestProve(t *testing.T) {
	l := newTestLog(t, newKey(t, testOrigin))
	es := entries(t, 0, 700)
	l.add(t, es...)
	ctx := context.Background()
	for _, i := range []uint64{0, 255, 256, 511, 600, 699} {
		p, err := Prove(ctx, l.url(), l.key.verifier, i)
		if err != nil {
			t.Fatalf("Prove(%d): %v", i, err)
		}
		if p.Index != i || p.Size != 700 || !bytes.Equal(p.Entry, es[i]) {
			t.Fatalf("Prove(%d) = index %d size %d entry %q", i, p.Index, p.Size, p.Entry)
		}
		// A proof survives JSON, as a client receives it.
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		var q InclusionProof
		if err := json.Unmarshal(b, &q); err != nil {
			t.Fatal(err)
		}
		if err := VerifyInclusion(q, l.key.verifier); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Prove(ctx, l.url(), l.key.verifier, 700); err == nil {
		t.Fatal("proved an entry beyond the log")
	}
	if _, err := Prove(ctx, l.url(), newKey(t, testOrigin).verifier, 1); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("got %v, want a bad signature", err)
	}

	p, err := Prove(ctx, l.url(), l.key.verifier, 300)
	if err != nil {
		t.Fatal(err)
	}
	tampered := []func(p *InclusionProof){
		func(p *InclusionProof) { p.Index++ },
		func(p *InclusionProof) { p.Entry = es[301] },
		func(p *InclusionProof) { p.Entry = es[301]; p.LeafHash = nil },
		func(p *InclusionProof) { p.Proof[1] = bytes.Clone(p.Proof[1]); p.Proof[1][0] ^= 1 },
		func(p *InclusionProof) { p.Proof = p.Proof[1:] },
		func(p *InclusionProof) { p.Size-- },
	}
	for i, tamper := range tampered {
		q := p
		q.Proof = append([][]byte(nil), p.Proof...)
		tamper(&q)
		if q.LeafHash == nil {
			q.LeafHash = hashLeaf(q.Entry)
		}
		if err := VerifyInclusion(q, l.key.verifier); err == nil {
			t.Errorf("tampered proof %d verifies", i)
		}
	}
}
