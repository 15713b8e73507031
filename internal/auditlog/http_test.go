package auditlog

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/transparency-dev/tessera/api/layout"
)

func TestHandler(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, testConfig(t, dir))
	ctx := context.Background()
	for i := range 260 {
		if _, err := l.Record(ctx, entry(i)); err != nil {
			t.Fatal(err)
		}
	}
	waitCheckpoint(t, l, 260)
	// Files in the directory that must never be served.
	if err := os.WriteFile(filepath.Join(dir, "tile", "secret"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/log/", http.StripPrefix("/log", l.Handler()))
	h := l.Handler()

	const text, octets = "text/plain; charset=utf-8", "application/octet-stream"
	for _, c := range []struct {
		method, path string
		status       int
		ctype, cache string
	}{
		{"GET", "/checkpoint", 200, text, cacheCheckpoint},
		{"HEAD", "/checkpoint", 200, text, cacheCheckpoint},
		{"GET", "/tile/0/000", 200, octets, cacheFull},
		{"GET", "/tile/0/001.p/4", 200, octets, cachePartial},
		{"GET", "/tile/1/000.p/1", 200, octets, cachePartial},
		{"GET", "/tile/entries/000", 200, octets, cacheFull},
		{"GET", "/tile/entries/001.p/4", 200, octets, cachePartial},
		{"HEAD", "/tile/entries/000", 200, octets, cacheFull},
		{"GET", "/tile/0/002", 404, "", ""},           // not yet written
		{"GET", "/tile/entries/001.p/5", 404, "", ""}, // no such width
		{"POST", "/checkpoint", 405, "", ""},
		{"PUT", "/tile/0/000", 405, "", ""},
		{"DELETE", "/tile/entries/000", 405, "", ""},
		{"GET", "/", 404, "", ""},
		{"GET", "/tile/", 404, "", ""},
		{"GET", "/tile/0/", 404, "", ""},
		{"GET", "/tile/entries/", 404, "", ""},
		{"GET", "/tile/secret", 404, "", ""},
		{"GET", "/.state/treeState", 404, "", ""},
		{"GET", "/custos.lock", 404, "", ""},
		{"GET", "/checkpoint/", 404, "", ""},
		{"GET", "/tile/0/../../checkpoint", 404, "", ""},
		{"GET", "/tile/0/000/../000", 404, "", ""},
		{"GET", "/tile/../.state/treeState", 404, "", ""},
		{"GET", "/tile//0/000", 404, "", ""},
		{"GET", "/tile/0/0", 404, "", ""},           // N must have three digits
		{"GET", "/tile/0/0000", 404, "", ""},        // or be grouped
		{"GET", "/tile/0/x000/000", 404, "", ""},    // no leading zero group
		{"GET", "/tile/00/000", 404, "", ""},        // level not canonical
		{"GET", "/tile/64/000", 404, "", ""},        // level beyond 63
		{"GET", "/tile/0/000.p/0", 404, "", ""},     // width 0
		{"GET", "/tile/0/000.p/256", 404, "", ""},   // width beyond 255
		{"GET", "/tile/0/000.p/04", 404, "", ""},    // width not canonical
		{"GET", "/tile/0/000.p/", 404, "", ""},      // width missing
		{"GET", "/tile/0/000.p", 404, "", ""},       // a directory
		{"GET", "/tile/entries/000.p", 404, "", ""}, // a directory
		{"GET", "/tile/0/-01", 404, "", ""},         // not a number
		{"GET", "/tile/data/000", 404, "", ""},      // not a tile kind
		{"GET", "/tile/0/x018446744073709551615", 404, "", ""},
		{"GET", "/tile/0/x018/x446/x744/x073/x709/x551/616", 404, "", ""}, // overflows uint64
	} {
		t.Run(c.method+c.path, func(t *testing.T) {
			req := httptest.NewRequest(c.method, "/log", nil)
			req.URL.Path = c.path // unclean paths as a client could send them
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != c.status {
				t.Fatalf("status %d, want %d: %s", w.Code, c.status, w.Body)
			}
			if c.status == 405 && w.Header().Get("Allow") != "GET, HEAD" {
				t.Errorf("Allow = %q", w.Header().Get("Allow"))
			}
			if c.status != 200 {
				return
			}
			if got := w.Header().Get("Content-Type"); got != c.ctype {
				t.Errorf("Content-Type = %q, want %q", got, c.ctype)
			}
			if got := w.Header().Get("Cache-Control"); got != c.cache {
				t.Errorf("Cache-Control = %q, want %q", got, c.cache)
			}
			want, err := os.ReadFile(filepath.Join(dir, c.path))
			if err != nil {
				t.Fatal(err)
			}
			if c.method == "HEAD" {
				want = nil
			}
			if !bytes.Equal(w.Body.Bytes(), want) {
				t.Errorf("body differs from the file")
			}
		})
	}

	// Mounted under /log/ the way the gateway mounts it.
	srv := httptest.NewServer(mux)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/log/" + layout.CheckpointPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /log/checkpoint = %d", resp.StatusCode)
	}
	// Escaped paths are refused even when they decode to a valid one.
	resp, err = http.Get(srv.URL + "/log/tile%2F0%2F000")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("escaped path = %d, want 404", resp.StatusCode)
	}
}

func TestParseTilePathRoundTrip(t *testing.T) {
	for _, n := range []uint64{0, 1, 999, 1000, 1234067, 1<<64 - 1} {
		for _, w := range []uint8{0, 1, 255} {
			for _, p := range []string{layout.TilePath(0, n, w), layout.TilePath(63, n, w), layout.EntriesPath(n, w)} {
				partial, ok := parseTilePath(p)
				if !ok || partial != (w != 0) {
					t.Errorf("parseTilePath(%q) = %v, %v", p, partial, ok)
				}
			}
		}
	}
}

func TestKeys(t *testing.T) {
	skey, vkey, err := GenerateKey(testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	sp, vp := filepath.Join(dir, "log.key"), filepath.Join(dir, "log.vkey")
	if err := os.WriteFile(sp, []byte(skey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(vp, []byte(vkey+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := ReadSigner(sp)
	if err != nil {
		t.Fatal(err)
	}
	v, err := ReadVerifier(vp)
	if err != nil {
		t.Fatal(err)
	}
	if s.Name() != testOrigin || v.Name() != testOrigin || s.KeyHash() != v.KeyHash() {
		t.Fatalf("signer %q/%x, verifier %q/%x", s.Name(), s.KeyHash(), v.Name(), v.KeyHash())
	}
	for _, mode := range []os.FileMode{0o640, 0o604, 0o660} {
		if err := os.Chmod(sp, mode); err != nil {
			t.Fatal(err)
		}
		_, err := ReadSigner(sp)
		if err == nil {
			t.Errorf("ReadSigner accepted a key file of mode %v", mode)
		} else if bytes.Contains([]byte(err.Error()), []byte(skey[20:])) {
			t.Errorf("error reveals the key: %v", err)
		}
	}
	if err := os.Chmod(sp, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadSigner(vp); err == nil {
		t.Error("ReadSigner accepted a verifier key (mode 0644)")
	}
	os.Chmod(vp, 0o600)
	if _, err := ReadSigner(vp); err == nil {
		t.Error("ReadSigner accepted a verifier key")
	}
}
