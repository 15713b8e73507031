package governance

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/custos/custos"
	"github.com/custos/custos/internal/notekey"
	"golang.org/x/mod/sumdb/note"
)

// key is a governance signer for the tests.
type key struct {
	signer note.Signer
	vkey   string
}

func newKey(t testing.TB, name string) key {
	t.Helper()
	skey, vkey, err := notekey.Generate(name, "test key")
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return key{s, vkey}
}

// env is a deployment's files and a board over them.
type env struct {
	dir              string
	cfg              Config
	custodian, other key
	monitor          key
	// locations are the permitted locations the configuration lists.
	locations Locations
	events    []Event
	installed map[Kind]Content
}

func (e *env) rec(evs []Event) error {
	e.events = append(e.events, evs...)
	return nil
}

func (e *env) actions() []string {
	var out []string
	for _, ev := range e.events {
		out = append(out, ev.Action)
	}
	return out
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{dir: dir, custodian: newKey(t, "custodian-1"), other: newKey(t, "custodian-2"), monitor: newKey(t, "monitor-1"),
		locations: Locations{Permitted: []string{"us-east-1"}}, installed: map[Kind]Content{}}
	os.MkdirAll(filepath.Join(dir, "policies"), 0o700)
	os.WriteFile(filepath.Join(dir, "policies", "a.cedar"), []byte("permit (principal, action, resource);\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "schema.yaml"), []byte("version: 1\n"), 0o644)
	e.cfg = Config{
		Dir: filepath.Join(dir, "governance"), Deployment: "custos-us",
		PolicyDir: filepath.Join(dir, "policies"), SchemaPath: filepath.Join(dir, "schema.yaml"),
		Signers:   map[string][]string{"custodian": {e.custodian.vkey, e.other.vkey}, "monitor": {e.monitor.vkey}},
		Require:   []string{"custodian", "monitor"},
		Suspender: "monitor",
		Locations: func() (Locations, error) { return e.locations, nil },
		Check: func(k Kind, c Content) error {
			if strings.Contains(string(c[SchemaFile])+string(c["a.cedar"]), "invalid") {
				return errors.New("does not parse")
			}
			return nil
		},
		Install: func(k Kind, c Content) error { e.installed[k] = c; return nil },
		Now:     func() time.Time { return time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC) },
	}
	return e
}

func (e *env) open(t *testing.T) *Board {
	t.Helper()
	b, err := Open(e.cfg, e.rec)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sign(t *testing.T, k key, text string) string {
	t.Helper()
	l, err := notekey.SignLine([]byte(text), k.signer)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func code(err error) string {
	if err == nil {
		return ""
	}
	return custos.ErrorCode(err)
}

func TestProposalNeedsEveryRole(t *testing.T) {
	e := newEnv(t)
	b := e.open(t)
	if got := strings.Join(e.actions(), ","); got != strings.Repeat("gov-init,", len(Kinds))+"rules-in-force" {
		t.Fatalf("first start recorded %s", got)
	}
	start, _ := b.Rules()
	v, created, err := b.Propose(KindPolicy, Content{"a.cedar": []byte("forbid (principal, action, resource);\n")}, e.rec)
	if err != nil || !created || v.State != StateOpen {
		t.Fatalf("Propose = %+v, %v, %v", v, created, err)
	}
	if !strings.Contains(v.Diff, "-permit (principal, action, resource);\n+forbid") {
		t.Fatalf("diff:\n%s", v.Diff)
	}
	for _, tc := range []struct {
		name string
		line string
		code string
	}{
		{"custodian", sign(t, e.custodian, v.Text), ""},
		{"custodian again", sign(t, e.custodian, v.Text), custos.CodeConflict},
		{"second custodian", sign(t, e.other, v.Text), ""},
		{"stranger", sign(t, newKey(t, "stranger"), v.Text), custos.CodeInvalidSignature},
		{"monitor over another text", sign(t, e.monitor, v.Text+"x\n"), custos.CodeInvalidSignature},
		{"garbage", "— monitor-1 AAAA\n", custos.CodeInvalidSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := b.Sign(v.ID, tc.line, e.rec); code(err) != tc.code {
				t.Fatalf("Sign = %v, want %q", err, tc.code)
			}
		})
	}
	if e.installed[KindPolicy] != nil {
		t.Fatal("applied with custodians' signatures only")
	}
	got, err := b.Sign(v.ID, sign(t, e.monitor, v.Text), e.rec)
	if err != nil || got.State != StateApplied || len(got.Missing) != 0 {
		t.Fatalf("monitor's signature: %+v, %v", got, err)
	}
	if string(e.installed[KindPolicy]["a.cedar"]) != "forbid (principal, action, resource);\n" {
		t.Fatal("not installed")
	}
	disk, _ := os.ReadFile(filepath.Join(e.dir, "policies", "a.cedar"))
	if string(disk) != "forbid (principal, action, resource);\n" {
		t.Fatal("the file the server loads is not rewritten")
	}
	if now, _ := b.Rules(); now == start {
		t.Fatal("the rules digest did not change")
	}
	if _, err := b.Sign(v.ID, sign(t, e.other, v.Text), e.rec); code(err) != custos.CodeConflict {
		t.Fatalf("signing an applied proposal: %v", err)
	}
	// A restart keeps the signed state and finds the disk in agreement.
	e.events = nil
	b = e.open(t)
	if got := strings.Join(e.actions(), ","); got != "rules-in-force" {
		t.Fatalf("restart recorded %s", got)
	}
	if string(b.InForce(KindPolicy)["a.cedar"]) != string(disk) {
		t.Fatal("restart lost the applied policy")
	}
}

func TestStaleProposal(t *testing.T) {
	e := newEnv(t)
	b := e.open(t)
	v1, _, _ := b.Propose(KindSchema, Content{SchemaFile: []byte("version: 1\n# one\n")}, e.rec)
	v2, _, _ := b.Propose(KindSchema, Content{SchemaFile: []byte("version: 1\n# two\n")}, e.rec)
	for _, k := range []key{e.custodian, e.monitor} {
		if _, err := b.Sign(v1.ID, sign(t, k, v1.Text), e.rec); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Sign(v2.ID, sign(t, e.custodian, v2.Text), e.rec); code(err) != custos.CodeConflict {
		t.Fatalf("signing a stale proposal: %v", err)
	}
	if g, _ := b.Get(v2.ID); g.State != StateStale {
		t.Fatalf("state %s", g.State)
	}
}

func TestProposeRefusals(t *testing.T) {
	e := newEnv(t)
	b := e.open(t)
	for _, tc := range []struct {
		name string
		kind Kind
		c    Content
		code string
	}{
		{"unknown kind", "flows", Content{"x": nil}, custos.CodeInvalidRequest},
		{"no files", KindPolicy, Content{}, custos.CodeInvalidRequest},
		{"bad name", KindPolicy, Content{"../x.cedar": []byte("x")}, custos.CodeInvalidRequest},
		{"schema named otherwise", KindSchema, Content{"s.yaml": []byte("x")}, custos.CodeInvalidRequest},
		{"does not parse", KindPolicy, Content{"a.cedar": []byte("invalid")}, custos.CodeInvalidRequest},
		{"in force already", KindPolicy, Content{"a.cedar": []byte("permit (principal, action, resource);\n")}, custos.CodeConflict},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := b.Propose(tc.kind, tc.c, e.rec); code(err) != tc.code {
				t.Fatalf("Propose = %v, want %s", err, tc.code)
			}
		})
	}
}

func TestUnsignedFilesRefused(t *testing.T) {
	e := newEnv(t)
	b := e.open(t)
	os.WriteFile(filepath.Join(e.dir, "policies", "b.cedar"), []byte("forbid (principal, action, resource);\n"), 0o644)
	e.events = nil
	if err := b.Reload(e.rec); err == nil {
		t.Fatal("Reload accepted an unsigned policy file")
	}
	if len(e.events) != 1 || e.events[0].Action != ActionUnsigned || !e.events[0].Deny || e.events[0].Kind != KindPolicy {
		t.Fatalf("events %+v", e.events)
	}
	if len(b.InForce(KindPolicy)) != 1 {
		t.Fatal("the unsigned file is in force")
	}
	// At start too: the signed policy is served, the refusal recorded.
	e.events = nil
	b = e.open(t)
	if got := strings.Join(e.actions(), ","); got != "gov-unsigned,rules-in-force" {
		t.Fatalf("start recorded %s", got)
	}
	if _, ok := b.InForce(KindPolicy)["b.cedar"]; ok {
		t.Fatal("the unsigned file is in force after a restart")
	}
}

func TestRecordFailureChangesNothing(t *testing.T) {
	e := newEnv(t)
	b := e.open(t)
	v, _, err := b.Propose(KindPolicy, Content{"a.cedar": []byte("forbid (principal, action, resource);\n")}, e.rec)
	if err != nil {
		t.Fatal(err)
	}
	// The custodian's signature must count: else the monitor's would
	// fail for want of it, not of its record.
	if _, err := b.Sign(v.ID, sign(t, e.custodian, v.Text), e.rec); err != nil {
		t.Fatal(err)
	}
	fail := func([]Event) error { return errors.New("log down") }
	if _, err := b.Sign(v.ID, sign(t, e.monitor, v.Text), fail); err == nil {
		t.Fatal("applied without a record")
	}
	if e.installed[KindPolicy] != nil || len(b.InForce(KindPolicy)["a.cedar"]) != len("permit (principal, action, resource);\n") {
		t.Fatal("a change was made without its record")
	}
}

// TestApplyChecksAgain checks that content is checked again by its last
// signature: what Check accepted when it was proposed may no longer load
// where it is used, and is then not put in force.
func TestApplyChecksAgain(t *testing.T) {
	e := newEnv(t)
	var refuse bool
	check := e.cfg.Check
	e.cfg.Check = func(k Kind, c Content) error {
		if refuse {
			return errors.New("the store in use would no longer be permitted")
		}
		return check(k, c)
	}
	b := e.open(t)
	v, _, err := b.Propose(KindLocations, Content{LocationsFile: Locations{Permitted: []string{"eu-west-1"}}.Marshal()}, e.rec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Sign(v.ID, sign(t, e.custodian, v.Text), e.rec); err != nil {
		t.Fatal(err)
	}
	refuse = true
	n := len(e.events)
	if _, err := b.Sign(v.ID, sign(t, e.monitor, v.Text), e.rec); code(err) != custos.CodeConflict {
		t.Fatalf("the last signature over content that no longer loads: %v", err)
	}
	if e.installed[KindLocations] != nil || len(e.events) != n || string(b.InForce(KindLocations)[LocationsFile]) != string(e.locations.Marshal()) {
		t.Fatal("content that no longer loads was put in force, or the signature recorded")
	}
	refuse = false
	if got, err := b.Sign(v.ID, sign(t, e.monitor, v.Text), e.rec); err != nil || got.State != StateApplied {
		t.Fatalf("once it loads again: %+v, %v", got, err)
	}
}

func TestLockedWithoutKeys(t *testing.T) {
	e := newEnv(t)
	e.cfg.Signers = nil
	b := e.open(t)
	v, _, err := b.Propose(KindPolicy, Content{"a.cedar": []byte("forbid (principal, action, resource);\n")}, e.rec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Sign(v.ID, sign(t, e.custodian, v.Text), e.rec); code(err) != custos.CodeForbidden {
		t.Fatalf("Sign without keys = %v", err)
	}
}

func TestKeysRefused(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name    string
		signers map[string][]string
		require []string
	}{
		{"one key in two roles", map[string][]string{"custodian": {e.custodian.vkey}, "monitor": {e.custodian.vkey}}, []string{"custodian", "monitor"}},
		{"required role without keys", map[string][]string{"custodian": {e.custodian.vkey}}, []string{"custodian", "monitor"}},
		{"not a key", map[string][]string{"custodian": {"nope"}}, []string{"custodian"}},
		{"two keys one name", map[string][]string{"custodian": {e.custodian.vkey}, "monitor": {newKey(t, "custodian-1").vkey}}, []string{"custodian"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := e.cfg
			cfg.Signers, cfg.Require = tc.signers, tc.require
			if _, err := Open(cfg, e.rec); err == nil {
				t.Fatal("Open accepted the keys")
			}
		})
	}
}

// statement returns a suspension statement signed by k.
func statement(t *testing.T, k key, s Suspension) []byte {
	t.Helper()
	msg, err := note.Sign(&note.Note{Text: string(s.Text())}, k.signer)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

func TestSuspension(t *testing.T) {
	e := newEnv(t)
	b := e.open(t)
	at := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	suspendAll := Suspension{Deployment: "custos-us", Action: Suspend, Reason: "breach under review", Previous: "none", Time: at}
	if _, err := b.State(statement(t, e.custodian, suspendAll), e.rec); code(err) != custos.CodeInvalidSignature {
		t.Fatalf("a custodian's statement: %v", err)
	}
	other := suspendAll
	other.Deployment = "custos-de"
	if _, err := b.State(statement(t, e.monitor, other), e.rec); code(err) != custos.CodeInvalidRequest {
		t.Fatalf("another deployment's statement: %v", err)
	}
	msg := statement(t, e.monitor, suspendAll)
	s, err := b.State(msg, e.rec)
	if err != nil || !s.All || !b.Suspended("operator", "anyone") || b.Suspended("custodian", "anyone") {
		t.Fatalf("suspend all: %+v, %v", s, err)
	}
	if _, err := b.State(msg, e.rec); code(err) != custos.CodeConflict {
		t.Fatalf("a replayed statement: %v", err)
	}
	lift := Suspension{Deployment: "custos-us", Action: Lift, Reason: "resolved", Previous: s.Digest, Time: at}
	liftMsg := statement(t, e.monitor, lift)
	if s, err = b.State(liftMsg, e.rec); err != nil || s.Active() || b.Suspended("operator", "anyone") {
		t.Fatalf("lift: %+v, %v", s, err)
	}
	one := Suspension{Deployment: "custos-us", Action: Suspend, Principals: []string{"wei"}, Reason: "r", Previous: s.Digest, Time: at}
	if s, err = b.State(statement(t, e.monitor, one), e.rec); err != nil || !b.Suspended("operator", "wei") || b.Suspended("operator", "feed") {
		t.Fatalf("suspend one: %+v, %v", s, err)
	}
	if _, err := b.State(liftMsg, e.rec); code(err) != custos.CodeConflict {
		t.Fatalf("a replayed lift: %v", err)
	}
	if got := strings.Join(e.actions()[len(Kinds)+1:], ","); got != "suspend,lift,suspend" {
		t.Fatalf("recorded %s", got)
	}
	// The state survives a restart.
	if b = e.open(t); !b.Suspended("operator", "wei") {
		t.Fatal("the suspension did not survive a restart")
	}
}

// TestAlgorithms checks that the reviewer set is governed like the
// files: a configuration listing other reviewers is refused, a signed
// proposal changes the set in force.
func TestAlgorithms(t *testing.T) {
	e := newEnv(t)
	alice, bob := newKey(t, "alice"), newKey(t, "bob")
	configured := Algorithms{Reviewers: []string{alice.vkey}, Approvals: 1}
	e.cfg.Algorithms = func() (Algorithms, error) { return configured, nil }
	b := e.open(t)
	if a, err := ParseAlgorithms(b.InForce(KindAlgorithms)[AlgorithmsFile]); err != nil || len(a.Reviewers) != 1 {
		t.Fatalf("first signed set %+v, %v", a, err)
	}
	for _, tc := range []struct {
		name string
		a    string
	}{
		{"approvals beyond the reviewers", string(Algorithms{Reviewers: []string{alice.vkey}, Approvals: 2}.Marshal())},
		{"not canonical", `{"reviewers":[],"approvals":0}`},
		{"not a key", string(Algorithms{Reviewers: []string{"alice"}, Approvals: 1}.Marshal())},
		{"a key twice", string(Algorithms{Reviewers: []string{alice.vkey, alice.vkey}, Approvals: 1}.Marshal())},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := b.Propose(KindAlgorithms, Content{AlgorithmsFile: []byte(tc.a)}, e.rec); code(err) != custos.CodeInvalidRequest {
				t.Fatalf("Propose = %v", err)
			}
		})
	}
	next := Algorithms{Reviewers: []string{alice.vkey, bob.vkey}, Approvals: 2}
	v, _, err := b.Propose(KindAlgorithms, Content{AlgorithmsFile: next.Marshal()}, e.rec)
	if err != nil || !strings.Contains(v.Diff, "+    \""+bob.vkey) {
		t.Fatalf("Propose = %v, diff:\n%s", err, v.Diff)
	}
	for _, k := range []key{e.custodian, e.monitor} {
		if _, err := b.Sign(v.ID, sign(t, k, v.Text), e.rec); err != nil {
			t.Fatal(err)
		}
	}
	if a, _ := ParseAlgorithms(e.installed[KindAlgorithms][AlgorithmsFile]); a.Approvals != 2 {
		t.Fatalf("installed %+v", a)
	}
	// The configuration still lists alice alone: refused at start, the
	// signed set stays in force.
	e.events = nil
	b = e.open(t)
	if got := strings.Join(e.actions(), ","); got != "gov-unsigned,rules-in-force" || e.events[0].Kind != KindAlgorithms {
		t.Fatalf("start recorded %s", got)
	}
	if a, _ := ParseAlgorithms(b.InForce(KindAlgorithms)[AlgorithmsFile]); len(a.Reviewers) != 2 {
		t.Fatalf("in force after restart: %+v", a)
	}
}

// TestFirstReviewers checks that while the signed reviewer set is empty,
// the first set configured is taken (trust on first use), and then only a
// signed proposal changes it.
func TestFirstReviewers(t *testing.T) {
	e := newEnv(t)
	configured := Algorithms{Approvals: 2}
	e.cfg.Algorithms = func() (Algorithms, error) { return configured, nil }
	e.open(t)
	configured = Algorithms{Reviewers: []string{newKey(t, "alice").vkey}, Approvals: 1}
	e.events = nil
	b := e.open(t)
	if got := strings.Join(e.actions(), ","); got != "gov-init,rules-in-force" || e.events[0].Kind != KindAlgorithms {
		t.Fatalf("start recorded %s", got)
	}
	if a, _ := ParseAlgorithms(b.InForce(KindAlgorithms)[AlgorithmsFile]); len(a.Reviewers) != 1 {
		t.Fatalf("signed set %+v", a)
	}
	configured.Reviewers = append(configured.Reviewers, newKey(t, "bob").vkey)
	e.events = nil
	b = e.open(t)
	if got := strings.Join(e.actions(), ","); got != "gov-unsigned,rules-in-force" {
		t.Fatalf("start recorded %s", got)
	}
	if a, _ := ParseAlgorithms(b.InForce(KindAlgorithms)[AlgorithmsFile]); len(a.Reviewers) != 1 {
		t.Fatalf("signed set after an unsigned change %+v", a)
	}
}

// TestSigners checks that the signer set is governed: the first set
// configured is trusted, a different one in the configuration later is
// refused for the signed one, and a signed proposal changes it, signed by
// the signers in force.
func TestSigners(t *testing.T) {
	e := newEnv(t)
	signers := e.cfg.Signers
	e.cfg.Signers = nil
	e.open(t)
	e.cfg.Signers = signers
	e.events = nil
	e.open(t)
	if got := strings.Join(e.actions(), ","); got != "gov-init,rules-in-force" || e.events[0].Kind != KindSigners {
		t.Fatalf("first configured signers: start recorded %s", got)
	}
	// The custodian puts its own key in place of the monitor's.
	mallory := newKey(t, "mallory")
	e.cfg.Signers = map[string][]string{"custodian": {e.custodian.vkey, e.other.vkey}, "monitor": {mallory.vkey}}
	e.events = nil
	b := e.open(t)
	if got := strings.Join(e.actions(), ","); got != "gov-unsigned,rules-in-force" {
		t.Fatalf("changed signers: start recorded %s", got)
	}
	v, _, _ := b.Propose(KindPolicy, Content{"a.cedar": []byte("forbid (principal, action, resource);\n")}, e.rec)
	b.Sign(v.ID, sign(t, e.custodian, v.Text), e.rec)
	if _, err := b.Sign(v.ID, sign(t, mallory, v.Text), e.rec); code(err) != custos.CodeInvalidSignature {
		t.Fatalf("a key edited into the configuration signs: %v", err)
	}
	// A signed proposal replaces the monitor's key.
	monitor2 := newKey(t, "monitor-2")
	next := Signers{Roles: map[string][]string{"custodian": {e.custodian.vkey}, "monitor": {monitor2.vkey}}, Require: []string{"custodian", "monitor"}, Suspender: "monitor"}
	sv, _, err := b.Propose(KindSigners, Content{SignersFile: next.Marshal()}, e.rec)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []key{e.custodian, e.monitor} {
		if _, err := b.Sign(sv.ID, sign(t, k, sv.Text), e.rec); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Sign(v.ID, sign(t, e.monitor, v.Text), e.rec); code(err) != custos.CodeInvalidSignature {
		t.Fatalf("the replaced monitor key signs: %v", err)
	}
	if got, err := b.Sign(v.ID, sign(t, monitor2, v.Text), e.rec); err != nil || got.State != StateApplied {
		t.Fatalf("the new monitor key: %+v, %v", got, err)
	}
}

func FuzzParseSigners(f *testing.F) {
	f.Add(Signers{Roles: map[string][]string{"custodian": {newKey(f, "c").vkey}, "monitor": {newKey(f, "m").vkey}}, Require: []string{"custodian", "monitor"}, Suspender: "monitor"}.Marshal())
	f.Add(Signers{Require: []string{"custodian"}, Suspender: "monitor"}.Marshal())
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseSigners(data)
		if err != nil {
			return
		}
		if !bytes.Equal(s.Marshal(), data) {
			t.Fatalf("parsed %q, which writes %q", data, s.Marshal())
		}
	})
}

