package witness

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	flog "github.com/transparency-dev/formats/log"
	fnote "github.com/transparency-dev/formats/note"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"
	"golang.org/x/mod/sumdb/note"
)

// testLog is a log built in the test: an in-memory RFC 6962 tree and a key
// signing its checkpoints.
type testLog struct {
	origin   string
	signer   note.Signer
	verifier note.Verifier
	tree     *testonly.Tree
}

func newTestLog(t testing.TB, origin string, leaves int) *testLog {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	l := &testLog{origin: origin, signer: s, verifier: v, tree: testonly.New(rfc6962.DefaultHasher)}
	l.grow(leaves)
	return l
}

// grow appends n leaves, distinct per log and index.
func (l *testLog) grow(n int) {
	for range n {
		l.tree.AppendData(fmt.Appendf(nil, "%s entry %d", l.origin, l.tree.Size()))
	}
}

// checkpoint returns the log's signed checkpoint at size.
func (l *testLog) checkpoint(t testing.TB, size uint64) []byte {
	t.Helper()
	return l.sign(t, flog.Checkpoint{Origin: l.origin, Size: size, Hash: l.tree.HashAt(size)}.Marshal())
}

func (l *testLog) sign(t testing.TB, text []byte) []byte {
	t.Helper()
	n, err := note.Sign(&note.Note{Text: string(text)}, l.signer)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (l *testLog) proof(t testing.TB, from, to uint64) [][]byte {
	t.Helper()
	if from == 0 {
		return nil
	}
	p, err := l.tree.ConsistencyProof(from, to)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// testWitness is a running witness and what it takes to talk to it.
type testWitness struct {
	w      *Witness
	vkey   string
	client *Client
	url    string
}

func startWitness(t testing.TB, dir, skey, vkey string, logs ...*testLog) *testWitness {
	t.Helper()
	path := filepath.Join(t.TempDir(), "witness.key")
	if err := os.WriteFile(path, []byte(skey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	signer, err := ReadSigner(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Signer: signer, StateDir: dir}
	for _, l := range logs {
		cfg.Logs = append(cfg.Logs, Log{Origin: l.origin, Verifier: l.verifier})
	}
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(w.Handler())
	t.Cleanup(func() {
		srv.Close()
		w.Close()
	})
	return &testWitness{w: w, vkey: vkey, url: srv.URL, client: &Client{URL: srv.URL, HTTP: srv.Client()}}
}

func newWitness(t testing.TB, logs ...*testLog) *testWitness {
	t.Helper()
	skey, vkey, err := GenerateKey("monitor.example/witness")
	if err != nil {
		t.Fatal(err)
	}
	return startWitness(t, t.TempDir(), skey, vkey, logs...)
}

func (tw *testWitness) add(t testing.TB, l *testLog, old, size uint64) ([][]byte, error) {
	t.Helper()
	return tw.client.AddCheckpoint(context.Background(), old, l.proof(t, old, size), l.checkpoint(t, size))
}

// mustAdd submits and checks that the cosignature verifies.
func (tw *testWitness) mustAdd(t testing.TB, l *testLog, old, size uint64) {
	t.Helper()
	sigs, err := tw.add(t, l, old, size)
	if err != nil {
		t.Fatalf("add %d→%d: %v", old, size, err)
	}
	tw.checkCosigned(t, l, l.checkpoint(t, size), sigs)
}

// checkCosigned checks that sigs hold a cosignature/v1 by the witness on
// checkpoint, with formats' verifier on the attached note. It reports with
// t.Error, so goroutines may call it.
func (tw *testWitness) checkCosigned(t testing.TB, l *testLog, checkpoint []byte, sigs [][]byte) {
	t.Helper()
	wv, err := fnote.NewVerifierForCosignatureV1(tw.vkey)
	if err != nil {
		t.Error(err)
		return
	}
	n, err := note.Open(AttachCosignatures(checkpoint, sigs...), note.VerifierList(l.verifier, wv))
	if err != nil {
		t.Errorf("cosigned checkpoint doesn't verify: %v", err)
		return
	}
	if len(n.Sigs) != 2 || n.Sigs[1].Name != wv.Name() || n.Sigs[1].Hash != wv.KeyHash() {
		t.Errorf("cosigned checkpoint has signatures %+v, want the log's and the witness's", n.Sigs)
	}
}

func conflictSize(t testing.TB, err error) uint64 {
	t.Helper()
	c, ok := errors.AsType[*ConflictError](err)
	if !ok {
		t.Fatalf("got %v, want a ConflictError", err)
	}
	return c.Size
}

func wantStatus(t testing.TB, err error, status int) {
	t.Helper()
	re, ok := errors.AsType[*ResponseError](err)
	if !ok || re.StatusCode != status {
		t.Fatalf("got %v, want status %d", err, status)
	}
}

func TestRoundTrip(t *testing.T) {
	l := newTestLog(t, "custos.example/log", 13)
	tw := newWitness(t, l)
	tw.mustAdd(t, l, 0, 5)
	tw.mustAdd(t, l, 5, 5) // same size, same root: cosigned again
	tw.mustAdd(t, l, 5, 6)
	tw.mustAdd(t, l, 6, 13)
	if _, err := tw.add(t, l, 0, 13); conflictSize(t, err) != 13 {
		t.Fatalf("witness size = %d, want 13", conflictSize(t, err))
	}
}

// TestCosignatureSpec checks a cosignature against tlog-cosignature itself,
// not only against formats: the key ID is
// SHA-256(<name> || "\n" || 0x04 || public key)[:4], the signature is
// u64 timestamp || Ed25519 signature, over
// "cosignature/v1\ntime <timestamp>\n" || checkpoint text.
func TestCosignatureSpec(t *testing.T) {
	l := newTestLog(t, "custos.example/log", 3)
	tw := newWitness(t, l)
	before := time.Now().Unix()
	sigs, err := tw.add(t, l, 0, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(sigs) != 1 {
		t.Fatalf("got %d cosignature lines, want 1", len(sigs))
	}
	parts := strings.SplitN(tw.vkey, "+", 3)
	name := parts[0]
	key, _ := base64.StdEncoding.DecodeString(parts[2])
	if len(key) != 33 || key[0] != 0x04 {
		t.Fatalf("vkey %q is not an Ed25519 cosignature/v1 key", tw.vkey)
	}
	pub := ed25519.PublicKey(key[1:])

	line := strings.TrimSuffix(string(sigs[0]), "\n")
	gotName, sigB64, _ := strings.Cut(strings.TrimPrefix(line, "\u2014 "), " ")
	sig, _ := base64.StdEncoding.DecodeString(sigB64)
	if gotName != name || len(sig) != 4+8+64 {
		t.Fatalf("cosignature line %q: wrong name or length", line)
	}
	id := sha256.Sum256(append([]byte(name+"\n"), key...))
	if !bytes.Equal(sig[:4], id[:4]) {
		t.Fatalf("key ID %x, want %x", sig[:4], id[:4])
	}
	ts := binary.BigEndian.Uint64(sig[4:12])
	if int64(ts) < before || int64(ts) > time.Now().Unix() {
		t.Fatalf("timestamp %d is not now", ts)
	}
	text := flog.Checkpoint{Origin: l.origin, Size: 3, Hash: l.tree.HashAt(3)}.Marshal()
	msg := fmt.Sprintf("cosignature/v1\ntime %d\n%s", ts, text)
	if !ed25519.Verify(pub, []byte(msg), sig[12:]) {
		t.Fatal("cosignature does not verify over the cosignature/v1 message")
	}
}

func TestStaleOldSize(t *testing.T) {
	l := newTestLog(t, "custos.example/log", 9)
	tw := newWitness(t, l)
	tw.mustAdd(t, l, 0, 4)

	// Through the client: a typed error carrying the size.
	_, err := tw.add(t, l, 0, 9)
	if got := conflictSize(t, err); got != 4 {
		t.Fatalf("conflict size %d, want 4", got)
	}
	tw.mustAdd(t, l, 4, 9) // the retry from that size succeeds

	// On the wire: 409, text/x.tlog.size, "9\n".
	body := encodeRequest(3, l.proof(t, 3, 9), l.checkpoint(t, 9))
	resp, err := http.Post(tw.url+"/add-checkpoint", "text/plain", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusConflict || resp.Header.Get("Content-Type") != "text/x.tlog.size" || string(b) != "9\n" {
		t.Fatalf("got %d %q %q, want 409 text/x.tlog.size \"9\\n\"", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
}

func TestBadProof(t *testing.T) {
	l := newTestLog(t, "custos.example/log", 13)
	tw := newWitness(t, l)
	tw.mustAdd(t, l, 0, 5)

	good := l.proof(t, 5, 13)
	flipped := make([][]byte, len(good))
	for i := range good {
		flipped[i] = bytes.Clone(good[i])
	}
	flipped[0][0] ^= 1
	for name, p := range map[string][][]byte{
		"flipped hash":  flipped,
		"other sizes":   l.proof(t, 4, 13),
		"empty":         nil,
		"one too short": good[:len(good)-1],
		"one too long":  append(append([][]byte{}, good...), good[0]),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := tw.client.AddCheckpoint(context.Background(), 5, p, l.checkpoint(t, 13))
			wantStatus(t, err, http.StatusUnprocessableEntity)
		})
	}
	// A proof for an unchanged size must be empty.
	_, err := tw.client.AddCheckpoint(context.Background(), 5, good[:1], l.checkpoint(t, 5))
	wantStatus(t, err, http.StatusUnprocessableEntity)
	tw.mustAdd(t, l, 5, 13) // nothing was stored
}

func TestForkRefused(t *testing.T) {
	l := newTestLog(t, "custos.example/log", 8)
	tw := newWitness(t, l)
	tw.mustAdd(t, l, 0, 5)

	// The same log key signs another history: same origin, other leaves.
	fork := &testLog{origin: l.origin, signer: l.signer, verifier: l.verifier, tree: testonly.New(rfc6962.DefaultHasher)}
	for i := range 8 {
		fork.tree.AppendData(fmt.Appendf(nil, "forged entry %d", i))
	}

	// Same size, other root: 409 without a size.
	_, err := tw.add(t, fork, 5, 5)
	wantStatus(t, err, http.StatusConflict)
	// Larger, with the fork's own (valid for it) proof: 422.
	_, err = tw.add(t, fork, 5, 8)
	wantStatus(t, err, http.StatusUnprocessableEntity)
	tw.mustAdd(t, l, 5, 8) // the honest history still goes on
}

func TestRollbackRefused(t *testing.T) {
	l := newTestLog(t, "custos.example/log", 13)
	tw := newWitness(t, l)
	tw.mustAdd(t, l, 0, 13)

	// Claiming the smaller size as old: 409 with the witness's size.
	_, err := tw.add(t, l, 5, 5)
	if got := conflictSize(t, err); got != 13 {
		t.Fatalf("conflict size %d, want 13", got)
	}
	// Claiming the witness's size as old: old > checkpoint size, 400.
	_, err = tw.client.AddCheckpoint(context.Background(), 13, nil, l.checkpoint(t, 5))
	wantStatus(t, err, http.StatusBadRequest)
	tw.mustAdd(t, l, 13, 13)
}

func TestUnknownLog(t *testing.T) {
	known := newTestLog(t, "custos.example/log", 3)
	other := newTestLog(t, "elsewhere.example/log", 3)
	tw := newWitness(t, known)
	_, err := tw.add(t, other, 0, 3)
	wantStatus(t, err, http.StatusNotFound)
}

func TestBadLogSignature(t *testing.T) {
	l := newTestLog(t, "custos.example/log", 3)
	tw := newWitness(t, l)
	impostor := newTestLog(t, l.origin, 3) // same name, other key

	good := l.checkpoint(t, 3)
	// The log's key ID with a signature flipped in one bit.
	i := bytes.LastIndexByte(good[:len(good)-1], ' ')
	sig, err := base64.StdEncoding.DecodeString(string(good[i+1 : len(good)-1]))
	if err != nil {
		t.Fatal(err)
	}
	sig[10] ^= 1
	tamperedSig := append(bytes.Clone(good[:i+1]), base64.StdEncoding.EncodeToString(sig)+"\n"...)
	tamperedText := bytes.Replace(good, []byte("\n3\n"), []byte("\n2\n"), 1)

	for name, cp := range map[string][]byte{
		"other key":     impostor.checkpoint(t, 3),
		"bad signature": tamperedSig,
		"changed text":  tamperedText,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := tw.client.AddCheckpoint(context.Background(), 0, nil, cp)
			wantStatus(t, err, http.StatusForbidden)
		})
	}
	tw.mustAdd(t, l, 0, 3)
}

func TestMalformed(t *testing.T) {
	l := newTestLog(t, "custos.example/log", 3)
	tw := newWitness(t, l)
	cp := l.checkpoint(t, 3)
	h := base64.StdEncoding.EncodeToString(l.tree.HashAt(1))
	// A checkpoint the log did sign, but whose text is not a checkpoint.
	signed := func(text string) string { return string(l.sign(t, []byte(text))) }
	many := strings.Repeat(h+"\n", MaxProofLines+1)

	for _, tc := range []struct {
		name   string
		body   string
		status int
	}{
		{"empty", "", http.StatusBadRequest},
		{"no old line", "\n" + string(cp), http.StatusBadRequest},
		{"old without size", "old \n\n" + string(cp), http.StatusBadRequest},
		{"old leading zero", "old 01\n" + h + "\n\n" + string(cp), http.StatusBadRequest},
		{"old negative", "old -1\n\n" + string(cp), http.StatusBadRequest},
		{"old too large", "old 18446744073709551616\n\n" + string(cp), http.StatusBadRequest},
		{"two spaces", "old  0\n\n" + string(cp), http.StatusBadRequest},
		{"no empty line", "old 0\n" + string(cp), http.StatusBadRequest},
		{"no checkpoint", "old 0\n\n", http.StatusBadRequest},
		{"proof from zero", "old 0\n" + h + "\n\n" + string(cp), http.StatusBadRequest},
		{"proof not base64", "old 1\n!!!!\n\n" + string(cp), http.StatusBadRequest},
		{"proof short hash", "old 1\nAAAA\n\n" + string(cp), http.StatusBadRequest},
		{"proof CR", "old 1\n" + h + "\r\n\n" + string(cp), http.StatusBadRequest},
		{"too many proof lines", "old 1\n" + many + "\n" + string(cp), http.StatusBadRequest},
		{"checkpoint unsigned", "old 0\n\n" + l.origin + "\n3\n" + h + "\n", http.StatusBadRequest},
		{"checkpoint with NUL", "old 0\n\n" + strings.Replace(string(cp), "\n3\n", "\n3\x00\n", 1), http.StatusBadRequest},
		{"size leading zero", "old 0\n\n" + signed(l.origin+"\n03\n"+h+"\n"), http.StatusBadRequest},
		{"short root", "old 0\n\n" + signed(l.origin+"\n3\nAAAA\n"), http.StatusBadRequest},
		{"two lines", "old 0\n\n" + signed(l.origin+"\n3\n"), http.StatusBadRequest},
		{"empty extension", "old 0\n\n" + signed(l.origin+"\n3\n"+h+"\n\nx\n"), http.StatusBadRequest},
		{"too large", "old 0\n\n" + strings.Repeat("a", MaxRequestSize), http.StatusRequestEntityTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := http.Post(tw.url+"/add-checkpoint", "text/plain", strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
		})
	}
	resp, err := http.Get(tw.url + "/add-checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET: status %d, want 405", resp.StatusCode)
	}
	tw.mustAdd(t, l, 0, 3) // nothing above was stored
}

func TestRestartKeepsState(t *testing.T) {
	l := newTestLog(t, "custos.example/log", 13)
	other := newTestLog(t, "custos.example/other", 4)
	skey, vkey, err := GenerateKey("monitor.example/witness")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tw := startWitness(t, dir, skey, vkey, l, other)
	tw.mustAdd(t, l, 0, 7)
	tw.mustAdd(t, other, 0, 4)

	// A second process on the same directory is refused.
	if _, err := New(Config{Signer: tw.w.signer, StateDir: dir}); !errors.Is(err, ErrInUse) {
		t.Fatalf("second New = %v, want ErrInUse", err)
	}
	tw.w.Close()

	tw = startWitness(t, dir, skey, vkey, l, other)
	if _, err := tw.add(t, l, 0, 13); conflictSize(t, err) != 7 {
		t.Fatalf("after restart, size %d, want 7", conflictSize(t, err))
	}
	if _, err := tw.add(t, other, 0, 4); conflictSize(t, err) != 4 {
		t.Fatalf("after restart, other log size %d, want 4", conflictSize(t, err))
	}
	tw.mustAdd(t, l, 7, 13)
	tmp, _ := filepath.Glob(filepath.Join(dir, ".tmp-*"))
	if len(tmp) != 0 {
		t.Fatalf("temporary files left behind: %v", tmp)
	}
}

func TestCorruptStateRefused(t *testing.T) {
	l := newTestLog(t, "custos.example/log", 3)
	skey, vkey, err := GenerateKey("monitor.example/witness")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tw := startWitness(t, dir, skey, vkey, l)
	tw.mustAdd(t, l, 0, 3)
	tw.w.Close()
	if err := os.WriteFile(statePath(dir, l.origin), []byte("garbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	signer, err := fnote.NewSignerForCosignatureV1(skey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{Signer: signer, StateDir: dir, Logs: []Log{{l.origin, l.verifier}}}); err == nil {
		t.Fatal("New accepted a corrupt state file")
	}
}

// TestConcurrent has many submitters race to advance one log, each to its
// own size, retrying from the size the witness reports. The witness must
// end at the largest size and never cosign a checkpoint smaller than one it
// cosigned before answering it.
func TestConcurrent(t *testing.T) {
	const n = 24
	l := newTestLog(t, "custos.example/log", n)
	tw := newWitness(t, l)
	// Precompute checkpoints and proofs: the test tree is not made for
	// concurrent use.
	cps := make([][]byte, n+1)
	proofs := make([][][][]byte, n+1)
	for to := uint64(1); to <= n; to++ {
		cps[to] = l.checkpoint(t, to)
		proofs[to] = make([][][]byte, to+1)
		for from := uint64(0); from <= to; from++ {
			proofs[to][from] = l.proof(t, from, to)
		}
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for g := uint64(1); g <= n; g++ {
		wg.Go(func() {
			old := uint64(0)
			for {
				sigs, err := tw.client.AddCheckpoint(context.Background(), old, proofs[g][old], cps[g])
				if c, ok := errors.AsType[*ConflictError](err); ok {
					if c.Size > g {
						return // the witness is past us: refusing is right
					}
					old = c.Size
					continue
				}
				if err == nil {
					tw.checkCosigned(t, l, cps[g], sigs)
				} else {
					mu.Lock()
					errs = append(errs, fmt.Errorf("size %d from %d: %w", g, old, err))
					mu.Unlock()
				}
				return
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if _, err := tw.add(t, l, 0, n); conflictSize(t, err) != n {
		t.Fatalf("final size %d, want %d", conflictSize(t, err), n)
	}
}
