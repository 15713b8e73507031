package verifier

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custos/custos"
	fnote "github.com/transparency-dev/formats/note"
	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/storage/posix"
	"golang.org/x/mod/sumdb/note"
)

// testLog is a real log written by Tessera's POSIX driver in a temporary
// directory and served over HTTP as the custodian serves it.
type testLog struct {
	dir string
	key testKey
	srv *httptest.Server

	mu         sync.Mutex
	checkpoint []byte   // served instead of the file when set
	requests   []string // paths served
}

const testOrigin = "custos.test/log"

// testKey is a note key pair.
type testKey struct {
	skey, vkey string
	signer     note.Signer
	verifier   note.Verifier
}

func newKey(t testing.TB, name string) testKey {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	k := testKey{skey: skey, vkey: vkey}
	if k.signer, err = note.NewSigner(skey); err != nil {
		t.Fatal(err)
	}
	if k.verifier, err = note.NewVerifier(vkey); err != nil {
		t.Fatal(err)
	}
	return k
}

// witnessVerifier is the cosignature/v1 verifier of a witness key.
func witnessVerifier(t testing.TB, k testKey) note.Verifier {
	t.Helper()
	v, err := fnote.NewVerifierForCosignatureV1(k.vkey)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// newTestLog starts an empty log signed by key.
func newTestLog(t testing.TB, key testKey) *testLog {
	t.Helper()
	l := &testLog{dir: t.TempDir(), key: key}
	files := http.FileServer(http.Dir(l.dir))
	l.srv = httptest.NewServer(http.StripPrefix("/log", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		l.requests = append(l.requests, r.URL.Path)
		cp := l.checkpoint
		l.mu.Unlock()
		if r.URL.Path == "/checkpoint" && cp != nil {
			_, _ = w.Write(cp)
			return
		}
		files.ServeHTTP(w, r)
	})))
	t.Cleanup(l.srv.Close)
	return l
}

func (l *testLog) url() string { return l.srv.URL + "/log/" }

// add appends entries with Tessera and returns once a checkpoint committing
// to all of them is published.
func (l *testLog) add(t testing.TB, entries ...[]byte) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	driver, err := posix.New(ctx, posix.Config{Path: l.dir})
	if err != nil {
		t.Fatal(err)
	}
	opts := tessera.NewAppendOptions().
		WithCheckpointSigner(l.key.signer).
		WithBatching(1024, 5*time.Millisecond).
		WithCheckpointInterval(100 * time.Millisecond).
		WithPushback(1 << 20)
	a, shutdown, _, err := tessera.NewAppender(ctx, driver, opts)
	if err != nil {
		t.Fatal(err)
	}
	futures := make([]tessera.IndexFuture, len(entries))
	for i, e := range entries {
		futures[i] = a.Add(ctx, tessera.NewEntry(e))
	}
	for _, f := range futures {
		if _, err := f(); err != nil {
			t.Fatal(err)
		}
	}
	if err := shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

func (l *testLog) serveCheckpoint(cp []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.checkpoint = cp
}

// served returns the paths served since the last call.
func (l *testLog) served() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.requests
	l.requests = nil
	return r
}

func (l *testLog) readFile(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(l.dir, p))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (l *testLog) writeFile(t testing.TB, p string, b []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(l.dir, p), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

var entryClock = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// entries returns n canonical audit entries, numbered from first.
func entries(t testing.TB, first, n int) [][]byte {
	t.Helper()
	out := make([][]byte, n)
	for i := range out {
		k := first + i
		e := custos.AuditEntry{
			Time:      entryClock.Add(time.Duration(k) * time.Millisecond),
			Action:    "read",
			Decision:  "allow",
			Principal: fmt.Sprintf("svc-%d", k%7),
			Org:       []string{"custodian", "operator"}[k%2],
			Loc:       []string{"us", "sg"}[k%2],
			Purpose:   "recommend",
			Subject:   fmt.Sprintf("aud_%08d", k),
			Forms:     map[string]string{"email": "token", "handle": "clear"},
		}
		switch k % 10 {
		case 3:
			e.Action, e.Reason, e.Ticket, e.Approver = "detokenize", "fraud", "T-42", "alice"
			e.Subjects, e.Subject, e.Forms = []string{"aud_a", "aud_b"}, "", nil
		case 5:
			e.Decision, e.Code = "deny", "forbidden"
		case 7:
			e.Action, e.Detail, e.Subject, e.Forms = "policy-load", "policies sha256:abc", "", nil
		}
		b, err := custos.MarshalAuditEntry(e)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = b
	}
	return out
}

// cosign returns cp with a cosignature/v1 line by the witness skey added.
func cosign(t testing.TB, cp []byte, witness testKey) []byte {
	t.Helper()
	s, err := fnote.NewSignerForCosignatureV1(witness.skey)
	if err != nil {
		t.Fatal(err)
	}
	text, _, ok := bytes.Cut(cp, []byte("\n\n"))
	if !ok {
		t.Fatal("checkpoint without signatures")
	}
	signed, err := note.Sign(&note.Note{Text: string(text) + "\n"}, s)
	if err != nil {
		t.Fatal(err)
	}
	_, line, _ := bytes.Cut(signed, []byte("\n\n"))
	return append(bytes.Clone(cp), line...)
}

func mustContain(t testing.TB, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one containing %q", want)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("got error %q, want one containing %q", err, want)
	}
}

// cosignAt is cosign with a chosen timestamp, built by hand from the
// C2SP tlog-cosignature message format.
func cosignAt(t testing.TB, cp []byte, witness testKey, ts uint64) []byte {
	t.Helper()
	parts := strings.SplitN(witness.skey, "+", 5)
	key, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(key) != 1+ed25519.SeedSize {
		t.Fatalf("witness key: %v", err)
	}
	text, _, _ := bytes.Cut(cp, []byte("\n\n"))
	msg := fmt.Sprintf("cosignature/v1\ntime %d\n%s\n", ts, text)
	sig := binary.BigEndian.AppendUint64(nil, ts)
	sig = append(sig, ed25519.Sign(ed25519.NewKeyFromSeed(key[1:]), []byte(msg))...)
	v := witnessVerifier(t, witness)
	line := binary.BigEndian.AppendUint32(nil, v.KeyHash())
	return fmt.Appendf(bytes.Clone(cp), "— %s %s\n", v.Name(), base64.StdEncoding.EncodeToString(append(line, sig...)))
}