func TestParseLocations(t *testing.T) {
	text := Locations{Permitted: []string{"us-west-2", "sqlite:us/dallas-dc1", "us-west-2"}}.Marshal()
	if want := "{\n  \"permitted\": [\n    \"sqlite:us/dallas-dc1\",\n    \"us-west-2\"\n  ]\n}\n"; string(text) != want {
		t.Fatalf("Marshal = %q, want %q", text, want)
	}
	l, err := ParseLocations(text)
	if err != nil || !slices.Equal(l.Permitted, []string{"sqlite:us/dallas-dc1", "us-west-2"}) {
		t.Fatalf("ParseLocations = %+v, %v", l, err)
	}
	many := make([]string, maxLocations+1)
	for i := range many {
		many[i] = fmt.Sprintf("dc-%02d", i)
	}
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"no location", Locations{}.Marshal()},
		{"too many", Locations{Permitted: many}.Marshal()},
		{"unsorted", []byte("{\n  \"permitted\": [\n    \"us-west-2\",\n    \"us-east-1\"\n  ]\n}\n")},
		{"twice", []byte("{\n  \"permitted\": [\n    \"us-east-1\",\n    \"us-east-1\"\n  ]\n}\n")},
		{"not indented", []byte(`{"permitted":["us-east-1"]}`)},
		{"another field", []byte(`{"permitted":["us-east-1"],"default":"us-east-1"}`)},
		{"empty label", Locations{Permitted: []string{""}}.Marshal()},
		{"a space", Locations{Permitted: []string{"us east"}}.Marshal()},
		{"a leading slash", Locations{Permitted: []string{"/us"}}.Marshal()},
		{"a line break", Locations{Permitted: []string{"us\n"}}.Marshal()},
		{"a label too long", Locations{Permitted: []string{strings.Repeat("a", 129)}}.Marshal()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if l, err := ParseLocations(tc.data); err == nil {
				t.Fatalf("ParseLocations accepted %+v", l)
			}
		})
	}
	if _, err := ParseLocations(Locations{Permitted: []string{strings.Repeat("a", 128)}}.Marshal()); err != nil {
		t.Fatalf("a label of 128 bytes: %v", err)
	}
}

