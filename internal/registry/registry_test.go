package registry

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"github.com/custos/custos/internal/algotest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custos/custos"
	"github.com/custos/custos/internal/algo"
	"golang.org/x/mod/sumdb/note"
)

type key struct {
	s note.Signer
	v string // the verifier key
}

func newKey(t testing.TB, name string) key {
	t.Helper()
	s, vkey := algotest.NewKey(t, name)
	return key{s, vkey}
}

// fixture is a registry with an operator, reviewers alice, bob and carol
// and two approvals required, and a log of the events it recorded.
type fixture struct {
	dir              string
	op, stranger     key
	alice, bob, carl key
	cfg              Config
	reg              *Registry
	events           []Event
	failing          bool
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{dir: t.TempDir()}
	f.op, f.stranger = newKey(t, "operator.example"), newKey(t, "mallory")
	f.alice, f.bob, f.carl = newKey(t, "alice"), newKey(t, "bob"), newKey(t, "carol")
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	f.cfg = Config{
		Dir:       f.dir,
		Operators: []string{f.op.v},
		Reviewers: []string{f.alice.v, f.bob.v, f.carl.v},
		Required:  2,
		Now: func() time.Time {
			now = now.Add(time.Second)
			return now
		},
	}
	f.reopen(t)
	return f
}

