package gateway_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/custos/custos"
	"github.com/custos/custos/internal/algo"
	"github.com/custos/custos/internal/algotest"
	"github.com/custos/custos/internal/custody"
	"github.com/custos/custos/internal/gateway"
	"github.com/custos/custos/internal/registry"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/mod/sumdb/note"
)

// algoEnv is an env whose custody keeps a registry of algorithms with an
// operator key and reviewers alice, bob and carol, two approvals required.
type algoEnv struct {
	*env
	op, alice, bob, carol, mallory note.Signer
}

func newAlgoEnv(t testing.TB, keys bool, maxBundle int64) *algoEnv {
	t.Helper()
	a := &algoEnv{env: newEnv(t, options{})}
	var opV, aliceV, bobV, carolV string
	a.op, opV = algotest.NewKey(t, "operator.example")
	a.alice, aliceV = algotest.NewKey(t, "alice")
	a.bob, bobV = algotest.NewKey(t, "bob")
	a.carol, carolV = algotest.NewKey(t, "carol")
	a.mallory, _ = algotest.NewKey(t, "mallory")
	rc := registry.Config{Dir: filepath.Join(t.TempDir(), "algorithms"), Required: 2}
	if keys {
		rc.Operators, rc.Reviewers = []string{opV}, []string{aliceV, bobV, carolV}
	}
	reg, err := registry.Open(rc)
	if err != nil {
		t.Fatal(err)
	}
	svc := a.ce.With(t, func(c *custody.Config) { c.Registry = reg })
	a.cfg.Custody, a.cfg.Registry, a.cfg.MaxBundleBytes = svc, prometheus.NewRegistry(), maxBundle
	a.gw = gateway.New(a.cfg)
	t.Cleanup(a.gw.Close)
	a.srv = httptest.NewServer(a.gw)
	t.Cleanup(a.srv.Close)
	return a
}

// bundle returns the body of a submission of version, signed by s.
func bundle(t testing.TB, version string, module []byte, s note.Signer) string {
	t.Helper()
	b, err := algo.Sign(algo.Manifest{
		Name: "covisit", Version: version, ABI: algo.ABIVersion,
		SourceSHA256: algo.Digest([]byte("source")),
		Reads:        map[string][]string{"watch_events": {"user", "video"}},
		Output:       algo.Output{Collection: "videos", Field: "id"},
	}, module, s)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return string(enc)
}

var wasm = []byte("\x00asm\x01\x00\x00\x00 pretend")

func decodeAlgorithm(t testing.TB, r reply) registry.Entry {
	t.Helper()
	var e registry.Entry
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("%v: %s", err, r.body)
	}
	return e
}

// approvalBody returns the body of an approval by s of the manifest text.
func approvalBody(t testing.TB, text string, s note.Signer) string {
	t.Helper()
	l, err := algo.Approve([]byte(text), s)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]string{"signature": l})
	return string(b)
}