func FuzzParseLocations(f *testing.F) {
	f.Add(Locations{Permitted: []string{"us-east-1", "sqlite:us/dallas-dc1"}}.Marshal())
	f.Add(Locations{}.Marshal())
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := ParseLocations(data)
		if err != nil {
			return
		}
		if !bytes.Equal(l.Marshal(), data) {
			t.Fatalf("parsed %q, which writes %q", data, l.Marshal())
		}
	})
}

// TestLocations checks that the permitted locations are governed like the
// reviewer set: the set the configuration lists at the first start is
// trusted, a configuration listing others later is refused for the signed
// set, and a proposal changes it once signed by every required role.
func TestLocations(t *testing.T) {
	e := newEnv(t)
	cfg := e.cfg
	cfg.Locations = nil
	if _, err := Open(cfg, e.rec); err == nil {
		t.Fatal("Open without permitted locations")
	}
	b := e.open(t)
	if got := string(b.InForce(KindLocations)[LocationsFile]); got != string(e.locations.Marshal()) {
		t.Fatalf("first signed locations %q", got)
	}
	for _, tc := range []struct {
		name string
		c    Content
	}{
		{"another file", Content{"locations.yaml": []byte("permitted_locations: [us-east-1]\n")}},
		{"no location", Content{LocationsFile: Locations{}.Marshal()}},
		{"a bad label", Content{LocationsFile: Locations{Permitted: []string{"us east"}}.Marshal()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := b.Propose(KindLocations, tc.c, e.rec); code(err) != custos.CodeInvalidRequest {
				t.Fatalf("Propose = %v", err)
			}
		})
	}
	// custos.yaml permits another location without a proposal: refused at
	// start and at a reload, and the signed set stays in force.
	e.locations = Locations{Permitted: []string{"eu-west-1", "us-east-1"}}
	e.events = nil
	b = e.open(t)
	if got := strings.Join(e.actions(), ","); got != "gov-unsigned,rules-in-force" || e.events[0].Kind != KindLocations || !e.events[0].Deny {
		t.Fatalf("start recorded %s", got)
	}
	if err := b.Reload(e.rec); err == nil {
		t.Fatal("Reload accepted unsigned locations")
	}
	if l, _ := ParseLocations(b.InForce(KindLocations)[LocationsFile]); !slices.Equal(l.Permitted, []string{"us-east-1"}) {
		t.Fatalf("in force after an unsigned change: %+v", l)
	}
	v, _, err := b.Propose(KindLocations, Content{LocationsFile: e.locations.Marshal()}, e.rec)
	if err != nil || !strings.Contains(v.Diff, "+    \"eu-west-1\",\n") {
		t.Fatalf("Propose = %v, diff:\n%s", err, v.Diff)
	}
	if got, err := b.Sign(v.ID, sign(t, e.custodian, v.Text), e.rec); err != nil || got.State != StateOpen || e.installed[KindLocations] != nil {
		t.Fatalf("the custodian's signature alone: %+v, %v", got, err)
	}
	if got, err := b.Sign(v.ID, sign(t, e.monitor, v.Text), e.rec); err != nil || got.State != StateApplied {
		t.Fatalf("the monitor's signature: %+v, %v", got, err)
	}
	if l, _ := ParseLocations(e.installed[KindLocations][LocationsFile]); !slices.Equal(l.Permitted, e.locations.Permitted) {
		t.Fatalf("installed %+v", l)
	}
	// The configuration now agrees with the signed set.
	e.events = nil
	e.open(t)
	if got := strings.Join(e.actions(), ","); got != "rules-in-force" {
		t.Fatalf("start recorded %s", got)
	}
}

