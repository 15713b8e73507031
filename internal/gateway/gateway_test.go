package gateway_test

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/custos/custos"
	"github.com/custos/custos/internal/auditlog"
	"github.com/custos/custos/internal/custody"
	"github.com/custos/custos/internal/custody/custodytest"
	"github.com/custos/custos/internal/gateway"
	"github.com/custos/custos/internal/identity"
	"github.com/custos/custos/internal/vault"
	"github.com/prometheus/client_golang/prometheus"
)

const (
	audience   = "custos"
	issuerName = "test-issuer"
)

// The principals of the tests, one per party.
var (
	servicePrincipal  = custos.Principal{ID: "feed", Org: custos.OrgOperator, Loc: "US", Roles: []string{"service"}}
	staffPrincipal    = custos.Principal{ID: "alice", Org: custos.OrgCustodian, Loc: "US", Roles: []string{"support"}, Vetted: true}
	approverPrincipal = custos.Principal{ID: "bob", Org: custos.OrgCustodian, Loc: "US", Vetted: true}
	engineerPrincipal = custos.Principal{ID: "wei", Org: custos.OrgOperator, Loc: "SG", Roles: []string{"engineer"}}
	monitorPrincipal  = custos.Principal{ID: "aud", Org: custos.OrgMonitor, Loc: "US"}
)

// ada is the users record of the tests, field by field as JSON.
var ada = map[string]string{
	"id": `"u1"`, "handle": `"ada"`, "email": `"ada@example.com"`, "phone": `"+1 202 555 0101"`,
	"birthdate": `"1990-04-12"`, "ip": `"203.0.113.10"`, "country": `"US"`,
}

// usersOrder is the order of the fields of users in the starter schema.
var usersOrder = []string{"id", "handle", "email", "phone", "birthdate", "ip", "country"}

// protectedUsers are the protected fields of users.
var protectedUsers = []string{"id", "email", "phone", "birthdate", "ip"}

// recordBody returns the body of POST /v1/records/users for fields.
func recordBody(id string, fields map[string]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `{"id":%q,"fields":{`, id)
	for i, name := range slices.Sorted(maps.Keys(fields)) {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%q:%s", name, fields[name])
	}
	b.WriteString("}}")
	return b.String()
}

// auditor passes entries to the log. It fails while failing is set; the
// first Record after gate is set signals entered and waits for the gate to
// close.
type auditor struct {
	j       custos.Auditor
	failing atomic.Bool
	gate    atomic.Pointer[chan struct{}]
	entered chan struct{}
}

var _ custos.Auditor = (*auditor)(nil)

