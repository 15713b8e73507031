package verifier

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api/layout"
	"github.com/transparency-dev/tessera/client"
	"golang.org/x/mod/sumdb/note"
)

// The RFC 6962 test vectors of the certificate-transparency project (also
// in github.com/transparency-dev/merkle's tests): eight leaves, the hashes
// of the leaves, the roots of every prefix, and inclusion and consistency
// proofs.
var (
	vectorLeaves     = []string{"", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"}
	vectorLeafHashes = []string{
		"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
		"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
		"0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
		"07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
		"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
		"4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
		"b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
		"46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
	}
	// vectorRoots[n] is the root of the tree of the first n leaves.
	vectorRoots = []string{
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
		"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
		"aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
		"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
		"4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
		"76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
		"ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
		"5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
	}
	vectorInclusion = []struct {
		index, size uint64 // leaf index from 0
		proof       []string
	}{
		{0, 1, nil},
		{0, 8, []string{"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7", "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e", "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"}},
		{5, 8, []string{"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b", "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0", "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
		{2, 3, []string{"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"}},
		{1, 5, []string{"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d", "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e", "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"}},
	}
	vectorConsistency = []struct {
		size1, size2 uint64
		proof        []string
	}{
		{1, 8, []string{"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7", "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e", "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"}},
		{6, 8, []string{"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a", "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0", "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
		{2, 5, []string{"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e", "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"}},
		{6, 7, []string{"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a", "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f", "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
	}
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func unhexAll(t testing.TB, ss []string) [][]byte {
	var out [][]byte
	for _, s := range ss {
		out = append(out, unhex(t, s))
	}
	return out
}

// staticLog serves the first n vector leaves as a tlog-tiles log, built by
// hand, with a checkpoint of the given root signed by key.
func staticLog(t testing.TB, key testKey, n int, root []byte) *httptest.Server {
	t.Helper()
	var bundle, tile []byte
	for _, l := range vectorLeaves[:n] {
		leaf := unhex(t, l)
		bundle = binary.BigEndian.AppendUint16(bundle, uint16(len(leaf)))
		bundle = append(bundle, leaf...)
		tile = append(tile, rfc6962.DefaultHasher.HashLeaf(leaf)...)
	}
	cp, err := note.Sign(&note.Note{Text: string(log.Checkpoint{Origin: testOrigin, Size: uint64(n), Hash: root}.Marshal())}, key.signer)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"/log/checkpoint":                         cp,
		"/log/" + layout.EntriesPath(0, uint8(n)): bundle,
		"/log/" + layout.TilePath(0, 0, uint8(n)): tile,
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(b)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestRFC6962Vectors sends the vector leaves through Verify: the rebuilt
// tree must have the published root for every prefix, and a wrong root
// must be caught. The leaves are not audit entries, so a run whose root
// matches ends with entry 0 not parsing.
func TestRFC6962Vectors(t *testing.T) {
	key := newKey(t, testOrigin)
	for i, l := range vectorLeaves {
		if got := rfc6962.DefaultHasher.HashLeaf(unhex(t, l)); !bytes.Equal(got, unhex(t, vectorLeafHashes[i])) {
			t.Errorf("leaf %d hashes to %x", i, got)
		}
	}
	for n := 0; n <= len(vectorLeaves); n++ {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			srv := staticLog(t, key, n, unhex(t, vectorRoots[n]))
			_, err := Verify(context.Background(), Config{LogURL: srv.URL + "/log", Verifier: key.verifier})
			if n == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrUnparsable) {
				t.Fatalf("got %v, want entry 0 not to parse", err)
			}
			wrong := unhex(t, vectorRoots[n-1])
			srv = staticLog(t, key, n, wrong)
			_, err = Verify(context.Background(), Config{LogURL: srv.URL + "/log", Verifier: key.verifier})
			if !errors.Is(err, ErrChanged) {
				t.Fatalf("with a wrong root got %v, want a changed entry", err)
			}
		})
	}
}

// TestProofVectors builds proofs from hash tiles as Verify and Prove do and
// compares them with the published ones.
func TestProofVectors(t *testing.T) {
	key := newKey(t, testOrigin)
	ctx := context.Background()
	for _, v := range vectorInclusion {
		srv := staticLog(t, key, int(v.size), unhex(t, vectorRoots[v.size]))
		f, err := newFetcher(srv.URL+"/log/", nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		pb, _ := client.NewProofBuilder(ctx, v.size, f.tile)
		got, err := pb.InclusionProof(ctx, v.index)
		if err != nil {
			t.Fatal(err)
		}
		want := unhexAll(t, v.proof)
		if !equalHashes(got, want) {
			t.Errorf("inclusion of %d in %d: got %x, want %x", v.index, v.size, got, want)
		}
		leaf := unhex(t, vectorLeafHashes[v.index])
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, v.index, v.size, leaf, want, unhex(t, vectorRoots[v.size])); err != nil {
			t.Errorf("inclusion of %d in %d: %v", v.index, v.size, err)
		}
		p, err := Prove(ctx, srv.URL+"/log/", key.verifier, v.index)
		if err != nil {
			t.Fatal(err)
		}
		if !equalHashes(p.Proof, want) || !bytes.Equal(p.LeafHash, leaf) {
			t.Errorf("Prove(%d) in %d: got %x, want %x", v.index, v.size, p.Proof, want)
		}
	}
	for _, v := range vectorConsistency {
		srv := staticLog(t, key, int(v.size2), unhex(t, vectorRoots[v.size2]))
		f, _ := newFetcher(srv.URL+"/log/", nil, 0)
		pb, _ := client.NewProofBuilder(ctx, v.size2, f.tile)
		got, err := pb.ConsistencyProof(ctx, v.size1, v.size2)
		if err != nil {
			t.Fatal(err)
		}
		want := unhexAll(t, v.proof)
		if !equalHashes(got, want) {
			t.Errorf("consistency %d to %d: got %x, want %x", v.size1, v.size2, got, want)
		}
		a := Checkpoint{Size: v.size1, Root: unhex(t, vectorRoots[v.size1])}
		b := Checkpoint{Size: v.size2, Root: unhex(t, vectorRoots[v.size2])}
		if err := consistent(ctx, f, a, b); err != nil {
			t.Errorf("consistency %d to %d: %v", v.size1, v.size2, err)
		}
		a.Root = unhex(t, vectorRoots[v.size1-1])
		if err := consistent(ctx, f, a, b); !errors.Is(err, ErrFork) {
			t.Errorf("consistency %d to %d from a wrong root: got %v, want a fork", v.size1, v.size2, err)
		}
	}
}

func equalHashes(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}