func FuzzParseAlgorithms(f *testing.F) {
	f.Add(Algorithms{Reviewers: []string{newKey(f, "alice").vkey}, Approvals: 1}.Marshal())
	f.Add(Algorithms{}.Marshal())
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := ParseAlgorithms(data)
		if err != nil {
			return
		}
		if !bytes.Equal(a.Marshal(), data) {
			t.Fatalf("parsed %q, which writes %q", data, a.Marshal())
		}
	})
}

func TestDiff(t *testing.T) {
	for _, tc := range []struct {
		name     string
		old, new Content
		want     string
	}{
		{"same", Content{"a": []byte("x\n")}, Content{"a": []byte("x\n")}, ""},
		{"changed line", Content{"a": []byte("x\ny\nz\n")}, Content{"a": []byte("x\nY\nz\n")}, "file a changed\n@@ -2,1 +2,1 @@\n-y\n+Y\n"},
		{"added line", Content{"a": []byte("x\nz\n")}, Content{"a": []byte("x\ny\nz\n")}, "file a changed\n@@ -1,0 +2,1 @@\n+y\n"},
		{"added file", Content{}, Content{"b": []byte("q\n")}, "file b added\n@@ -0,0 +1,1 @@\n+q\n"},
		{"removed file", Content{"b": []byte("q\n")}, Content{}, "file b removed\n@@ -1,1 +0,0 @@\n-q\n"},
		{"tab escaped", Content{"a": []byte("x\n")}, Content{"a": []byte("\tx\n")}, "file a changed\n@@ -1,1 +1,1 @@\n-x\n+\\tx\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Diff(tc.old, tc.new); got != tc.want {
				t.Fatalf("Diff =\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

func FuzzParseProposal(f *testing.F) {
	p := Proposal{Deployment: "custos-us", Kind: KindPolicy, Current: Digest(Content{"a": nil}), Proposed: Digest(Content{"b": nil}),
		Time: time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC), Diff: Diff(Content{"a.cedar": []byte("x\n")}, Content{"a.cedar": []byte("y\n")})}
	f.Add(p.Text())
	f.Add([]byte("custos governance proposal v1\n"))
	f.Fuzz(func(t *testing.T, text []byte) {
		p, err := ParseProposal(text)
		if err != nil {
			return
		}
		if string(p.Text()) != string(text) {
			t.Fatalf("parsed %q, which writes %q", text, p.Text())
		}
		if _, err := note.Sign(&note.Note{Text: string(text)}, newKey(t, "k").signer); err != nil {
			t.Fatalf("a proposal that parses is not signed-note text: %v", err)
		}
	})
}

func FuzzParseSuspension(f *testing.F) {
	s := Suspension{Deployment: "custos-us", Action: Suspend, Principals: []string{"a", "b"}, Reason: "why", Previous: "none",
		Time: time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)}
	f.Add(s.Text())
	s.Principals, s.Action = nil, Lift
	f.Add(s.Text())
	f.Fuzz(func(t *testing.T, text []byte) {
		s, err := ParseSuspension(text)
		if err != nil {
			return
		}
		if string(s.Text()) != string(text) {
			t.Fatalf("parsed %q, which writes %q", text, s.Text())
		}
	})
}

func FuzzDiff(f *testing.F) {
	f.Add([]byte("a\nb\nc\n"), []byte("a\nc\nd\n"))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		d := Diff(Content{"f": a}, Content{"f": b})
		if err := checkDiff(d); err != nil {
			t.Fatalf("Diff wrote %q: %v", d, err)
		}
	})
}

