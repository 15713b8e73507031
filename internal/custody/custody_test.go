package custody_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/custos/custos"
	"github.com/custos/custos/internal/auditlog"
	"github.com/custos/custos/internal/custody"
	"github.com/custos/custos/internal/custody/custodytest"
	"github.com/custos/custos/internal/keys"
	"github.com/custos/custos/internal/starter"
	"github.com/custos/custos/internal/store/sqlite"
	"github.com/custos/custos/internal/vault"
)

// fixture is a custody service over a real SQLite store, keyring and
// transparency log, with the starter schema and policies.
type fixture struct {
	svc     *custody.Service
	store   *sqlite.Store
	keyring *keys.Local
	auditor *switchAuditor
	erased  atomic.Int32
	env     *custodytest.Env
}

// switchAuditor passes entries to the log until failing is set.
type switchAuditor struct {
	j       custos.Auditor
	failing atomic.Bool
}

func (a *switchAuditor) Record(ctx context.Context, e custos.AuditEntry) (uint64, error) {
	if a.failing.Load() {
		return 0, errors.New("disk full")
	}
	return a.j.Record(ctx, e)
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	return newFixtureWith(t, starter.Schema(), nil)
}

// newFixtureWith builds a fixture on the given schema; a non-nil auditor
// replaces the log.
func newFixtureWith(t testing.TB, schemaFile []byte, auditor custos.Auditor) *fixture {
	t.Helper()
	f := &fixture{}
	env := custodytest.New(t, custodytest.Options{
		Schema: schemaFile,
		Auditor: func(j *auditlog.Log) custos.Auditor {
			f.auditor = &switchAuditor{j: j}
			return cmp.Or[custos.Auditor](auditor, f.auditor)
		},
		OnErase: func() error { f.erased.Add(1); return nil },
	})
	f.env, f.svc, f.store, f.keyring = env, env.Service, env.Store, env.Keyring
	return f
}

// withStore returns a service like f's over another store.
func (f *fixture) withStore(t testing.TB, st custos.Store) *custody.Service {
	return f.env.With(t, func(c *custody.Config) { c.Store = st })
}

var (
	svc      = custody.Request{Principal: custos.Principal{ID: "feed", Issuer: "dev", Org: "operator", Loc: "US", Roles: []string{"service"}}, Purpose: "serving"}
	staff    = custody.Request{Principal: custos.Principal{ID: "alice", Issuer: "dev", Org: "custodian", Loc: "US", Roles: []string{"support"}, Vetted: true}, Purpose: "support"}
	approver = custos.Principal{ID: "bob", Issuer: "dev", Org: "custodian", Loc: "US", Vetted: true}
	engineer = custody.Request{Principal: custos.Principal{ID: "wei", Issuer: "dev", Org: "operator", Loc: "SG", Roles: []string{"engineer"}}}
	monitor  = custody.Request{Principal: custos.Principal{ID: "aud", Issuer: "dev", Org: "monitor", Loc: "US"}}
)

var ada = map[string]string{
	"id": `"u1"`, "handle": `"ada"`, "email": `"ada@example.com"`, "phone": `"+1 202 555 0101"`,
	"birthdate": `"1990-04-12"`, "ip": `"203.0.113.10"`, "country": `"US"`,
}

func raw(m map[string]string) map[string]json.RawMessage {
	out := map[string]json.RawMessage{}
	for k, v := range m {
		out[k] = json.RawMessage(v)
	}
	return out
}