func (f *fixture) reopen(t testing.TB) {
	t.Helper()
	r, err := Open(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.reg = r
}

func (f *fixture) record(evs []Event) error {
	if f.failing {
		return custos.Errorf(custos.CodeAuditUnavailable, "the audit log cannot record")
	}
	f.events = append(f.events, evs...)
	return nil
}

// actions returns the actions recorded since the last call.
func (f *fixture) actions() string {
	var out []string
	for _, e := range f.events {
		out = append(out, e.Action)
	}
	f.events = nil
	return strings.Join(out, ",")
}

func manifest(version string) algo.Manifest {
	return algo.Manifest{
		Name: "covisit", Version: version, ABI: algo.ABIVersion,
		SourceSHA256: algo.Digest([]byte("source")),
		Reads:        map[string][]string{"watch_events": {"user", "video"}},
		Output:       algo.Output{Collection: "videos", Field: "id"},
	}
}

var module = []byte("\x00asm\x01\x00\x00\x00 a pretend module")

func sign(t testing.TB, version string, mod []byte, k key) *algo.Bundle {
	t.Helper()
	b, err := algo.Sign(manifest(version), mod, k.s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func approval(t testing.TB, e Entry, k key) string {
	t.Helper()
	l, err := algo.Approve([]byte(e.Manifest), k.s)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func wantCode(t testing.TB, err error, code string) {
	t.Helper()
	if got := custos.ErrorCode(err); err == nil || got != code {
		t.Fatalf("error %v (code %s), want code %s", err, got, code)
	}
}

func (f *fixture) submit(t testing.TB, version string) Entry {
	t.Helper()
	e, created, err := f.reg.Submit(sign(t, version, module, f.op), f.record)
	if err != nil || !created {
		t.Fatalf("Submit = %v, %v", created, err)
	}
	full, err := f.reg.Get(e.Ref())
	if err != nil {
		t.Fatal(err)
	}
	return full
}

func TestSubmit(t *testing.T) {
	f := newFixture(t)
	flipped := sign(t, "1.0.0", module, f.op)
	flipped.Module = bytes.Clone(module)
	flipped.Module[len(module)-1] ^= 1
	for _, tc := range []struct {
		name   string
		bundle *algo.Bundle
		code   string // "" for success
	}{
		{"signed by the operator", sign(t, "1.0.0", module, f.op), ""},
		{"the same again", sign(t, "1.0.0", module, f.op), ""},
		{"one bit of the module flipped", flipped, custos.CodeInvalidSignature},
		{"signed by an unknown key", sign(t, "2.0.0", module, f.stranger), custos.CodeInvalidSignature},
		{"signed by a reviewer", sign(t, "2.0.0", module, f.alice), custos.CodeInvalidSignature},
		{"same version, another module", sign(t, "1.0.0", []byte("\x00asm\x01\x00\x00\x00 another"), f.op), custos.CodeConflict},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, _, err := f.reg.Submit(tc.bundle, f.record)
			if tc.code != "" {
				wantCode(t, err, tc.code)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if e.State != Submitted || e.Operator != "operator.example" || e.ModuleSHA256 != algo.Digest(module) || len(e.Approvers) != 0 {
				t.Fatalf("entry = %+v", e)
			}
		})
	}
	if got := f.actions(); got != "algo-submit,algo-submit" {
		t.Fatalf("events %q, want the submission and its repetition", got)
	}
	if n := len(f.reg.List()); n != 1 {
		t.Fatalf("%d bundles, want 1", n)
	}
}

func TestSubmitWithoutKeys(t *testing.T) {
	r, err := Open(Config{Dir: t.TempDir(), Required: 2})
	if err != nil {
		t.Fatal(err)
	}
	op := newKey(t, "operator.example")
	_, _, err = r.Submit(sign(t, "1.0.0", module, op), func([]Event) error { return nil })
	wantCode(t, err, custos.CodeForbidden)
	if !strings.Contains(err.Error(), "algorithms.operators") {
		t.Fatalf("error %v does not say what to configure", err)
	}
}

func TestApprovals(t *testing.T) {
	f := newFixture(t)
	e := f.submit(t, "1.0.0")
	other := f.submit(t, "1.0.1")
	f.actions()
	ref := e.Ref()
	for _, tc := range []struct {
		name      string
		line      string
		code      string
		state     State
		approvers string
		events    string
	}{
		{"a non-reviewer", approval(t, e, f.stranger), custos.CodeInvalidSignature, Submitted, "", ""},
		{"the operator", approval(t, e, f.op), custos.CodeInvalidSignature, Submitted, "", ""},
		{"a reviewer over another manifest", approval(t, other, f.alice), custos.CodeInvalidSignature, Submitted, "", ""},
		{"not a signature", "alice approves\n", custos.CodeInvalidSignature, Submitted, "", ""},
		{"alice", approval(t, e, f.alice), "", Submitted, "alice", "algo-approve"},
		{"alice again", approval(t, e, f.alice), custos.CodeConflict, Submitted, "alice", ""},
		{"bob", approval(t, e, f.bob), "", Active, "alice,bob", "algo-approve,algo-activate"},
		{"carol after activation", approval(t, e, f.carl), "", Active, "alice,bob,carol", "algo-approve"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := f.reg.Approve(ref, tc.line, f.record)
			if tc.code != "" {
				wantCode(t, err, tc.code)
				got, _ = f.reg.Get(ref)
			} else if err != nil {
				t.Fatal(err)
			}
			if got.State != tc.state || strings.Join(got.Approvers, ",") != tc.approvers {
				t.Fatalf("state %s, approvers %v; want %s, %s", got.State, got.Approvers, tc.state, tc.approvers)
			}
			if ev := f.actions(); ev != tc.events {
				t.Fatalf("events %q, want %q", ev, tc.events)
			}
		})
	}
	if a, err := f.reg.Active(t.Context(), "covisit"); err != nil || !bytes.Equal(a.Module, module) {
		t.Fatalf("Active = %v", err)
	}
	if a, err := f.reg.Approved(t.Context(), algo.Digest(module)); err != nil || a.Manifest.Version != "1.0.0" {
		t.Fatalf("Approved = %v", err)
	}
	// What is durable is what was approved.
	f.reopen(t)
	got, err := f.reg.Get(ref)
	if err != nil || got.State != Active || strings.Join(got.Approvers, ",") != "alice,bob,carol" {
		t.Fatalf("after reopening: %+v, %v", got, err)
	}
}

// TestFlippedModuleNeverRuns changes one bit of a stored module: before
// activation the bundle never becomes active, after it the bundle never
// runs.
func TestFlippedModuleNeverRuns(t *testing.T) {
	flip := func(t *testing.T, f *fixture, e Entry) {
		p := filepath.Join(f.dir, e.Digest, moduleFile)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)-1] ^= 1
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("before activation", func(t *testing.T) {
		f := newFixture(t)
		e := f.submit(t, "1.0.0")
		if _, err := f.reg.Approve(e.Ref(), approval(t, e, f.alice), f.record); err != nil {
			t.Fatal(err)
		}
		flip(t, f, e)
		_, err := f.reg.Approve(e.Ref(), approval(t, e, f.bob), f.record)
		wantCode(t, err, custos.CodeInvalidSignature)
		if got, _ := f.reg.Get(e.Ref()); got.State != Submitted {
			t.Fatalf("state %s, want submitted", got.State)
		}
		_, err = f.reg.Active(t.Context(), "covisit")
		wantCode(t, err, custos.CodeNotFound)
		_, err = f.reg.Approved(t.Context(), algo.Digest(module))
		wantCode(t, err, custos.CodeNotFound)
	})
	t.Run("after activation", func(t *testing.T) {
		f := newFixture(t)
		e := f.submit(t, "1.0.0")
		for _, k := range []key{f.alice, f.bob} {
			if _, err := f.reg.Approve(e.Ref(), approval(t, e, k), f.record); err != nil {
				t.Fatal(err)
			}
		}
		// The module ran before: the copy that verified then does not
		// let the flipped one through.
		if _, err := f.reg.Active(t.Context(), "covisit"); err != nil {
			t.Fatal(err)
		}
		flip(t, f, e)
		_, err := f.reg.Active(t.Context(), "covisit")
		wantCode(t, err, custos.CodeInvalidSignature)
		_, err = f.reg.Approved(t.Context(), algo.Digest(module))
		wantCode(t, err, custos.CodeInvalidSignature)
	})
}

// TestNothingUnrecorded checks that a change the audit log cannot record
// is not made, in memory or on disk.
func TestNothingUnrecorded(t *testing.T) {
	f := newFixture(t)
	f.failing = true
	_, _, err := f.reg.Submit(sign(t, "1.0.0", module, f.op), f.record)
	wantCode(t, err, custos.CodeAuditUnavailable)
	if len(f.reg.List()) != 0 {
		t.Fatal("an unrecorded submission is in the registry")
	}
	if des, _ := os.ReadDir(f.dir); len(des) != 0 {
		t.Fatalf("an unrecorded submission left %d files", len(des))
	}
	f.failing = false
	e := f.submit(t, "1.0.0")
	if _, err := f.reg.Approve(e.Ref(), approval(t, e, f.alice), f.record); err != nil {
		t.Fatal(err)
	}
	f.failing = true
	_, err = f.reg.Approve(e.Ref(), approval(t, e, f.bob), f.record)
	wantCode(t, err, custos.CodeAuditUnavailable)
	_, err = f.reg.Retire(e.Ref(), f.record)
	wantCode(t, err, custos.CodeAuditUnavailable)
	for range 2 {
		if got, _ := f.reg.Get(e.Ref()); got.State != Submitted || len(got.Approvers) != 1 {
			t.Fatalf("after unrecorded changes: %+v", got)
		}
		f.reopen(t)
	}
}

func TestSupersedeAndRetire(t *testing.T) {
	f := newFixture(t)
	v1 := f.submit(t, "1.0.0")
	for _, k := range []key{f.alice, f.bob} {
		if _, err := f.reg.Approve(v1.Ref(), approval(t, v1, k), f.record); err != nil {
			t.Fatal(err)
		}
	}
	v2 := f.submit(t, "2.0.0")
	// Two bundles of the name are live: the bare name is ambiguous.
	_, err := f.reg.Get("covisit")
	wantCode(t, err, custos.CodeConflict)
	f.actions()
	for _, k := range []key{f.alice, f.carl} {
		if _, err := f.reg.Approve("covisit@2.0.0", approval(t, v2, k), f.record); err != nil {
			t.Fatal(err)
		}
	}
	if got := f.actions(); got != "algo-approve,algo-approve,algo-activate,algo-retire" {
		t.Fatalf("events %q", got)
	}
	if got, _ := f.reg.Get(v1.Ref()); got.State != Retired {
		t.Fatalf("v1 is %s after v2 became active", got.State)
	}
	if a, err := f.reg.Active(t.Context(), "covisit"); err != nil || a.Manifest.Version != "2.0.0" {
		t.Fatalf("Active = %+v, %v", a, err)
	}
	if got, err := f.reg.Get("covisit"); err != nil || got.Version != "2.0.0" {
		t.Fatalf("Get(covisit) = %+v, %v", got, err)
	}
	got, err := f.reg.Retire("covisit", f.record)
	if err != nil || got.State != Retired {
		t.Fatalf("Retire = %+v, %v", got, err)
	}
	_, err = f.reg.Retire("covisit@2.0.0", f.record)
	wantCode(t, err, custos.CodeConflict)
	_, err = f.reg.Approve("covisit@2.0.0", approval(t, v2, f.bob), f.record)
	wantCode(t, err, custos.CodeConflict)
	_, err = f.reg.Active(t.Context(), "covisit")
	wantCode(t, err, custos.CodeNotFound)
	// Retired, the module can still be found for a replay: of the two
	// manifests that name it, the one activated last.
	if a, err := f.reg.Approved(t.Context(), v1.ModuleSHA256); err != nil || a.Manifest.Version != "2.0.0" {
		t.Fatalf("Approved = %+v, %v", a, err)
	}
	f.reopen(t)
	for _, e := range f.reg.List() {
		if e.State != Retired {
			t.Fatalf("%s is %s after reopening", e.Version, e.State)
		}
	}
}

// TestCrashLeftovers checks what Open makes of a crash: an interrupted
// submission is dropped, and of two active bundles of a name (a crash in
// the middle of an activation) the older is retired.
func TestCrashLeftovers(t *testing.T) {
	f := newFixture(t)
	v1 := f.submit(t, "1.0.0")
	v2 := f.submit(t, "2.0.0")
	for _, e := range []Entry{v1, v2} {
		for _, k := range []key{f.alice, f.bob} {
			if _, err := f.reg.Approve(e.Ref(), approval(t, e, k), f.record); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Undo v1's retirement, as if the crash came before it was written.
	raw, _ := os.ReadFile(filepath.Join(f.dir, v1.Digest, stateFile))
	raw = bytes.Replace(raw, []byte(`"state": "retired"`), []byte(`"state": "active"`), 1)
	if err := os.WriteFile(filepath.Join(f.dir, v1.Digest, stateFile), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(f.dir, ".submit-123", "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	f.reopen(t)
	if got, _ := f.reg.Get(v1.Ref()); got.State != Retired {
		t.Fatalf("v1 is %s, want retired", got.State)
	}
	if got, _ := f.reg.Get(v2.Ref()); got.State != Active {
		t.Fatalf("v2 is %s, want active", got.State)
	}
	if _, err := os.Stat(filepath.Join(f.dir, ".submit-123")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("an interrupted submission was left")
	}
	// A manifest changed on disk stops Open.
	p := filepath.Join(f.dir, v2.Digest, noteFile)
	b, _ := os.ReadFile(p)
	os.WriteFile(p, bytes.Replace(b, []byte("2.0.0"), []byte("2.0.9"), 1), 0o600)
	if _, err := Open(f.cfg); err == nil || !strings.Contains(err.Error(), v2.Digest) {
		t.Fatalf("Open of a changed manifest = %v", err)
	}
}

func TestKeyChecks(t *testing.T) {
	op, alice, bob := newKey(t, "op"), newKey(t, "alice"), newKey(t, "bob")
	alice2 := newKey(t, "alice")
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"more approvals than reviewers", Config{Operators: []string{op.v}, Reviewers: []string{alice.v}, Required: 2}, "between 1 and"},
		{"no approvals", Config{Operators: []string{op.v}, Reviewers: []string{alice.v}, Required: 0}, "between 1 and"},
		{"operators without reviewers", Config{Operators: []string{op.v}, Required: 1}, "no reviewers"},
		{"two reviewers of one name", Config{Operators: []string{op.v}, Reviewers: []string{alice.v, alice2.v}, Required: 2}, "named alice"},
		{"the operator reviews", Config{Operators: []string{op.v}, Reviewers: []string{op.v, bob.v}, Required: 1}, "both an operator's and a reviewer's"},
		{"the operator's key under a reviewer's name", Config{Operators: []string{op.v}, Reviewers: []string{rename(t, op.v, "carol"), bob.v}, Required: 1}, "listed twice"},
		{"one key for two reviewers", Config{Operators: []string{op.v}, Reviewers: []string{bob.v, rename(t, bob.v, "carol")}, Required: 2}, "listed twice"},
		{"a reviewer named as the operator", Config{Operators: []string{op.v}, Reviewers: []string{rename(t, bob.v, "op")}, Required: 1}, "named op"},
		{"not a key", Config{Operators: []string{"op+1234+AAAA"}, Reviewers: []string{bob.v}, Required: 1}, "not a note verifier key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Dir = t.TempDir()
			if _, err := Open(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open = %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

// rename returns the verifier key vkey under another name.
func rename(t testing.TB, vkey, name string) string {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(strings.SplitN(vkey, "+", 3)[2])
	if err != nil || len(raw) != 1+ed25519.PublicKeySize {
		t.Fatalf("vkey %q: %v", vkey, err)
	}
	out, err := note.NewEd25519VerifierKey(name, ed25519.PublicKey(raw[1:]))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestParseRef(t *testing.T) {
	d := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		ref, name, version, digest string
		ok                         bool
	}{
		{"covisit", "covisit", "", "", true},
		{"covisit@1.0.0", "covisit", "1.0.0", "", true},
		{"covisit@sha256:" + d, "covisit", "", d, true},
		{"covisit@" + d, "covisit", d, "", true},
		{"", "", "", "", false},
		{"Covisit", "", "", "", false},
		{"covisit@", "", "", "", false},
		{"covisit@sha256:abc", "", "", "", false},
		{"covisit@1.0/../x", "", "", "", false},
	} {
		name, version, digest, err := ParseRef(tc.ref)
		if (err == nil) != tc.ok || name != tc.name || version != tc.version || digest != tc.digest {
			t.Errorf("ParseRef(%q) = %q, %q, %q, %v", tc.ref, name, version, digest, err)
		}
	}
}

// FuzzParseRef checks that an accepted reference is exactly its parts
// joined again: one reference, one meaning.
func FuzzParseRef(f *testing.F) {
	for _, s := range []string{"covisit", "covisit@1.0.0", "covisit@sha256:" + strings.Repeat("0", 64), "a@b:c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ref string) {
		name, version, digest, err := ParseRef(ref)
		if err != nil {
			return
		}
		again := name
		switch {
		case digest != "":
			again += "@sha256:" + digest
		case version != "":
			again += "@" + version
		}
		if again != ref {
			t.Fatalf("ParseRef(%q) gives %q", ref, again)
		}
	})
}

// FuzzApprove posts arbitrary approval lines: none but a reviewer's
// signature over the manifest text ever counts, and a line either counts
// for the reviewer it names or is refused.
func FuzzApprove(f *testing.F) {
	fx := newFixture(f)
	e := fx.submit(f, "1.0.0")
	f.Add(approval(f, e, fx.alice))
	f.Add(approval(f, e, fx.stranger))
	f.Add("— alice AAAA\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, line string) {
		fx.reopen(t)
		before, _ := fx.reg.Get(e.Ref())
		got, err := fx.reg.Approve(e.Ref(), line, fx.record)
		if err != nil {
			return
		}
		added := slices.DeleteFunc(slices.Clone(got.Approvers), func(n string) bool { return slices.Contains(before.Approvers, n) })
		if len(added) != 1 || !strings.HasPrefix(line, "— "+added[0]+" ") {
			t.Fatalf("line %q added approvers %v", line, added)
		}
		if !slices.Contains([]string{"alice", "bob", "carol"}, added[0]) {
			t.Fatalf("a non-reviewer %s counts", added[0])
		}
	})
}

// TestConcurrentApprovals approves with three reviewers at once: every
// approval counts and the bundle is activated once.
func TestConcurrentApprovals(t *testing.T) {
	f := newFixture(t)
	e := f.submit(t, "1.0.0")
	f.actions()
	var mu sync.Mutex
	rec := func(evs []Event) error {
		mu.Lock()
		defer mu.Unlock()
		return f.record(evs)
	}
	var wg sync.WaitGroup
	for _, k := range []key{f.alice, f.bob, f.carl} {
		line := approval(t, e, k)
		wg.Go(func() {
			if _, err := f.reg.Approve(e.Ref(), line, rec); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	got, _ := f.reg.Get(e.Ref())
	if got.State != Active || len(got.Approvers) != 3 {
		t.Fatalf("after concurrent approvals: %+v", got)
	}
	if n := strings.Count(f.actions(), ActionActivate); n != 1 {
		t.Fatalf("activated %d times", n)
	}
}

// FuzzSubmit submits arbitrary notes and modules: a bundle is admitted
// only if the operator signed its manifest and the module is the one the
// manifest names, and what is admitted reads back whole.
func FuzzSubmit(f *testing.F) {
	op := newKey(f, "operator.example")
	good := sign(f, "1.0.0", module, op)
	f.Add(good.Note, good.Module)
	f.Add(good.Note, append(bytes.Clone(module), 0))
	f.Add(sign(f, "1.0.0", module, newKey(f, "operator.example")).Note, module)
	f.Add([]byte("{}\n\n— operator.example AAAA\n"), module)
	f.Fuzz(func(t *testing.T, n, mod []byte) {
		fx := &fixture{dir: t.TempDir(), op: op, alice: newKey(t, "alice"), bob: newKey(t, "bob"), carl: newKey(t, "carol")}
		fx.cfg = Config{Dir: fx.dir, Operators: []string{op.v}, Reviewers: []string{fx.alice.v, fx.bob.v}, Required: 2}
		fx.reopen(t)
		e, _, err := fx.reg.Submit(&algo.Bundle{Note: n, Module: mod}, fx.record)
		if err != nil {
			return
		}
		if e.ModuleSHA256 != algo.Digest(mod) || e.Operator != "operator.example" {
			t.Fatalf("admitted %+v for a module of sha256 %s", e, algo.Digest(mod))
		}
		fx.reopen(t)
		b := fx.reg.bundles[e.Digest]
		if b == nil {
			t.Fatal("an admitted bundle did not survive reopening")
		}
		if err := fx.reg.verify(b); err != nil {
			t.Fatalf("an admitted bundle does not verify from its files: %v", err)
		}
	})
}

// TestSetReviewers checks a change of the reviewer set: approvals by keys
// taken out stop counting, so an active bundle no longer runs, and a set
// Open would refuse is refused.
func TestSetReviewers(t *testing.T) {
	f := newFixture(t)
	e := f.submit(t, "1.0.0")
	for _, k := range []key{f.alice, f.bob} {
		if _, err := f.reg.Approve(e.Ref(), approval(t, e, k), f.record); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.reg.Active(t.Context(), "covisit"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		reviewers []string
		required  int
	}{
		{"the operator as a reviewer", []string{f.op.v}, 1},
		{"more approvals than reviewers", []string{f.alice.v}, 2},
		{"one key twice", []string{f.alice.v, f.alice.v}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if f.reg.CheckReviewers(tc.reviewers, tc.required) == nil || f.reg.SetReviewers(tc.reviewers, tc.required) == nil {
				t.Fatal("accepted")
			}
		})
	}
	if err := f.reg.SetReviewers([]string{f.alice.v, f.carl.v}, 2); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.reg.Get(e.Ref()); strings.Join(got.Approvers, ",") != "alice" || got.Required != 2 {
		t.Fatalf("after the change: approvers %v, required %d", got.Approvers, got.Required)
	}
	if _, err := f.reg.Active(t.Context(), "covisit"); custos.ErrorCode(err) != custos.CodeInvalidSignature {
		t.Fatalf("a bundle without the approvals of the new set runs: %v", err)
	}
	if _, err := f.reg.Approve(e.Ref(), approval(t, e, f.bob), f.record); custos.ErrorCode(err) != custos.CodeInvalidSignature {
		t.Fatalf("a reviewer taken out approves: %v", err)
	}
	if _, err := f.reg.Approve(e.Ref(), approval(t, e, f.carl), f.record); err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.Active(t.Context(), "covisit"); err != nil {
		t.Fatalf("approved again by the new set: %v", err)
	}
}