func TestAlgorithmAdmission(t *testing.T) {
	e := newAlgoEnv(t, true, 0)
	r := e.do(t, "POST", "/v1/algorithms", e.engineer, bundle(t, "1.0.0", wasm, e.op))
	wantStatus(t, r, http.StatusCreated)
	auditIndex(t, r)
	sub := decodeAlgorithm(t, r)
	if sub.State != registry.Submitted || sub.Operator != "operator.example" || sub.ModuleSHA256 != algo.Digest(wasm) {
		t.Fatalf("submitted: %s", r.body)
	}
	r = e.do(t, "POST", "/v1/algorithms", e.engineer, bundle(t, "1.0.0", wasm, e.op))
	wantStatus(t, r, http.StatusOK)
	auditIndex(t, r)
	other := decodeAlgorithm(t, e.do(t, "POST", "/v1/algorithms", e.engineer, bundle(t, "1.0.1", wasm, e.op)))

	r = e.do(t, "GET", "/v1/algorithms/covisit@1.0.0", e.approver, "")
	wantStatus(t, r, http.StatusOK)
	text := decodeAlgorithm(t, r).Manifest
	otherText := decodeAlgorithm(t, e.do(t, "GET", "/v1/algorithms/"+other.Ref(), e.approver, "")).Manifest
	if !strings.Contains(text, `"version": "1.0.0"`) || algo.Digest([]byte(text)) != sub.Digest {
		t.Fatalf("manifest text %q is not the bundle's", text)
	}

	path := "/v1/algorithms/covisit@1.0.0/approvals"
	for _, tc := range []struct {
		name, token, body string
		status            int
		code              string
		state             registry.State
	}{
		{"the operator may not post approvals", e.engineer, approvalBody(t, text, e.alice), 403, custos.CodeForbidden, ""},
		{"a non-reviewer's signature", e.approver, approvalBody(t, text, e.mallory), 422, custos.CodeInvalidSignature, ""},
		{"a reviewer's signature over another manifest", e.approver, approvalBody(t, otherText, e.alice), 422, custos.CodeInvalidSignature, ""},
		{"not JSON", e.approver, "alice approves", 400, custos.CodeInvalidRequest, ""},
		{"alice", e.approver, approvalBody(t, text, e.alice), 200, "", registry.Submitted},
		{"alice again", e.staff, approvalBody(t, text, e.alice), 409, custos.CodeConflict, ""},
		{"bob", e.staff, approvalBody(t, text, e.bob), 200, "", registry.Active},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(t, "POST", path, tc.token, tc.body)
			if tc.code != "" {
				checkProblem(t, r, tc.status, tc.code)
				return
			}
			wantStatus(t, r, tc.status)
			auditIndex(t, r)
			if got := decodeAlgorithm(t, r); got.State != tc.state {
				t.Fatalf("state %s, want %s", got.State, tc.state)
			}
		})
	}

	r = e.do(t, "GET", "/v1/algorithms", e.monitor, "")
	wantStatus(t, r, http.StatusOK)
	var list struct {
		Algorithms []registry.Entry `json:"algorithms"`
	}
	if err := json.Unmarshal(r.body, &list); err != nil || len(list.Algorithms) != 2 {
		t.Fatalf("list: %s", r.body)
	}
	if a := list.Algorithms[0]; a.Version != "1.0.0" || a.State != registry.Active || strings.Join(a.Approvers, ",") != "alice,bob" || a.Manifest != "" {
		t.Fatalf("listed: %+v", a)
	}

	// The registry's audit trail: every step and every refusal, by digest.
	var got []string
	for _, en := range e.ce.Entries(t) {
		if strings.HasPrefix(en.Action, "algo-") {
			got = append(got, en.Action+":"+en.Decision+":"+en.Code+":"+en.Approver)
			if en.Decision == "allow" && !strings.Contains(en.Detail, "covisit 1.0.") {
				t.Errorf("entry %+v does not name the bundle", en)
			}
		}
	}
	want := "algo-submit:allow::,algo-submit:allow::,algo-submit:allow::," +
		"algo-approve:deny:forbidden:,algo-approve:deny:invalid_signature:,algo-approve:deny:invalid_signature:," +
		"algo-approve:allow::alice,algo-approve:deny:conflict:,algo-approve:allow::bob,algo-activate:allow::"
	if strings.Join(got, ",") != want {
		t.Fatalf("audit entries\n%s\nwant\n%s", strings.Join(got, ","), want)
	}

	// Retirement is the custodian's.
	checkProblem(t, e.do(t, "POST", "/v1/algorithms/covisit@1.0.0/retire", e.engineer, ""), 403, custos.CodeForbidden)
	checkProblem(t, e.do(t, "POST", "/v1/algorithms/covisit@1.0.0/retire", e.monitor, ""), 403, custos.CodeForbidden)
	r = e.do(t, "POST", "/v1/algorithms/covisit@1.0.0/retire", e.staff, "")
	wantStatus(t, r, http.StatusOK)
	auditIndex(t, r)
	if decodeAlgorithm(t, r).State != registry.Retired {
		t.Fatalf("retired: %s", r.body)
	}
	checkProblem(t, e.do(t, "POST", "/v1/algorithms/covisit@1.0.0/retire", e.staff, ""), 409, custos.CodeConflict)
}