func (f *fixture) addUser(t testing.TB, id string, fields map[string]string) {
	t.Helper()
	ctx := context.Background()
	if _, err := f.svc.Register(ctx, svc, custos.Subject{ID: id, Residency: "US"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.svc.Write(ctx, svc, "users", id, raw(fields)); err != nil {
		t.Fatal(err)
	}
}

func forms(r custody.Read) map[string]custos.Form {
	out := map[string]custos.Form{}
	for n, f := range r.Fields {
		out[n] = f.Form
	}
	return out
}

func TestReadByParty(t *testing.T) {
	f := newFixture(t)
	f.addUser(t, "u1", ada)
	ctx := context.Background()

	r, err := f.svc.Read(ctx, staff, "users", "u1")
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range ada {
		if got := r.Fields[name]; got.Form != custos.FormClear || string(got.Value) != want {
			t.Errorf("staff %s = %s %s, want clear %s", name, got.Form, got.Value, want)
		}
	}

	r, err = f.svc.Read(ctx, engineer, "users", "u1")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"id", "email", "phone", "birthdate", "ip"} {
		got := r.Fields[name]
		if got.Form == custos.FormClear || got.Form == custos.FormWithheld {
			t.Errorf("engineer abroad got %s as %s", name, got.Form)
		}
		if strings.Contains(string(got.Value), strings.Trim(ada[name], `"`)) {
			t.Errorf("engineer abroad got %s's value: %s", name, got.Value)
		}
	}
	if got := r.Fields["handle"]; got.Form != custos.FormClear || string(got.Value) != `"ada"` {
		t.Errorf("engineer handle = %+v, want clear", got)
	}
	phone := string(r.Fields["phone"].Value)
	if len(phone) != len(ada["phone"]) || phone[0:2] != `"+` {
		t.Errorf("phone token %s does not keep the format of %s", phone, ada["phone"])
	}

	r, err = f.svc.Read(ctx, monitor, "users", "u1")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]custos.Form{"id": custos.FormWithheld, "handle": custos.FormWithheld, "email": custos.FormWithheld,
		"phone": custos.FormWithheld, "birthdate": custos.FormWithheld, "ip": custos.FormWithheld, "country": custos.FormClear}
	if got := forms(r); len(got) != len(want) {
		t.Errorf("monitor got fields %v, want every field listed: %v", got, want)
	}
	for n, fm := range forms(r) {
		if want[n] != fm {
			t.Errorf("monitor %s = %s, want %s", n, fm, want[n])
		}
		if fm == custos.FormWithheld && r.Fields[n].Value != nil {
			t.Errorf("monitor got a value for withheld %s", n)
		}
	}
}

func TestStaffNeedsPurpose(t *testing.T) {
	f := newFixture(t)
	f.addUser(t, "u1", ada)
	r, err := f.svc.Read(context.Background(), custody.Request{Principal: staff.Principal}, "users", "u1")
	if err != nil {
		t.Fatal(err)
	}
	if fm := r.Fields["email"].Form; fm == custos.FormClear {
		t.Fatalf("staff without a purpose got email in clear")
	}
}

func TestTokensPerAudience(t *testing.T) {
	f := newFixture(t)
	f.addUser(t, "u1", ada)
	ctx := context.Background()
	eng, _ := f.svc.Read(ctx, engineer, "users", "u1")
	unvetted := custody.Request{Principal: custos.Principal{ID: "carol", Org: "custodian", Loc: "US"}}
	cus, err := f.svc.Read(ctx, unvetted, "users", "u1")
	if err != nil {
		t.Fatal(err)
	}
	if eng.Fields["email"].Form != custos.FormToken || cus.Fields["email"].Form != custos.FormToken {
		t.Fatalf("want tokens, got %s and %s", eng.Fields["email"].Form, cus.Fields["email"].Form)
	}
	if string(eng.Fields["email"].Value) == string(cus.Fields["email"].Value) {
		t.Fatal("operator and custodian got the same token: audiences can be joined")
	}
	again, _ := f.svc.Read(ctx, engineer, "users", "u1")
	if string(again.Fields["email"].Value) != string(eng.Fields["email"].Value) {
		t.Fatal("tokens are not deterministic")
	}
}

func TestWriteRefusals(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.svc.Register(ctx, svc, custos.Subject{ID: "u1", Residency: "US"}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		req    custody.Request
		coll   string
		fields map[string]string
		code   string
	}{
		{"unknown collection", svc, "secrets", ada, custos.CodeUnknownCollection},
		{"unknown field", svc, "users", map[string]string{"id": `"u1"`, "ssn": `"078-05-1120"`}, custos.CodeUnknownField},
		{"wrong type", svc, "users", map[string]string{"id": `"u1"`, "email": `42`}, custos.CodeInvalidField},
		{"bad email", svc, "users", map[string]string{"id": `"u1"`, "email": `"not an email"`}, custos.CodeInvalidField},
		{"unregistered subject", svc, "users", map[string]string{"id": `"u2"`}, custos.CodeNotFound},
		{"engineer abroad may not write", engineer, "users", map[string]string{"id": `"u1"`}, custos.CodeForbidden},
		{"monitor may not write", monitor, "users", map[string]string{"id": `"u1"`}, custos.CodeForbidden},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := f.svc.Write(ctx, c.req, c.coll, "r1", raw(c.fields))
			if got := custos.ErrorCode(err); got != c.code {
				t.Fatalf("code = %s (%v), want %s", got, err, c.code)
			}
			for _, v := range c.fields {
				if len(v) > 6 && strings.Contains(err.Error(), strings.Trim(v, `"`)) {
					t.Fatalf("error %q holds a value", err)
				}
			}
		})
	}
}