func (a *auditor) Record(ctx context.Context, e custos.AuditEntry) (uint64, error) {
	if g := a.gate.Swap(nil); g != nil {
		a.entered <- struct{}{}
		select {
		case <-*g:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	if a.failing.Load() {
		return 0, errors.New("disk full")
	}
	return a.j.Record(ctx, e)
}

// env is a gateway over a custody service on a real SQLite store, keyring
// and transparency log, with the starter schema and policies, served over
// HTTP.
type env struct {
	gw        *gateway.Gateway
	srv       *httptest.Server
	auditor   *auditor
	issuerKey ed25519.PrivateKey
	// Bearer tokens of the parties.
	service, staff, approver, engineer, monitor string
	// cfg is the gateway's config, for tests that build another gateway.
	cfg gateway.Config
	ce  *custodytest.Env
}

type options struct {
	maxBody     int64
	maxInFlight int
	ready       func(context.Context) error
	// flows, if set, is a flows file the service declares.
	flows string
}

func newEnv(t testing.TB, o options) *env {
	t.Helper()
	e := &env{}
	ce := custodytest.New(t, custodytest.Options{Auditor: func(j *auditlog.Log) custos.Auditor {
		e.auditor = &auditor{j: j, entered: make(chan struct{}, 1)}
		return e.auditor
	}})
	e.ce = ce
	svc := ce.Service
	if o.flows != "" {
		svc = ce.With(t, func(c *custody.Config) { c.Flows = testFlows(t, ce, o.flows) })
	}
	var err error
	if e.issuerKey, err = identity.GenerateKey(); err != nil {
		t.Fatal(err)
	}
	verifier, err := identity.NewVerifier(identity.Config{
		Audience: audience,
		Issuers:  []identity.Issuer{{Name: issuerName, Key: e.issuerKey.Public().(ed25519.PublicKey)}},
		Orgs:     []string{custos.OrgCustodian, custos.OrgOperator, custos.OrgMonitor},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.cfg = gateway.Config{
		Custody:        svc,
		Verifier:       verifier,
		Registry:       prometheus.NewRegistry(),
		MaxBodyBytes:   cmp.Or(o.maxBody, 1<<16),
		MaxInFlight:    cmp.Or(o.maxInFlight, 64),
		RequestTimeout: 10 * time.Second,
		Ready:          o.ready,
		Log:            ce.Log,
	}
	e.gw = gateway.New(e.cfg)
	t.Cleanup(e.gw.Close)
	e.srv = httptest.NewServer(e.gw)
	t.Cleanup(e.srv.Close)
	e.service = mint(t, e.issuerKey, audience, servicePrincipal, time.Now())
	e.staff = mint(t, e.issuerKey, audience, staffPrincipal, time.Now())
	e.approver = mint(t, e.issuerKey, audience, approverPrincipal, time.Now())
	e.engineer = mint(t, e.issuerKey, audience, engineerPrincipal, time.Now())
	e.monitor = mint(t, e.issuerKey, audience, monitorPrincipal, time.Now())
	return e
}

// mint returns a token for p valid for an hour from now.
func mint(t testing.TB, key ed25519.PrivateKey, aud string, p custos.Principal, now time.Time) string {
	t.Helper()
	tok, err := identity.Mint(key, issuerName, aud, p, time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// reply is a response, read whole.
type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) String() string { return fmt.Sprintf("%d %s", r.status, r.body) }

// newRequest builds a request with token as bearer token (none when empty)
// and hdr as pairs of header names and values.
func newRequest(method, url, token string, body []byte, hdr []string) (*http.Request, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return req, nil
}

// do sends a request over HTTP to the test server.
func (e *env) do(t testing.TB, method, path, token, body string, hdr ...string) reply {
	t.Helper()
	r, err := e.send(method, path, token, body, hdr...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// send is do for goroutines other than the test's.
func (e *env) send(method, path, token, body string, hdr ...string) (reply, error) {
	var b []byte
	if body != "" {
		b = []byte(body)
	}
	req, err := newRequest(method, e.srv.URL+path, token, b, hdr)
	if err != nil {
		return reply{}, err
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, err
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: data}, nil
}

// serve runs a request through the gateway in process.
func (e *env) serve(t testing.TB, method, path, token string, body []byte, hdr ...string) reply {
	t.Helper()
	req, err := newRequest(method, "http://custos.test"+path, token, body, hdr)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	e.gw.ServeHTTP(rec, req)
	return reply{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
}

// parseProblem checks that r is an RFC 9457 problem of the gateway's shape
// and returns it.
func parseProblem(r reply) (gateway.Problem, error) {
	var p gateway.Problem
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		return p, fmt.Errorf("Content-Type %q, want application/problem+json", ct)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(r.body, &m); err != nil {
		return p, fmt.Errorf("body is not a JSON object: %v", err)
	}
	for _, k := range []string{"type", "title", "status", "detail", "code"} {
		if _, ok := m[k]; !ok {
			return p, fmt.Errorf("problem has no %q", k)
		}
	}
	if len(m) != 5 {
		return p, fmt.Errorf("problem has %d members, want 5", len(m))
	}
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return p, fmt.Errorf("problem of the wrong shape: %v", err)
	}
	switch {
	case p.Status != r.status:
		return p, fmt.Errorf("problem status %d, HTTP status %d", p.Status, r.status)
	case p.Type != "urn:custos:problem:"+p.Code:
		return p, fmt.Errorf("problem type %q for code %q", p.Type, p.Code)
	case p.Title != http.StatusText(r.status):
		return p, fmt.Errorf("problem title %q for status %d", p.Title, r.status)
	case p.Detail == "" || p.Code == "":
		return p, errors.New("problem without detail or code")
	case gateway.Status(p.Code) != r.status && r.status != http.StatusMethodNotAllowed:
		return p, fmt.Errorf("code %s answered with status %d, want %d", p.Code, r.status, gateway.Status(p.Code))
	}
	return p, nil
}

// checkProblem checks that r is a problem with the given status and code.
func checkProblem(t testing.TB, r reply, status int, code string) gateway.Problem {
	t.Helper()
	if r.status != status {
		t.Errorf("status %d, want %d: %s", r.status, status, r.body)
	}
	p, err := parseProblem(r)
	if err != nil {
		t.Errorf("%v: %s", err, r.body)
	}
	if p.Code != code {
		t.Errorf("code %q, want %q: %s", p.Code, code, r.body)
	}
	return p
}

// wantStatus fails t unless r has the given status.
func wantStatus(t testing.TB, r reply, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
}

// auditIndex checks that r carries a numeric Custos-Audit-Index header
// equal to the audit_index of its body, and returns it.
func auditIndex(t testing.TB, r reply) uint64 {
	t.Helper()
	h := r.header.Get("Custos-Audit-Index")
	idx, err := strconv.ParseUint(h, 10, 64)
	if err != nil {
		t.Fatalf("Custos-Audit-Index %q is not a number", h)
	}
	var body struct {
		AuditIndex *uint64 `json:"audit_index"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil || body.AuditIndex == nil {
		t.Fatalf("no audit_index in %s (%v)", r.body, err)
	}
	if *body.AuditIndex != idx {
		t.Fatalf("Custos-Audit-Index %d, audit_index %d", idx, *body.AuditIndex)
	}
	return idx
}

// field is a field of a read as the API returns it.
type field struct {
	Form  custos.Form      `json:"form"`
	Value *json.RawMessage `json:"value"`
}

// readReply is a decoded read, with the order of its fields.
type readReply struct {
	ID         string
	Collection string
	Fields     map[string]field
	Order      []string
	Raw        map[string]map[string]json.RawMessage // each field's members
}

func decodeRead(t testing.TB, r reply) readReply {
	t.Helper()
	var body struct {
		ID         string          `json:"id"`
		Collection string          `json:"collection"`
		Fields     json.RawMessage `json:"fields"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatalf("read: %v: %s", err, r.body)
	}
	out := readReply{ID: body.ID, Collection: body.Collection}
	if err := json.Unmarshal(body.Fields, &out.Fields); err != nil {
		t.Fatalf("fields: %v: %s", err, body.Fields)
	}
	if err := json.Unmarshal(body.Fields, &out.Raw); err != nil {
		t.Fatalf("fields: %v: %s", err, body.Fields)
	}
	dec := json.NewDecoder(bytes.NewReader(body.Fields))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("fields is not an object: %s", body.Fields)
	}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		out.Order = append(out.Order, k.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// readU1 reads u1's users record as token, checking that it succeeds and
// lists the fields in schema order.
func (e *env) readU1(t testing.TB, token string, hdr ...string) (reply, readReply) {
	t.Helper()
	r := e.do(t, "GET", "/v1/records/users/u1", token, "", hdr...)
	wantStatus(t, r, http.StatusOK)
	rd := decodeRead(t, r)
	if !slices.Equal(rd.Order, usersOrder) {
		t.Errorf("fields in order %v, want %v", rd.Order, usersOrder)
	}
	return r, rd
}

// addUser registers id and writes its users record through the API.
func (e *env) addUser(t testing.TB, id string, fields map[string]string) {
	t.Helper()
	if r := e.do(t, "PUT", "/v1/subjects/"+id, e.service, `{"residency":"US"}`); r.status != http.StatusCreated && r.status != http.StatusOK {
		t.Fatalf("register %s: %s", id, r)
	}
	if r := e.do(t, "POST", "/v1/records/users", e.service, recordBody(id, fields)); r.status != http.StatusCreated && r.status != http.StatusOK {
		t.Fatalf("write %s: %s", id, r)
	}
}

func TestContract(t *testing.T) {
	e := newEnv(t, options{})

	r := e.do(t, "PUT", "/v1/subjects/u1", e.service, `{"residency":"US"}`)
	wantStatus(t, r, http.StatusCreated)
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	r = e.do(t, "PUT", "/v1/subjects/u1", e.service, `{"residency":"US"}`)
	wantStatus(t, r, http.StatusOK)

	r = e.do(t, "POST", "/v1/records/users", e.service, recordBody("u1", ada))
	wantStatus(t, r, http.StatusCreated)
	var written struct {
		ID      string `json:"id"`
		Created bool   `json:"created"`
	}
	if err := json.Unmarshal(r.body, &written); err != nil || written.ID != "u1" || !written.Created {
		t.Fatalf("write answered %s (%v)", r.body, err)
	}
	first := auditIndex(t, r)
	r = e.do(t, "POST", "/v1/records/users", e.service, recordBody("u1", ada))
	wantStatus(t, r, http.StatusOK)
	if again := auditIndex(t, r); again <= first {
		t.Errorf("second write has audit index %d, first %d", again, first)
	}

	t.Run("staff", func(t *testing.T) {
		r, rd := e.readU1(t, e.staff, "Custos-Purpose", "support")
		auditIndex(t, r)
		if cc := r.header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("Cache-Control %q, want no-store", cc)
		}
		if rd.ID != "u1" || rd.Collection != "users" {
			t.Errorf("read of %s/%s", rd.Collection, rd.ID)
		}
		for name, want := range ada {
			f := rd.Fields[name]
			if f.Form != custos.FormClear || f.Value == nil || string(*f.Value) != want {
				t.Errorf("staff %s = %s %s, want clear %s", name, f.Form, rawString(f.Value), want)
			}
		}
	})

	t.Run("staff without purpose", func(t *testing.T) {
		rd := decodeRead(t, e.do(t, "GET", "/v1/records/users/u1", e.staff, ""))
		if f := rd.Fields["email"]; f.Form == custos.FormClear {
			t.Errorf("staff without a purpose got email in clear")
		}
	})

	t.Run("engineer abroad", func(t *testing.T) {
		r, rd := e.readU1(t, e.engineer)
		for _, name := range protectedUsers {
			f := rd.Fields[name]
			if f.Form == custos.FormClear || f.Form == custos.FormWithheld || f.Value == nil {
				t.Errorf("engineer abroad got %s as %s", name, f.Form)
				continue
			}
			if clear := strings.Trim(ada[name], `"`); strings.Contains(string(*f.Value), clear) {
				t.Errorf("engineer abroad got %s's value: %s", name, *f.Value)
			}
		}
		for _, name := range protectedUsers {
			if strings.Contains(string(r.body), strings.Trim(ada[name], `"`)) && name != "id" {
				t.Errorf("engineer's reply holds %s in clear: %s", name, r.body)
			}
		}
		if f := rd.Fields["handle"]; f.Form != custos.FormClear || rawString(f.Value) != `"ada"` {
			t.Errorf("engineer handle = %s %s, want clear", f.Form, rawString(f.Value))
		}
		var phone string
		if err := json.Unmarshal(*rd.Fields["phone"].Value, &phone); err != nil {
			t.Fatal(err)
		}
		if orig := "+1 202 555 0101"; !sameShape(phone, orig) || phone == orig {
			t.Errorf("phone token %q does not keep the shape of %q", phone, orig)
		}
	})

	t.Run("monitor", func(t *testing.T) {
		r, rd := e.readU1(t, e.monitor)
		for _, name := range usersOrder {
			f, raw := rd.Fields[name], rd.Raw[name]
			if name == "country" {
				if f.Form != custos.FormClear || rawString(f.Value) != `"US"` {
					t.Errorf("monitor country = %s %s, want clear", f.Form, rawString(f.Value))
				}
				continue
			}
			if f.Form != custos.FormWithheld || len(raw) != 1 {
				t.Errorf("monitor %s = %v, want only {\"form\":\"withheld\"}", name, raw)
			}
		}
		for _, v := range []string{"ada", "202 555", "1990", "203.0.113"} {
			if strings.Contains(string(r.body), v) {
				t.Errorf("monitor's reply holds %q: %s", v, r.body)
			}
		}
	})
}

func rawString(v *json.RawMessage) string {
	if v == nil {
		return "<none>"
	}
	return string(*v)
}

// sameShape reports whether a and b have the same length, digits where the
// other has digits and the same bytes elsewhere.
func sameShape(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range len(a) {
		da, db := '0' <= a[i] && a[i] <= '9', '0' <= b[i] && b[i] <= '9'
		if da != db || !da && a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestErase(t *testing.T) {
	e := newEnv(t, options{})
	e.addUser(t, "u1", ada)

	checkProblem(t, e.do(t, "DELETE", "/v1/subjects/u1", e.engineer, ""), http.StatusForbidden, custos.CodeForbidden)
	wantStatus(t, e.do(t, "GET", "/v1/records/users/u1", e.staff, "", "Custos-Purpose", "support"), http.StatusOK)

	r := e.do(t, "DELETE", "/v1/subjects/u1", e.service, "")
	wantStatus(t, r, http.StatusOK)
	auditIndex(t, r)
	var body struct {
		Erased  bool   `json:"erased"`
		Records int    `json:"records"`
		Receipt string `json:"receipt"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil || !body.Erased || body.Records != 1 {
		t.Fatalf("erase answered %s (%v)", r.body, err)
	}
	rc, err := vault.VerifyReceipt([]byte(body.Receipt), e.ce.Receipts)
	if err != nil {
		t.Fatalf("receipt does not verify: %v\n%s", err, body.Receipt)
	}
	if rc.Subject != "u1" || rc.Records != 1 || rc.Jurisdiction != "US" || rc.KEK != e.ce.Keyring.Current() {
		t.Errorf("receipt = %+v", rc)
	}
	tampered := strings.Replace(body.Receipt, "u1", "u2", 1)
	if _, err := vault.VerifyReceipt([]byte(tampered), e.ce.Receipts); err == nil {
		t.Error("a tampered receipt verifies")
	}

	checkProblem(t, e.do(t, "GET", "/v1/records/users/u1", e.staff, "", "Custos-Purpose", "support"), http.StatusNotFound, custos.CodeNotFound)
	checkProblem(t, e.do(t, "DELETE", "/v1/subjects/u1", e.service, ""), http.StatusNotFound, custos.CodeNotFound)
}

func TestUnauthenticated(t *testing.T) {
	e := newEnv(t, options{})
	e.addUser(t, "u1", ada)

	otherKey, err := identity.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	tokens := []struct {
		name   string
		header []string
	}{
		{"no Authorization", nil},
		{"garbage", []string{"Authorization", "Bearer garbage"}},
		{"empty bearer", []string{"Authorization", "Bearer "}},
		{"another key", []string{"Authorization", "Bearer " + mint(t, otherKey, audience, staffPrincipal, time.Now())}},
		{"expired", []string{"Authorization", "Bearer " + mint(t, e.issuerKey, audience, staffPrincipal, time.Now().Add(-3*time.Hour))}},
		{"another audience", []string{"Authorization", "Bearer " + mint(t, e.issuerKey, "elsewhere", staffPrincipal, time.Now())}},
		{"Basic", []string{"Authorization", "Basic YWxpY2U6c2VjcmV0"}},
		{"token without scheme", []string{"Authorization", e.staff}},
	}
	// Every /v1/ route, with bodies and headers that would otherwise be
	// refused or succeed: authentication comes first.
	requests := []struct {
		method, path, body string
		header             []string
	}{
		{"GET", "/v1/records/users/u1", "", []string{"Custos-Purpose", "support"}},
		{"GET", "/v1/records/users/u1", "", []string{"Custos-Purpose", "Not Valid!"}},
		{"GET", "/v1/records/nope/u1", "", nil},
		{"PUT", "/v1/subjects/u2", `{"residency":"US"}`, nil},
		{"PUT", "/v1/subjects/u2", `{"residency":`, nil},
		{"DELETE", "/v1/subjects/u1", "", nil},
		{"POST", "/v1/records/users", recordBody("u1", map[string]string{"id": `"u1"`, "email": `"eve@example.com"`}), nil},
		{"POST", "/v1/detokenize", `{"tokens":["tk"],"justification":{"reason":"fraud","text":"x"}}`, nil},
	}
	for _, tk := range tokens {
		for _, rq := range requests {
			t.Run(tk.name+" "+rq.method+" "+rq.path, func(t *testing.T) {
				r := e.do(t, rq.method, rq.path, "", rq.body, append(slices.Clone(rq.header), tk.header...)...)
				checkProblem(t, r, http.StatusUnauthorized, custos.CodeUnauthenticated)
				if r.header.Get("WWW-Authenticate") == "" {
					t.Error("401 without WWW-Authenticate")
				}
				if r.header.Get("Custos-Audit-Index") != "" {
					t.Error("401 with an audit index")
				}
				for _, v := range []string{"ada", "example.com", "202 555", "1990-04-12", "203.0.113"} {
					if strings.Contains(string(r.body), v) {
						t.Errorf("401 body holds %q: %s", v, r.body)
					}
				}
			})
		}
	}

	// Nothing was done on the refused requests' behalf.
	rd := decodeRead(t, e.do(t, "GET", "/v1/records/users/u1", e.staff, "", "Custos-Purpose", "support"))
	if v := rawString(rd.Fields["email"].Value); v != `"ada@example.com"` {
		t.Errorf("after refused requests, email = %s", v)
	}
	checkProblem(t, e.do(t, "DELETE", "/v1/subjects/u2", e.service, ""), http.StatusNotFound, custos.CodeNotFound)
}

// canary marks submitted values that no error response may hold.
const canary = "7f3a"

func TestProblems(t *testing.T) {
	e := newEnv(t, options{maxBody: 4096})
	e.addUser(t, "u1", ada)

	rd := decodeRead(t, e.do(t, "GET", "/v1/records/users/u1", e.engineer, ""))
	var emailToken string
	if err := json.Unmarshal(*rd.Fields["email"].Value, &emailToken); err != nil {
		t.Fatal(err)
	}
	tokens := `"tokens":[` + strconv.Quote(emailToken) + `]`
	justification := `"justification":{"reason":"fraud","text":"canary-7f3a chargeback","ticket":"T-7f3a"}`
	huge := `{"id":"u1","fields":{"id":"u1","handle":"canary-7f3a@example.com` + strings.Repeat("x", 10<<10) + `"}}`

	cases := []struct {
		name                string
		method, path, token string
		body                string
		header              []string
		status              int
		code                string
	}{
		{"wrong jurisdiction", "PUT", "/v1/subjects/u9", e.service, `{"residency":"DE"}`, nil, 409, custos.CodeWrongJurisdiction},
		{"another residency", "PUT", "/v1/subjects/u1", e.service, `{"residency":"FR"}`, nil, 409, custos.CodeWrongJurisdiction},
		{"bad residency", "PUT", "/v1/subjects/u9", e.service, `{"residency":"canary-7f3a"}`, nil, 400, custos.CodeInvalidRequest},
		{"bad subject id", "PUT", "/v1/subjects/canary%207f3a", e.service, `{"residency":"US"}`, nil, 400, custos.CodeInvalidRequest},
		{"register forbidden", "PUT", "/v1/subjects/u9", e.engineer, `{"residency":"US"}`, nil, 403, custos.CodeForbidden},
		{"unknown collection", "POST", "/v1/records/secrets", e.service, recordBody("s1", map[string]string{"id": `"canary-7f3a"`}), nil, 404, custos.CodeUnknownCollection},
		{"unknown collection read", "GET", "/v1/records/secrets/s1", e.staff, "", nil, 404, custos.CodeUnknownCollection},
		{"unknown field", "POST", "/v1/records/users", e.service, recordBody("u1", map[string]string{"id": `"u1"`, "nickname": `"canary-7f3a@example.com"`}), nil, 422, custos.CodeUnknownField},
		{"wrong type", "POST", "/v1/records/users", e.service, recordBody("u1", map[string]string{"id": `"u1"`, "handle": `12345`}), nil, 422, custos.CodeInvalidField},
		{"invalid email", "POST", "/v1/records/users", e.service, recordBody("u1", map[string]string{"id": `"u1"`, "email": `"canary-7f3a at example.com"`}), nil, 422, custos.CodeInvalidField},
		{"invalid date", "POST", "/v1/records/users", e.service, recordBody("u1", map[string]string{"id": `"u1"`, "birthdate": `"7f3a-13-45"`}), nil, 422, custos.CodeInvalidField},
		{"unregistered subject", "POST", "/v1/records/users", e.service, recordBody("u7f3a", map[string]string{"id": `"u7f3a"`}), nil, 404, custos.CodeNotFound},
		{"write forbidden", "POST", "/v1/records/users", e.engineer, recordBody("u1", map[string]string{"id": `"u1"`, "email": `"canary-7f3a@example.com"`}), nil, 403, custos.CodeForbidden},
		{"record of an unregistered subject", "POST", "/v1/records/users", e.service, recordBody("u1", map[string]string{"id": `"u7f3a"`}), nil, 404, custos.CodeNotFound},
		{"malformed JSON", "POST", "/v1/records/users", e.service, `{"id":"u1","fields":{"email":"canary-7f3a@example.com"`, nil, 400, custos.CodeInvalidRequest},
		{"syntax error", "POST", "/v1/records/users", e.service, `{"id":"u1","fields":{"email":canary-7f3a@example.com}}`, nil, 400, custos.CodeInvalidRequest},
		{"not an object", "POST", "/v1/records/users", e.service, `"canary-7f3a@example.com"`, nil, 400, custos.CodeInvalidRequest},
		{"fields not an object", "POST", "/v1/records/users", e.service, `{"id":"u1","fields":["canary-7f3a@example.com"]}`, nil, 400, custos.CodeInvalidRequest},
		{"no fields", "POST", "/v1/records/users", e.service, `{"id":"u1"}`, nil, 400, custos.CodeInvalidRequest},
		{"empty body", "POST", "/v1/records/users", e.service, "", nil, 400, custos.CodeInvalidRequest},
		{"unknown top-level key", "POST", "/v1/records/users", e.service, `{"id":"u1","fields":{"id":"u1"},"extra":"canary-7f3a@example.com"}`, nil, 400, custos.CodeInvalidRequest},
		{"unknown key in subject", "PUT", "/v1/subjects/u1", e.service, `{"residency":"US","email":"canary-7f3a@example.com"}`, nil, 400, custos.CodeInvalidRequest},
		{"trailing data", "PUT", "/v1/subjects/u1", e.service, `{"residency":"US"} {"email":"canary-7f3a@example.com"}`, nil, 400, custos.CodeInvalidRequest},
		{"trailing garbage", "POST", "/v1/records/users", e.service, recordBody("u1", ada) + `canary-7f3a`, nil, 400, custos.CodeInvalidRequest},
		{"too large", "POST", "/v1/records/users", e.service, huge, nil, 413, custos.CodeTooLarge},
		{"too large subject", "PUT", "/v1/subjects/u1", e.service, `{"residency":"` + strings.Repeat("canary-7f3a", 1000) + `"}`, nil, 413, custos.CodeTooLarge},
		{"wrong method", "PATCH", "/v1/subjects/u1", e.service, `{"residency":"US"}`, nil, 405, custos.CodeInvalidRequest},
		{"wrong method on records", "GET", "/v1/records/users", e.staff, "", nil, 405, custos.CodeInvalidRequest},
		{"unknown path", "GET", "/v2/canary-7f3a", e.staff, "", nil, 404, custos.CodeNotFound},
		{"bad purpose", "GET", "/v1/records/users/u1", e.staff, "", []string{"Custos-Purpose", "Not Valid!"}, 400, custos.CodeInvalidRequest},
		{"missing record", "GET", "/v1/records/users/u7f3a", e.staff, "", []string{"Custos-Purpose", "support"}, 404, custos.CodeNotFound},
		{"read forbidden", "GET", "/v1/records/videos/v7f3a", e.monitor, "", nil, 403, custos.CodeForbidden},
		{"detokenize without justification", "POST", "/v1/detokenize", e.staff, `{` + tokens + `}`, nil, 400, custos.CodeJustification},
		{"detokenize without approval", "POST", "/v1/detokenize", e.staff, `{` + tokens + `,` + justification + `}`, nil, 403, custos.CodeApproval},
		{"detokenize with a bearer token as approval", "POST", "/v1/detokenize", e.staff, `{` + tokens + `,` + justification + `,"approval":"` + e.approver + `"}`, nil, 403, custos.CodeApproval},
		{"self-approval", "POST", "/v1/approvals", e.staff, `{"requester":"` + staffPrincipal.ID + `",` + tokens + `,` + justification + `}`, nil, 403, custos.CodeApproval},
		{"engineer approving", "POST", "/v1/approvals", e.engineer, `{"requester":"` + staffPrincipal.ID + `",` + tokens + `,` + justification + `}`, nil, 403, custos.CodeForbidden},
		{"approval without requester", "POST", "/v1/approvals", e.approver, `{` + tokens + `,` + justification + `}`, nil, 400, custos.CodeInvalidRequest},
		{"detokenize bad approval", "POST", "/v1/detokenize", e.staff, `{` + tokens + `,` + justification + `,"approval":"canary-7f3a"}`, nil, 403, custos.CodeApproval},
		{"engineer detokenizing", "POST", "/v1/detokenize", e.engineer, `{` + tokens + `,` + justification + `,"approval":"` + e.approver + `"}`, nil, 403, custos.CodeForbidden},
		{"no tokens", "POST", "/v1/detokenize", e.staff, `{"tokens":[],` + justification + `}`, nil, 400, custos.CodeInvalidRequest},
		{"bad reason", "POST", "/v1/detokenize", e.staff, `{` + tokens + `,"justification":{"reason":"Canary 7f3a","text":"canary-7f3a"}}`, nil, 400, custos.CodeInvalidRequest},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.do(t, c.method, c.path, c.token, c.body, c.header...)
			p := checkProblem(t, r, c.status, c.code)
			if strings.Contains(string(r.body), canary) {
				t.Errorf("the problem holds a submitted value: %s", r.body)
			}
			if strings.Contains(p.Detail, "ada@example.com") || strings.Contains(string(r.body), "ada@example.com") {
				t.Errorf("the problem holds stored data: %s", r.body)
			}
			if c.status == http.StatusMethodNotAllowed && r.header.Get("Allow") == "" {
				t.Error("405 without Allow")
			}
		})
	}

	t.Run("Allow lists the route's methods", func(t *testing.T) {
		r := e.do(t, "PATCH", "/v1/subjects/u1", e.service, "")
		allow := strings.Split(r.header.Get("Allow"), ", ")
		slices.Sort(allow)
		if !slices.Equal(allow, []string{"DELETE", "PUT"}) {
			t.Errorf("Allow %q, want DELETE and PUT", r.header.Get("Allow"))
		}
	})

	t.Run("detokenize with approval", func(t *testing.T) {
		g := e.do(t, "POST", "/v1/approvals", e.approver, `{"requester":"`+staffPrincipal.ID+`",`+tokens+`,`+justification+`}`)
		wantStatus(t, g, http.StatusCreated)
		auditIndex(t, g)
		var grant struct {
			Approval string `json:"approval"`
		}
		if err := json.Unmarshal(g.body, &grant); err != nil || grant.Approval == "" {
			t.Fatalf("approval: %s", g.body)
		}
		req := `{` + tokens + `,` + justification + `,"approval":"` + grant.Approval + `"}`
		r := e.do(t, "POST", "/v1/detokenize", e.staff, req)
		wantStatus(t, r, http.StatusOK)
		defer func() {
			// The grant served once.
			checkProblem(t, e.do(t, "POST", "/v1/detokenize", e.staff, req), 403, custos.CodeApproval)
		}()
		auditIndex(t, r)
		var body struct {
			Values []custody.Detokenized `json:"values"`
		}
		if err := json.Unmarshal(r.body, &body); err != nil {
			t.Fatal(err)
		}
		if len(body.Values) != 1 || !body.Values[0].Found || string(body.Values[0].Value) != `"ada@example.com"` || body.Values[0].Field != "users.email" {
			t.Errorf("detokenized %s", r.body)
		}
	})

	// None of the refused writes changed the record.
	rd = decodeRead(t, e.do(t, "GET", "/v1/records/users/u1", e.staff, "", "Custos-Purpose", "support"))
	for name, want := range ada {
		if got := rawString(rd.Fields[name].Value); got != want {
			t.Errorf("after refused writes, %s = %s, want %s", name, got, want)
		}
	}
}

func TestFailsClosed(t *testing.T) {
	e := newEnv(t, options{})
	e.addUser(t, "u1", ada)
	wantStatus(t, e.do(t, "GET", "/v1/records/users/u1", e.staff, "", "Custos-Purpose", "support"), http.StatusOK)

	e.auditor.failing.Store(true)
	for _, tok := range []string{e.staff, e.engineer, e.service} {
		r := e.do(t, "GET", "/v1/records/users/u1", tok, "", "Custos-Purpose", "support")
		checkProblem(t, r, http.StatusServiceUnavailable, custos.CodeAuditUnavailable)
		if r.header.Get("Retry-After") == "" {
			t.Error("503 without Retry-After")
		}
		if r.header.Get("Custos-Audit-Index") != "" {
			t.Error("a failed audit answered with an audit index")
		}
		for _, v := range []string{"ada", "example.com", "202 555", "1990-04-12", "203.0.113", "form", "value"} {
			if strings.Contains(string(r.body), v) {
				t.Errorf("fail-closed body holds %q: %s", v, r.body)
			}
		}
	}
	r := e.do(t, "POST", "/v1/records/users", e.service, recordBody("u1", map[string]string{"id": `"u1"`, "email": `"eve@example.com"`}))
	checkProblem(t, r, http.StatusServiceUnavailable, custos.CodeAuditUnavailable)
	checkProblem(t, e.do(t, "DELETE", "/v1/subjects/u1", e.service, ""), http.StatusServiceUnavailable, custos.CodeAuditUnavailable)

	e.auditor.failing.Store(false)
	rd := decodeRead(t, e.do(t, "GET", "/v1/records/users/u1", e.staff, "", "Custos-Purpose", "support"))
	if v := rawString(rd.Fields["email"].Value); v != `"ada@example.com"` {
		t.Errorf("after the audit came back, email = %s", v)
	}
}

func TestOverload(t *testing.T) {
	e := newEnv(t, options{maxInFlight: 1})
	e.addUser(t, "u1", ada)

	gate := make(chan struct{})
	e.auditor.gate.Store(&gate)
	type result struct {
		r   reply
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := e.send("GET", "/v1/records/users/u1", e.staff, "", "Custos-Purpose", "support")
		done <- result{r, err}
	}()
	select {
	case <-e.auditor.entered:
	case <-time.After(10 * time.Second):
		close(gate)
		t.Fatal("the first request never reached the auditor")
	}

	for _, path := range []string{"/v1/records/users/u1", "/healthz"} {
		r := e.do(t, "GET", path, e.staff, "", "Custos-Purpose", "support")
		checkProblem(t, r, http.StatusServiceUnavailable, custos.CodeUnavailable)
		if ra := r.header.Get("Retry-After"); ra == "" {
			t.Error("503 without Retry-After")
		} else if n, err := strconv.Atoi(ra); err != nil || n < 1 {
			t.Errorf("Retry-After %q is not a number of seconds", ra)
		}
		if strings.Contains(string(r.body), "ada") {
			t.Errorf("overload answer holds data: %s", r.body)
		}
	}

	// Metrics stay outside the limit.
	if r := e.do(t, "GET", "/metrics", "", ""); r.status != http.StatusOK || !strings.Contains(string(r.body), `code="503"`) {
		t.Errorf("metrics under overload: %d, counting no 503", r.status)
	}

	close(gate)
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	r := res.r
	wantStatus(t, r, http.StatusOK)
	if rd := decodeRead(t, r); rawString(rd.Fields["email"].Value) != `"ada@example.com"` {
		t.Errorf("the held request got %s", r.body)
	}
	// The slot is free again.
	wantStatus(t, e.do(t, "GET", "/v1/records/users/u1", e.staff, "", "Custos-Purpose", "support"), http.StatusOK)
}

// pathItemMethods are the members of an OpenAPI path item that are methods.
var pathItemMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

func TestOpenAPI(t *testing.T) {
	e := newEnv(t, options{})
	r := e.do(t, "GET", "/openapi.json", "", "")
	wantStatus(t, r, http.StatusOK)
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	var doc struct {
		OpenAPI    string                                `json:"openapi"`
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components struct {
			Schemas struct {
				Problem struct {
					Properties struct {
						Code struct {
							Enum []string `json:"enum"`
						} `json:"code"`
					} `json:"properties"`
				} `json:"Problem"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(r.body, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi %q, want 3.1.0", doc.OpenAPI)
	}

	routes := e.gw.Routes()
	if len(routes) == 0 {
		t.Fatal("no routes")
	}
	// A Go wildcard {x...} is the OpenAPI parameter {x}.
	documented := make([]string, len(routes))
	for i, rt := range routes {
		documented[i] = strings.ReplaceAll(rt, "...}", "}")
	}
	for _, rt := range routes {
		method, pattern, ok := strings.Cut(rt, " ")
		if !ok {
			t.Errorf("route %q is not METHOD /pattern", rt)
			continue
		}
		pattern = strings.ReplaceAll(pattern, "...}", "}")
		if _, ok := doc.Paths[pattern][strings.ToLower(method)]; !ok {
			t.Errorf("route %s is not documented", rt)
		}
	}
	for path, item := range doc.Paths {
		for m := range item {
			if !slices.Contains(pathItemMethods, m) {
				continue
			}
			if rt := strings.ToUpper(m) + " " + path; !slices.Contains(documented, rt) {
				t.Errorf("documented %s is not a route", rt)
			}
		}
	}
	// Each documented route answers something other than the catch-all.
	for _, rt := range routes {
		method, pattern, _ := strings.Cut(rt, " ")
		path := strings.NewReplacer("{id}", "u1", "{collection}", "users").Replace(pattern)
		r := e.do(t, method, path, "", "")
		if p, err := parseProblem(r); err == nil && p.Code == custos.CodeNotFound && r.status == http.StatusNotFound {
			t.Errorf("route %s is not mounted: %s", rt, r.body)
		}
	}

	enum := slices.Sorted(slices.Values(doc.Components.Schemas.Problem.Properties.Code.Enum))
	if codes := gateway.StatusCodes(); !slices.Equal(enum, codes) {
		t.Errorf("Problem code enum %v, gateway codes %v", enum, codes)
	}
	for _, c := range enum {
		if s := gateway.Status(c); (s == http.StatusInternalServerError) != (c == custos.CodeInternal) {
			t.Errorf("code %s has status %d", c, s)
		}
	}
}

func TestHealthAndMetrics(t *testing.T) {
	var ready atomic.Pointer[error]
	e := newEnv(t, options{ready: func(context.Context) error {
		if err := ready.Load(); err != nil {
			return *err
		}
		return nil
	}})
	r := e.do(t, "GET", "/healthz", "", "")
	wantStatus(t, r, http.StatusOK)
	var health struct {
		Status string `json:"status"`
		Policy string `json:"policy"`
	}
	if err := json.Unmarshal(r.body, &health); err != nil || health.Status != "ok" {
		t.Errorf("healthz answered %s (%v)", r.body, err)
	}

	notReady := errors.New("store at /secret/path is down")
	ready.Store(&notReady)
	r = e.do(t, "GET", "/healthz", "", "")
	checkProblem(t, r, http.StatusServiceUnavailable, custos.CodeUnavailable)
	if r.header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	if strings.Contains(string(r.body), "secret") {
		t.Errorf("healthz shows the cause: %s", r.body)
	}
	ready.Store(nil)

	e.do(t, "GET", "/v1/records/users/u1", "", "")
	r = e.do(t, "GET", "/metrics", "", "")
	wantStatus(t, r, http.StatusOK)
	for _, want := range []string{
		"custos_http_requests_total",
		`custos_http_requests_total{code="200",route="/healthz"} 1`,
		`custos_http_requests_total{code="503",route="/healthz"} 1`,
		`custos_http_requests_total{code="401",route="/v1/records/{collection}/{id}"} 1`,
		"custos_http_request_duration_seconds",
	} {
		if !strings.Contains(string(r.body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(string(r.body), "u1") {
		t.Error("metrics name a record id")
	}
}

func TestConcurrent(t *testing.T) {
	e := newEnv(t, options{})
	const workers, rounds = 8, 10
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			if err := e.client(fmt.Sprintf("c%d", w), rounds); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

// client registers subject id, then writes and reads its record rounds
// times, checking every answer.
func (e *env) client(id string, rounds int) error {
	expect := func(r reply, err error, what string, status ...int) error {
		if err != nil {
			return fmt.Errorf("%s %s: %v", what, id, err)
		}
		if !slices.Contains(status, r.status) {
			return fmt.Errorf("%s %s: %s", what, id, r)
		}
		return nil
	}
	r, err := e.send("PUT", "/v1/subjects/"+id, e.service, `{"residency":"US"}`)
	if err := expect(r, err, "register", http.StatusCreated); err != nil {
		return err
	}
	for i := range rounds {
		email := fmt.Sprintf(`"%s.%d@example.com"`, id, i)
		body := recordBody(id, map[string]string{"id": strconv.Quote(id), "email": email, "country": `"US"`})
		r, err := e.send("POST", "/v1/records/users", e.service, body)
		if err := expect(r, err, "write", http.StatusCreated, http.StatusOK); err != nil {
			return err
		}
		r, err = e.send("GET", "/v1/records/users/"+id, e.staff, "", "Custos-Purpose", "support")
		if err := expect(r, err, "read", http.StatusOK); err != nil {
			return err
		}
		var read struct {
			ID     string           `json:"id"`
			Fields map[string]field `json:"fields"`
		}
		if err := json.Unmarshal(r.body, &read); err != nil {
			return fmt.Errorf("read %s: %v", id, err)
		}
		if got := rawString(read.Fields["email"].Value); read.ID != id || got != email {
			return fmt.Errorf("read %s: got %s with email %s, want %s", id, read.ID, got, email)
		}
		r, err = e.send("GET", "/v1/records/users/"+id, e.engineer, "")
		if err := expect(r, err, "engineer read", http.StatusOK); err != nil {
			return err
		}
		if strings.Contains(string(r.body), "example.com") {
			return fmt.Errorf("engineer read %s: %s", id, r)
		}
	}
	return nil
}

// knownCodes are the codes a problem may carry.
var knownCodes = gateway.StatusCodes()

// checkFuzzReply fails t unless r is a success or a well-formed problem
// with a known code, and never a 500.
func checkFuzzReply(t *testing.T, r reply) {
	t.Helper()
	if r.status == http.StatusInternalServerError {
		t.Fatalf("500: %s", r.body)
	}
	if r.status >= 200 && r.status < 300 {
		if !json.Valid(r.body) {
			t.Fatalf("success with a body that is not JSON: %s", r)
		}
		return
	}
	p, err := parseProblem(r)
	if err != nil {
		t.Fatalf("%v: %s", err, r)
	}
	if !slices.Contains(knownCodes, p.Code) || p.Code == custos.CodeInternal {
		t.Fatalf("code %q: %s", p.Code, r)
	}
}

func FuzzRecordBody(f *testing.F) {
	e := newEnv(f, options{maxBody: 1 << 14})
	e.addUser(f, "u1", ada)
	for _, s := range []string{
		recordBody("u1", ada),
		`{"id":"u1","fields":{"id":"u1"}}`,
		`{"id":"u1","fields":{"id":"u1","handle":"ada"`,
		`{"id":"u1","fields":{"id":"u1","handle":12345678901234567890123456789012345678901234567890}}`,
		`{"id":"u1","fields":{"id":"u1","handle":1e999999}}`,
		`{"id":"u1","fields":{"id":"u1","handle":{"a":{"b":{"c":[[[[[]]]]]}}}}}`,
		`{"id":"u1","fields":{"id":null,"handle":null}}`,
		`{"id":null,"fields":null}`,
		`{"id":"u1","fields":{"id":"u1","handle":"日本語 \u00e9\ud83d\ude00 \ud800"}}`,
		`{"id":"u1","fields":{"id":"u1","email":"ada@例え.jp","phone":"+81 3-1234-5678"}}`,
		`{"id":"u1","fields":{"id":"u1","birthdate":"2026-02-30","ip":"::ffff:1.2.3.4"}}`,
		`{"id":"ü1","fields":{}}`,
		`{"id":"u1","fields":{"id":"u1"}} {}`,
		`[]`,
		`null`,
		``,
		"\xff\xfe{",
		`{"id":"u1","id":"u2","fields":{"id":"u1"}}`,
		`{"ID":"u1","Fields":{"id":"u1"}}`,
		`{"id":"u1","fields":{"id":"u1","__proto__":"x"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkFuzzReply(t, e.serve(t, "POST", "/v1/records/users", e.service, body))
	})
}

func FuzzDetokenizeBody(f *testing.F) {
	e := newEnv(f, options{maxBody: 1 << 14})
	e.addUser(f, "u1", ada)
	rd := decodeRead(f, e.serve(f, "GET", "/v1/records/users/u1", e.engineer, nil))
	var tok string
	if err := json.Unmarshal(*rd.Fields["email"].Value, &tok); err != nil {
		f.Fatal(err)
	}
	just := `"justification":{"reason":"fraud","text":"chargeback","ticket":"T-1"}`
	for _, s := range []string{
		`{"tokens":[` + strconv.Quote(tok) + `],` + just + `,"approval":"` + e.approver + `"}`,
		`{"tokens":[` + strconv.Quote(tok) + `],` + just + `,"break_glass":true}`,
		`{"tokens":[` + strconv.Quote(tok) + `],` + just + `}`,
		`{"tokens":[` + strconv.Quote(tok) + `,"tk_unknown"],` + just + `,"approval":"garbage"}`,
		`{"tokens":[],` + just + `}`,
		`{"tokens":[""],` + just + `}`,
		`{"tokens":[` + strconv.Quote(tok) + `]}`,
		`{"tokens":[1,2,3],"justification":null}`,
		`{"tokens":"` + tok + `","justification":{"reason":1e400}}`,
		`{"tokens":[` + strconv.Quote(tok) + `],"justification":{"reason":"fraud","text":"` + strings.Repeat("x", 3000) + `"}}`,
		`{"tokens":[` + strconv.Quote(tok) + `],"justification":{"reason":"frä","text":"日本\ud800"}}`,
		`{"tokens":[["nested"]],"justification":{"reason":{"a":{}}}}`,
		`{"tokens":[` + strconv.Quote(tok),
		`{"break_glass":"yes"}`,
		`null`,
		``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkFuzzReply(t, e.serve(t, "POST", "/v1/detokenize", e.staff, body))
	})
}

// TestAlgorithmProblems checks the algorithm endpoints' refusals; custody's
// tests run the algorithms themselves.
func TestAlgorithmProblems(t *testing.T) {
	e := newEnv(t, options{})
	checkProblem(t, e.do(t, "POST", "/v1/algorithms/covisit/train", e.service, ""), http.StatusNotFound, custos.CodeNotFound)
	checkProblem(t, e.do(t, "POST", "/v1/algorithms/covisit/train", e.service, `{"x":1}`), http.StatusBadRequest, custos.CodeInvalidRequest)
	checkProblem(t, e.do(t, "POST", "/v1/algorithms/covisit/train", e.engineer, `{}`), http.StatusForbidden, custos.CodeForbidden)
	checkProblem(t, e.do(t, "POST", "/v1/algorithms/covisit/recommend", e.service, `{"subject":"u1","k":"ten"}`), http.StatusBadRequest, custos.CodeInvalidRequest)
	checkProblem(t, e.do(t, "POST", "/v1/algorithms/covisit/recommend", e.engineer, `{"subject":"u1","k":10}`), http.StatusForbidden, custos.CodeForbidden)
	checkProblem(t, e.do(t, "POST", "/v1/audit/replay", e.monitor, `{}`), http.StatusBadRequest, custos.CodeInvalidRequest)
	checkProblem(t, e.do(t, "POST", "/v1/audit/replay", e.monitor, `{"index":999999}`), http.StatusNotFound, custos.CodeNotFound)
	checkProblem(t, e.do(t, "GET", "/v1/algorithms/covisit/recommend", e.service, ""), http.StatusMethodNotAllowed, custos.CodeInvalidRequest)
}