func TestAlgorithmRefusals(t *testing.T) {
	e := newAlgoEnv(t, true, 4096)
	flipped := bundle(t, "1.0.0", wasm, e.op)
	var b algo.Bundle
	json.Unmarshal([]byte(flipped), &b)
	b.Module[len(b.Module)-1] ^= 1
	enc, _ := json.Marshal(b)
	for _, tc := range []struct {
		name, token, body string
		status            int
		code              string
	}{
		{"one bit of the module flipped", e.engineer, string(enc), 422, custos.CodeInvalidSignature},
		{"signed by an unknown key", e.engineer, bundle(t, "1.0.0", wasm, e.mallory), 422, custos.CodeInvalidSignature},
		{"submitted by the monitor", e.monitor, bundle(t, "1.0.0", wasm, e.op), 403, custos.CodeForbidden},
		{"submitted by custodian staff", e.staff, bundle(t, "1.0.0", wasm, e.op), 403, custos.CodeForbidden},
		{"not a bundle", e.engineer, `{"manifest":"","module":""}`, 400, custos.CodeInvalidRequest},
		{"an unknown member", e.engineer, `{"manifest":"eA==","module":"eA==","network":true}`, 400, custos.CodeInvalidRequest},
		{"over the bundle cap", e.engineer, bundle(t, "1.0.0", make([]byte, 8192), e.op), 413, custos.CodeTooLarge},
		{"no credentials", "", bundle(t, "1.0.0", wasm, e.op), 401, custos.CodeUnauthenticated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkProblem(t, e.do(t, "POST", "/v1/algorithms", tc.token, tc.body), tc.status, tc.code)
		})
	}
	checkProblem(t, e.do(t, "GET", "/v1/algorithms/covisit", e.staff, ""), 404, custos.CodeNotFound)
	checkProblem(t, e.do(t, "GET", "/v1/algorithms/Not%20a%20name", e.staff, ""), 400, custos.CodeInvalidRequest)
	var list struct {
		Algorithms []registry.Entry `json:"algorithms"`
	}
	json.Unmarshal(e.do(t, "GET", "/v1/algorithms", e.staff, "").body, &list)
	if list.Algorithms == nil || len(list.Algorithms) != 0 {
		t.Fatalf("refused bundles were admitted: %+v", list)
	}
}

func TestAlgorithmsFailClosed(t *testing.T) {
	e := newAlgoEnv(t, true, 0)
	e.auditor.failing.Store(true)
	checkProblem(t, e.do(t, "POST", "/v1/algorithms", e.engineer, bundle(t, "1.0.0", wasm, e.op)), 503, custos.CodeAuditUnavailable)
	e.auditor.failing.Store(false)
	r := e.do(t, "GET", "/v1/algorithms", e.staff, "")
	if !strings.Contains(string(r.body), `"algorithms":[]`) {
		t.Fatalf("an unrecorded submission is in the registry: %s", r.body)
	}
	wantStatus(t, e.do(t, "POST", "/v1/algorithms", e.engineer, bundle(t, "1.0.0", wasm, e.op)), http.StatusCreated)
	full := decodeAlgorithm(t, e.do(t, "GET", "/v1/algorithms/covisit", e.staff, ""))
	e.auditor.failing.Store(true)
	checkProblem(t, e.do(t, "POST", "/v1/algorithms/covisit/approvals", e.staff, approvalBody(t, full.Manifest, e.alice)), 503, custos.CodeAuditUnavailable)
	checkProblem(t, e.do(t, "POST", "/v1/algorithms/covisit/retire", e.staff, ""), 503, custos.CodeAuditUnavailable)
	e.auditor.failing.Store(false)
	if got := decodeAlgorithm(t, e.do(t, "GET", "/v1/algorithms/covisit", e.staff, "")); got.State != registry.Submitted || len(got.Approvers) != 0 {
		t.Fatalf("after unrecorded changes: %+v", got)
	}
}

func TestAlgorithmsWithoutKeys(t *testing.T) {
	e := newAlgoEnv(t, false, 0)
	p := checkProblem(t, e.do(t, "POST", "/v1/algorithms", e.engineer, bundle(t, "1.0.0", wasm, e.op)), 403, custos.CodeForbidden)
	if !strings.Contains(p.Detail, "algorithms.operators") {
		t.Fatalf("detail %q does not say what to configure", p.Detail)
	}
}