func TestResidency(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	_, err := f.svc.Register(ctx, svc, custos.Subject{ID: "u9", Residency: "DE"})
	if custos.ErrorCode(err) != custos.CodeWrongJurisdiction {
		t.Fatalf("DE subject: %v, want wrong_jurisdiction", err)
	}
	if _, err := f.store.Subject(ctx, "u9"); !errors.Is(err, custos.ErrNotFound) {
		t.Fatalf("refused subject was stored: %v", err)
	}
	created, err := f.svc.Register(ctx, svc, custos.Subject{ID: "u1", Residency: "US"})
	if err != nil || !created {
		t.Fatalf("Register = %v, %v", created, err)
	}
	created, err = f.svc.Register(ctx, svc, custos.Subject{ID: "u1", Residency: "US"})
	if err != nil || created {
		t.Fatalf("second Register = %v, %v; want false, nil", created, err)
	}
	if _, err := f.svc.Register(ctx, engineer, custos.Subject{ID: "u2", Residency: "US"}); custos.ErrorCode(err) != custos.CodeForbidden {
		t.Fatalf("engineer abroad registered a subject: %v", err)
	}
}

func TestReadDeniedSaysNothing(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	// The monitor may see no field of videos: it gets 403 whether or not
	// the record exists.
	_, err := f.svc.Read(ctx, monitor, "videos", "nope")
	if custos.ErrorCode(err) != custos.CodeForbidden {
		t.Fatalf("monitor read of videos: %v, want forbidden", err)
	}
	if _, err := f.svc.Read(ctx, staff, "users", "nope"); custos.ErrorCode(err) != custos.CodeNotFound {
		t.Fatalf("missing record: %v, want not_found", err)
	}
}