// TestTamperedProposal checks that a proposal whose stored files were
// changed after it was made is never applied, nor loaded.
func TestTamperedProposal(t *testing.T) {
	e := newEnv(t)
	b := e.open(t)
	v, _, err := b.Propose(KindPolicy, Content{"a.cedar": []byte("forbid (principal, action, resource);\n")}, e.rec)
	if err != nil {
		t.Fatal(err)
	}
	b.proposals[v.ID].Files["a.cedar"] = "permit (principal, action, resource) when { true };\n"
	b.Sign(v.ID, sign(t, e.custodian, v.Text), e.rec)
	if _, err := b.Sign(v.ID, sign(t, e.monitor, v.Text), e.rec); err == nil {
		t.Fatal("applied files other than the signed ones")
	}
	if e.installed[KindPolicy] != nil {
		t.Fatal("installed files other than the signed ones")
	}
	path := filepath.Join(e.cfg.Dir, "proposals", v.ID+".json")
	raw, _ := os.ReadFile(path)
	os.WriteFile(path, []byte(strings.Replace(string(raw), "forbid (principal", "permit (principal", 1)), 0o600)
	if _, err := Open(e.cfg, e.rec); err == nil {
		t.Fatal("Open loaded a tampered proposal")
	}
}

// dropKind removes kind k from the signed state, as a custos that did not
// govern it wrote the state.
func dropKind(t *testing.T, e *env, k Kind) {
	t.Helper()
	path := filepath.Join(e.cfg.Dir, inForceFile)
	var state map[string]json.RawMessage
	data, _ := os.ReadFile(path)
	if err := json.Unmarshal(data, &state); err != nil {
		t.Fatal(err)
	}
	delete(state, string(k))
	data, _ = json.Marshal(state)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestKindAddedByUpgrade opens a signed state written before custos
// governed flows: the flows file on disk becomes the signed one, as at a
// first start, and the other kinds stay as signed.
func TestKindAddedByUpgrade(t *testing.T) {
	e := newEnv(t)
	e.cfg.FlowsPath = filepath.Join(e.dir, "flows.yaml")
	os.WriteFile(e.cfg.FlowsPath, []byte("flows: []\n"), 0o644)
	e.open(t)
	dropKind(t, e, KindFlows)
	e.events = nil
	b := e.open(t)
	if got := strings.Join(e.actions(), ","); got != "gov-init,rules-in-force" || e.events[0].Kind != KindFlows {
		t.Fatalf("opening an older signed state recorded %s", got)
	}
	if got := string(b.InForce(KindFlows)[FlowsFile]); got != "flows: []\n" {
		t.Errorf("signed flows %q", got)
	}
	// Taken once: the next start finds it signed.
	e.events = nil
	e.open(t)
	if got := strings.Join(e.actions(), ","); got != "rules-in-force" {
		t.Errorf("the next start recorded %s", got)
	}
	// A flows file edited on disk is refused like any other.
	os.WriteFile(e.cfg.FlowsPath, []byte("flows: []\n# edited\n"), 0o644)
	e.events = nil
	e.open(t)
	if got := strings.Join(e.actions(), ","); got != "gov-unsigned,rules-in-force" {
		t.Errorf("an edited flows file recorded %s", got)
	}
}

// TestLocationsAddedByUpgrade opens a signed state written before custos
// governed the permitted locations: the set the configuration lists
// becomes the signed one once, checked as a proposal of it is.
func TestLocationsAddedByUpgrade(t *testing.T) {
	e := newEnv(t)
	e.open(t)
	dropKind(t, e, KindLocations)
	e.locations = Locations{Permitted: []string{"us-east-1", "us-east-2"}}
	var checked Content
	check := e.cfg.Check
	e.cfg.Check = func(k Kind, c Content) error {
		if k == KindLocations {
			checked = c
		}
		return check(k, c)
	}
	e.events = nil
	b := e.open(t)
	if got := strings.Join(e.actions(), ","); got != "gov-init,rules-in-force" || e.events[0].Kind != KindLocations {
		t.Fatalf("opening an older signed state recorded %s", got)
	}
	if string(checked[LocationsFile]) != string(e.locations.Marshal()) {
		t.Fatalf("checked %q", checked[LocationsFile])
	}
	if l, _ := ParseLocations(b.InForce(KindLocations)[LocationsFile]); !slices.Equal(l.Permitted, e.locations.Permitted) {
		t.Fatalf("signed locations %+v", l)
	}
	e.events = nil
	e.open(t)
	if got := strings.Join(e.actions(), ","); got != "rules-in-force" {
		t.Errorf("the next start recorded %s", got)
	}
}