func TestDetokenize(t *testing.T) {
	f := newFixture(t)
	f.addUser(t, "u1", ada)
	ctx := context.Background()
	eng, err := f.svc.Read(ctx, engineer, "users", "u1")
	if err != nil {
		t.Fatal(err)
	}
	var tok string
	json.Unmarshal(eng.Fields["email"].Value, &tok)
	just := custos.Justification{Reason: "fraud", Text: "chargeback review", Ticket: "T-1"}
	tokens := []string{tok, "tk_unknown"}
	d := custody.Detokenization{Tokens: tokens, Justification: just}
	bob := custody.Request{Principal: approver, Purpose: "security"}

	if _, err := f.svc.Detokenize(ctx, staff, d); custos.ErrorCode(err) != custos.CodeApproval {
		t.Fatalf("without approval: %v, want approval_required", err)
	}
	if _, err := f.svc.Approve(ctx, staff, custody.ApprovalRequest{Requester: "alice", Tokens: tokens, Justification: just}); custos.ErrorCode(err) != custos.CodeApproval {
		t.Fatalf("self-approval: %v, want approval_required", err)
	}
	if _, err := f.svc.Approve(ctx, engineer, custody.ApprovalRequest{Requester: "alice", Tokens: tokens, Justification: just}); custos.ErrorCode(err) != custos.CodeForbidden {
		t.Fatalf("engineer approving: %v, want forbidden", err)
	}
	ap, err := f.svc.Approve(ctx, bob, custody.ApprovalRequest{Requester: "alice", Tokens: tokens, Justification: just})
	if err != nil {
		t.Fatal(err)
	}
	// The grant serves exactly the request it approves.
	other := d
	other.Approval = ap.Grant
	other.Justification.Ticket = "T-999"
	if _, err := f.svc.Detokenize(ctx, staff, other); custos.ErrorCode(err) != custos.CodeApproval {
		t.Fatalf("grant used for another justification: %v", err)
	}
	d.Approval = ap.Grant
	res, err := f.svc.Detokenize(ctx, staff, d)
	if err != nil {
		t.Fatal(err)
	}
	if v := res.Values[0]; !v.Found || string(v.Value) != `"ada@example.com"` || v.Field != "users.email" {
		t.Fatalf("detokenized %+v", v)
	}
	if res.Values[1].Found {
		t.Fatal("unknown token found")
	}
	if _, err := f.svc.Detokenize(ctx, staff, d); custos.ErrorCode(err) != custos.CodeApproval {
		t.Fatalf("grant used twice: %v, want approval_required", err)
	}
	// A forged grant, or one for another requester, serves nobody.
	ap2, _ := f.svc.Approve(ctx, bob, custody.ApprovalRequest{Requester: "carol", Tokens: tokens, Justification: just})
	d.Approval = ap2.Grant
	if _, err := f.svc.Detokenize(ctx, staff, d); custos.ErrorCode(err) != custos.CodeApproval {
		t.Fatalf("grant of another requester: %v", err)
	}
	d.Approval = ap2.Grant[:len(ap2.Grant)-2] + "AA"
	if _, err := f.svc.Detokenize(ctx, staff, d); custos.ErrorCode(err) != custos.CodeApproval {
		t.Fatalf("forged grant: %v", err)
	}
	// Someone who may detokenize nothing is refused before any lookup: the
	// same answer for a real token and a made-up one.
	for _, tk := range []string{tok, "tk_made_up"} {
		_, err := f.svc.Detokenize(ctx, engineer, custody.Detokenization{Tokens: []string{tk}, Justification: just})
		if custos.ErrorCode(err) != custos.CodeForbidden || !strings.Contains(err.Error(), "may not detokenize") && !strings.Contains(err.Error(), "to detokenize") {
			t.Fatalf("engineer detokenizing %s: %v", tk, err)
		}
		if strings.Contains(err.Error(), "users.") {
			t.Fatalf("refusal names the token's field: %v", err)
		}
	}
	if _, err := f.svc.Detokenize(ctx, staff, custody.Detokenization{Tokens: []string{tok}}); custos.ErrorCode(err) != custos.CodeJustification {
		t.Fatalf("no justification: %v", err)
	}
	bg, err := f.svc.Detokenize(ctx, staff, custody.Detokenization{Tokens: []string{tok}, Justification: just, BreakGlass: true})
	if err != nil || !bg.BreakGlass || !bg.Values[0].Found {
		t.Fatalf("break-glass: %+v, %v", bg, err)
	}
	// Once erased, tokens resolve to nothing.
	if _, err := f.svc.Erase(ctx, svc, "u1"); err != nil {
		t.Fatal(err)
	}
	res, err = f.svc.Detokenize(ctx, staff, custody.Detokenization{Tokens: []string{tok}, Justification: just, BreakGlass: true})
	if err != nil || res.Values[0].Found {
		t.Fatalf("erased subject's token: %+v, %v", res, err)
	}
}

// TestDetokenizeAudited checks that the entry of a detokenization names
// whose data left and which fields, by pseudonym, and the approver.
func TestDetokenizeAudited(t *testing.T) {
	f := newFixture(t)
	f.addUser(t, "u1", ada)
	ctx := context.Background()
	eng, _ := f.svc.Read(ctx, engineer, "users", "u1")
	var tok string
	json.Unmarshal(eng.Fields["phone"].Value, &tok)
	just := custos.Justification{Reason: "fraud", Text: "review", Ticket: "T-2"}
	ap, err := f.svc.Approve(ctx, custody.Request{Principal: approver}, custody.ApprovalRequest{Requester: "alice", Tokens: []string{tok}, Justification: just})
	if err != nil {
		t.Fatal(err)
	}
	res, err := f.svc.Detokenize(ctx, staff, custody.Detokenization{Tokens: []string{tok}, Justification: just, Approval: ap.Grant})
	if err != nil {
		t.Fatal(err)
	}
	e := f.env.Entries(t)[res.AuditIndex]
	if e.Action != "detokenize" || e.Approver != "bob" || len(e.Subjects) != 1 || e.Subjects[0] == "u1" || e.Forms["users.phone"] != "clear" {
		t.Fatalf("detokenize entry = %+v", e)
	}
}

func TestEraseReceipt(t *testing.T) {
	f := newFixture(t)
	f.addUser(t, "u1", ada)
	ctx := context.Background()
	if _, _, err := f.svc.Write(ctx, svc, "watch_events", "w1", raw(map[string]string{"user": `"u1"`, "video": `"v1"`, "watched_ms": `1200`, "at": `"2026-11-26T10:00:00Z"`})); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Erase(ctx, engineer, "u1"); custos.ErrorCode(err) != custos.CodeForbidden {
		t.Fatalf("engineer erased: %v", err)
	}
	e, err := f.svc.Erase(ctx, svc, "u1")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := vault.VerifyReceipt(e.Receipt, f.env.Receipts)
	if err != nil {
		t.Fatalf("receipt does not verify: %v\n%s", err, e.Receipt)
	}
	if rc.Subject != "u1" || rc.Records != 2 || rc.Jurisdiction != "US" || rc.KEK != f.keyring.Current() {
		t.Fatalf("receipt = %+v", rc)
	}
	if f.erased.Load() != 1 {
		t.Fatal("OnErase not called")
	}
	for _, rd := range []struct{ coll, id string }{{"users", "u1"}, {"watch_events", "w1"}} {
		if _, err := f.svc.Read(ctx, staff, rd.coll, rd.id); custos.ErrorCode(err) != custos.CodeNotFound {
			t.Fatalf("read of erased %s: %v", rd.coll, err)
		}
	}
	if _, err := f.svc.Erase(ctx, svc, "u1"); custos.ErrorCode(err) != custos.CodeNotFound {
		t.Fatalf("second erase: %v", err)
	}
}

// TestErasureFinalOnOldCopies is the crypto-shredding property: a copy of
// the database taken before an erasure, with the keyring as it is after the
// next rotation, cannot give back the erased subject's protected data, nor
// tie any token handed out for it to its refs.
func TestErasureFinalOnOldCopies(t *testing.T) {
	f := newFixture(t)
	f.addUser(t, "u1", ada)
	bob := map[string]string{"id": `"u2"`, "email": `"bob@example.org"`}
	f.addUser(t, "u2", bob)
	ctx := context.Background()
	// The tokens handed out before the erasure, to both indexed audiences.
	unvetted := custody.Request{Principal: custos.Principal{ID: "carol", Org: "custodian", Loc: "US"}}
	erasedTokens := tokensOf(t, f, "u1", []string{"id", "email", "phone", "birthdate", "ip"}, engineer, unvetted)
	liveTokens := tokensOf(t, f, "u2", []string{"id", "email"}, engineer, unvetted)

	backup := filepath.Join(t.TempDir(), "backup.db")
	if err := f.store.Backup(ctx, backup); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Erase(ctx, svc, "u1"); err != nil {
		t.Fatal(err)
	}
	if _, err := vault.Rotate(ctx, f.store, f.keyring, nil); err != nil {
		t.Fatal(err)
	}

	// No token of the erased subject, and no protected value, is in the
	// backup's bytes.
	data, err := os.ReadFile(backup)
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range erasedTokens {
		if bytes.Contains(data, []byte(tok)) {
			t.Errorf("the backup holds the erased subject's token %q", tok)
		}
	}
	for _, name := range []string{"email", "phone", "birthdate", "ip"} {
		if v := strings.Trim(ada[name], `"`); bytes.Contains(data, []byte(v)) {
			t.Errorf("the backup holds the erased subject's %s in clear", name)
		}
	}

	old, err := sqlite.Open(backup, "us-local")
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	v := vault.New(f.keyring, "US")
	subj, err := old.Subject(ctx, "u1")
	if err != nil {
		t.Fatalf("the backup lost the subject: %v", err)
	}
	if _, err := v.Key(ctx, subj, custos.KeyReason{Subject: "u1", Principal: "test"}); !errors.Is(err, custos.ErrKeyDestroyed) {
		t.Fatalf("erased subject's key from the backup: %v, want ErrKeyDestroyed", err)
	}
	rec, err := old.Record(ctx, "users", "u1")
	if err != nil || strings.Contains(string(rec.Sealed)+string(rec.Clear), "ada@example.com") {
		t.Fatalf("backup record: %v (or plaintext at rest)", err)
	}
	// The backup's refs of the erased subject match none of its tokens
	// under the keys now held; their sealed tokens need the destroyed key.
	refs, err := old.SubjectTokenRefs(ctx, "u1")
	if err != nil {
		t.Fatal(err)
	}
	if len(refs) != len(erasedTokens) {
		t.Fatalf("the backup holds %d refs of the erased subject, want %d", len(refs), len(erasedTokens))
	}
	for _, tok := range erasedTokens {
		indexes, err := v.TokenIndexes(ctx, tok)
		if err != nil || len(indexes) == 0 {
			t.Fatalf("TokenIndexes = %d, %v", len(indexes), err)
		}
		for _, x := range refs {
			if slices.ContainsFunc(indexes, func(i []byte) bool { return bytes.Equal(i, x.Index) }) {
				t.Errorf("token %q matches the backup's ref of %s.%s for %s", tok, x.Collection, x.Field, x.Audience)
			}
		}
	}
	for _, x := range refs {
		if slices.Contains(f.keyring.KEKs(), x.KEKID) {
			t.Errorf("a backup ref is indexed under a KEK still held: %s", x.KEKID)
		}
	}

	// The live store finds nothing of the erased subject; the live
	// subject's tokens, indexed again by the rotation, still detokenize.
	for _, d := range detokenize(t, f, erasedTokens).Values {
		if d.Found {
			t.Errorf("the erased subject's token %q detokenized to %s", d.Token, d.Value)
		}
	}
	for _, d := range detokenize(t, f, liveTokens).Values {
		if !d.Found || (d.Field != "users.id" && d.Field != "users.email") {
			t.Errorf("the live subject's token %q after rotation: %+v", d.Token, d)
		}
	}
	// The live subject still opens.
	r, err := f.svc.Read(ctx, staff, "users", "u2")
	if err != nil || string(r.Fields["email"].Value) != `"bob@example.org"` {
		t.Fatalf("live subject after rotation: %+v, %v", r.Fields["email"], err)
	}
}

// tokensOf returns the tokens of the given fields of user id handed to
// each of the readers, who must get them as tokens.
func tokensOf(t testing.TB, f *fixture, id string, fields []string, readers ...custody.Request) []string {
	t.Helper()
	var out []string
	for _, r := range readers {
		rd, err := f.svc.Read(context.Background(), r, "users", id)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range fields {
			var tok string
			if fl := rd.Fields[name]; fl.Form != custos.FormToken || json.Unmarshal(fl.Value, &tok) != nil {
				t.Fatalf("%s got %s of %s as %s", r.Principal.ID, name, id, fl.Form)
			}
			out = append(out, tok)
		}
	}
	return out
}

// detokenize has staff detokenize tokens with a second custodian's approval.
func detokenize(t testing.TB, f *fixture, tokens []string) custody.DetokenizeResult {
	t.Helper()
	ctx := context.Background()
	just := custos.Justification{Reason: "fraud", Text: "review", Ticket: "T-7"}
	ap, err := f.svc.Approve(ctx, custody.Request{Principal: approver}, custody.ApprovalRequest{Requester: staff.Principal.ID, Tokens: tokens, Justification: just})
	if err != nil {
		t.Fatal(err)
	}
	res, err := f.svc.Detokenize(ctx, staff, custody.Detokenization{Tokens: tokens, Justification: just, Approval: ap.Grant})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestFailsClosedWithoutAudit(t *testing.T) {
	f := newFixture(t)
	f.addUser(t, "u1", ada)
	f.auditor.failing.Store(true)
	ctx := context.Background()
	r, err := f.svc.Read(ctx, staff, "users", "u1")
	if custos.ErrorCode(err) != custos.CodeAuditUnavailable || r.Fields != nil {
		t.Fatalf("read without audit: %+v, %v", r, err)
	}
	if _, _, err := f.svc.Write(ctx, svc, "users", "u1", raw(ada)); custos.ErrorCode(err) != custos.CodeAuditUnavailable {
		t.Fatalf("write without audit: %v", err)
	}
	if _, err := f.svc.Erase(ctx, svc, "u1"); custos.ErrorCode(err) != custos.CodeAuditUnavailable {
		t.Fatalf("erase without audit: %v", err)
	}
	f.auditor.failing.Store(false)
	if _, err := f.svc.Read(ctx, staff, "users", "u1"); err != nil {
		t.Fatalf("record lost after audit came back: %v", err)
	}
}

func TestAuditHoldsNoPersonalData(t *testing.T) {
	f := newFixture(t)
	f.addUser(t, "u1", ada)
	ctx := context.Background()
	f.svc.Read(ctx, staff, "users", "u1")
	f.svc.Read(ctx, engineer, "users", "u1")
	f.svc.Register(ctx, svc, custos.Subject{ID: "u1-de", Residency: "DE"})
	f.svc.Erase(ctx, svc, "u1")
	entries := f.env.Entries(t)
	if len(entries) < 5 {
		t.Fatalf("the log has %d entries, want at least 5", len(entries))
	}
	// Every byte the log keeps on disk: tiles, bundles, checkpoint.
	var data []byte
	filepath.WalkDir(filepath.Join(f.env.Dir, "log"), func(path string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			b, _ := os.ReadFile(path)
			data = append(data, b...)
		}
		return nil
	})
	for _, v := range []string{"ada@example.com", "202 555", "1990-04-12", "203.0.113.10", `"u1"`, "u1-de"} {
		if strings.Contains(string(data), v) {
			t.Errorf("the audit log holds %q", v)
		}
	}
	if !slices.ContainsFunc(entries, func(e custos.AuditEntry) bool { return e.Action == "register" && e.Decision == "deny" }) {
		t.Error("the refused registration is not on the log")
	}
}

func TestWriteRefusesOtherSubjectsRecord(t *testing.T) {
	f := newFixture(t)
	f.addUser(t, "u1", ada)
	ctx := context.Background()
	if _, err := f.svc.Register(ctx, svc, custos.Subject{ID: "u2", Residency: "US"}); err != nil {
		t.Fatal(err)
	}
	_, _, err := f.svc.Write(ctx, svc, "users", "u1", raw(map[string]string{"id": `"u2"`}))
	if custos.ErrorCode(err) != custos.CodeConflict {
		t.Fatalf("overwriting another subject's record: %v, want conflict", err)
	}
	r, _ := f.svc.Read(ctx, staff, "users", "u1")
	if string(r.Fields["email"].Value) != `"ada@example.com"` {
		t.Fatal("the refused write changed the record")
	}
}

func BenchmarkRead(b *testing.B) {
	f := newFixture(b)
	f.addUser(b, "u1", ada)
	ctx := context.Background()
	for _, r := range []struct {
		name string
		req  custody.Request
	}{{"staff-clear", staff}, {"engineer-tokens", engineer}, {"monitor", monitor}} {
		b.Run(r.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := f.svc.Read(ctx, r.req, "users", "u1"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// nopAuditor stands in for the log when a benchmark measures the rest.
type nopAuditor struct{ n atomic.Uint64 }

func (a *nopAuditor) Record(context.Context, custos.AuditEntry) (uint64, error) {
	return a.n.Add(1), nil
}

// profiles has ten fields, six of them protected: the record of the read
// goal (decide + open + shape of a 10-field record under 50 µs).
const profiles = `version: 1
collections:
  profiles:
    subject: user
    fields:
      user:      {type: id, class: protected}
      handle:    {type: string, class: public}
      email:     {type: email, class: protected}
      phone:     {type: phone, class: protected}
      birthdate: {type: date, class: protected}
      ip:        {type: ip, class: protected}
      seen:      {type: timestamp, class: protected}
      country:   {type: string, class: business-metric}
      followers: {type: int, class: public}
      verified:  {type: bool, class: interop}
`

// BenchmarkRead10 measures a read of a 10-field record through decide,
// open and shape, with the audit log out of the picture (BenchmarkRead
// includes the durable log).
func BenchmarkRead10(b *testing.B) {
	f := newFixtureWith(b, []byte(profiles), &nopAuditor{})
	ctx := context.Background()
	if _, err := f.svc.Register(ctx, svc, custos.Subject{ID: "u1", Residency: "US"}); err != nil {
		b.Fatal(err)
	}
	if _, _, err := f.svc.Write(ctx, svc, "profiles", "p1", raw(map[string]string{
		"user": `"u1"`, "handle": `"ada"`, "email": `"ada@example.com"`, "phone": `"+1 202 555 0101"`,
		"birthdate": `"1990-04-12"`, "ip": `"203.0.113.10"`, "seen": `"2026-11-26T10:00:00Z"`,
		"country": `"US"`, "followers": `1200`, "verified": `true`,
	})); err != nil {
		b.Fatal(err)
	}
	sqliteSvc := f.svc
	memo := &memoStore{Store: f.store}
	memSvc := f.withStore(b, memo)
	for _, st := range []struct {
		name string
		svc  *custody.Service
	}{{"sqlite", sqliteSvc}, {"memo", memSvc}} {
		for _, r := range []struct {
			name string
			req  custody.Request
		}{{"staff-clear", staff}, {"engineer-tokens", engineer}} {
			b.Run(st.name+"/"+r.name, func(b *testing.B) {
				for b.Loop() {
					rd, err := st.svc.Read(ctx, r.req, "profiles", "p1")
					if err != nil || len(rd.Fields) != 10 {
						b.Fatal(err, len(rd.Fields))
					}
				}
			})
		}
	}
}

// memoStore answers repeated Record and Subject calls from memory, so that
// a benchmark measures custody's own work (decide, open, shape) apart from
// the store's.
type memoStore struct {
	custos.Store
	mu   sync.Mutex
	recs map[string]custos.SealedRecord
	subj map[string]custos.StoredSubject
}

func (m *memoStore) Record(ctx context.Context, coll, id string) (custos.SealedRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r, ok := m.recs[coll+"/"+id]; ok {
		return r, nil
	}
	r, err := m.Store.Record(ctx, coll, id)
	if err == nil {
		if m.recs == nil {
			m.recs = map[string]custos.SealedRecord{}
		}
		m.recs[coll+"/"+id] = r
	}
	return r, err
}

func (m *memoStore) Subject(ctx context.Context, id string) (custos.StoredSubject, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s, ok := m.subj[id]; ok {
		return s, nil
	}
	s, err := m.Store.Subject(ctx, id)
	if err == nil {
		if m.subj == nil {
			m.subj = map[string]custos.StoredSubject{}
		}
		m.subj[id] = s
	}
	return s, err
}

func TestUnwrapReasonIsTheFormReleased(t *testing.T) {
	f := newFixture(t)
	f.addUser(t, "u1", ada)
	ctx := context.Background()
	before := f.keyring.Unwraps()
	if _, err := f.svc.Read(ctx, engineer, "users", "u1"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Read(ctx, staff, "users", "u1"); err != nil {
		t.Fatal(err)
	}
	after := f.keyring.Unwraps()
	if after[custos.ActionReadToken]-before[custos.ActionReadToken] != 1 || after[custos.ActionReadClear]-before[custos.ActionReadClear] != 1 {
		t.Fatalf("unwraps by reason: before %v, after %v; want one read-token and one read-clear", before, after)
	}
}

// TestDetokenizeOpensEachRecordOnce checks that tokens of several fields of
// one record, handed to several audiences, unwrap its subject's key once.
func TestDetokenizeOpensEachRecordOnce(t *testing.T) {
	f := newFixture(t)
	f.addUser(t, "u1", ada)
	fields := []string{"email", "phone", "ip"}
	unvetted := custody.Request{Principal: custos.Principal{ID: "carol", Org: "custodian", Loc: "US"}}
	tokens := tokensOf(t, f, "u1", fields, engineer, unvetted)
	before := f.keyring.Unwraps()[custos.ActionDetokenize]
	res := detokenize(t, f, tokens)
	for i, d := range res.Values {
		name := fields[i%len(fields)]
		if !d.Found || d.Field != "users."+name || string(d.Value) != ada[name] {
			t.Errorf("token of %s detokenized to %+v", name, d)
		}
	}
	if n := f.keyring.Unwraps()[custos.ActionDetokenize] - before; n != 1 {
		t.Errorf("%d tokens of one record unwrapped its key %d times, want once", len(tokens), n)
	}
}
