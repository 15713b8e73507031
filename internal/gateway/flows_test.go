package gateway_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/custos/custos"
	"github.com/custos/custos/internal/custody"
	"github.com/custos/custos/internal/custody/custodytest"
	"github.com/custos/custos/internal/flow"
)

const flowsFile = `version: 1
flows:
  - name: profiles-abroad
    recipient: operator
    jurisdiction: SG
    collection: users
    fields: {id: token, handle: clear, email: token, country: aggregate}
    rate: 2
    sample_rate: 1
`

// testFlows declares the flows of text, with keys and a sample store of
// the test's own.
func testFlows(t testing.TB, ce *custodytest.Env, text string) custody.FlowsConfig {
	t.Helper()
	set, err := flow.Parse("flows.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if err := set.Check(ce.Service.Schema()); err != nil {
		t.Fatal(err)
	}
	keys, err := flow.NewKeys(bytes.Repeat([]byte{9}, 32))
	if err != nil {
		t.Fatal(err)
	}
	samples, err := flow.NewFileSamples(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return custody.FlowsConfig{Set: set, Keys: keys, Samples: samples}
}

// lines splits an NDJSON body into its objects.
func lines(t testing.TB, body []byte) []map[string]json.RawMessage {
	t.Helper()
	var out []map[string]json.RawMessage
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

func TestFlowExport(t *testing.T) {
	e := newEnv(t, options{flows: flowsFile})
	for _, id := range []string{"u1", "u2"} {
		wantStatus(t, e.do(t, "PUT", "/v1/subjects/"+id, e.service, `{"residency":"US"}`), http.StatusCreated)
		wantStatus(t, e.do(t, "POST", "/v1/records/users", e.service, `{"id":"`+id+`","fields":{"id":"`+id+`","handle":"h`+id+`","email":"`+id+`@example.com","country":"US"}}`), http.StatusCreated)
	}
	r := e.do(t, "GET", "/v1/flows/profiles-abroad/export?limit=1", e.engineer, "")
	wantStatus(t, r, http.StatusOK)
	if ct := r.header.Get("Content-Type"); ct != "application/x-ndjson" || r.header.Get("Custos-Audit-Index") == "" {
		t.Errorf("Content-Type %q, audit index %q", ct, r.header.Get("Custos-Audit-Index"))
	}
	ls := lines(t, r.body)
	if len(ls) != 2 || ls[0]["id"] == nil || ls[1]["cursor"] == nil {
		t.Fatalf("page: %s", r.body)
	}
	var fields map[string]string
	json.Unmarshal(ls[0]["fields"], &fields)
	if len(fields) != 3 || !strings.HasPrefix(fields["email"], "tk_") || fields["handle"] != "hu1" {
		t.Errorf("record fields %v", fields)
	}
	var cursor string
	json.Unmarshal(ls[1]["cursor"], &cursor)
	if cursor != r.header.Get("Custos-Cursor") {
		t.Errorf("cursor line %q, header %q", cursor, r.header.Get("Custos-Cursor"))
	}
	r = e.do(t, "GET", "/v1/flows/profiles-abroad/export?cursor="+cursor, e.engineer, "")
	wantStatus(t, r, http.StatusOK)
	ls = lines(t, r.body)
	if len(ls) != 2 || !strings.Contains(string(ls[0]["fields"]), `"hu2"`) {
		t.Fatalf("resumed page: %s", r.body)
	}
	// The rate of 2 records a second is used up.
	r = e.do(t, "GET", "/v1/flows/profiles-abroad/export", e.engineer, "")
	checkProblem(t, r, http.StatusTooManyRequests, custos.CodeRateLimited)
	if r.header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}

	// The monitor sees what left, and the list of flows.
	r = e.do(t, "GET", "/v1/flows/profiles-abroad/samples", e.monitor, "")
	wantStatus(t, r, http.StatusOK)
	var samples struct{ Samples []flow.Sample }
	if err := json.Unmarshal(r.body, &samples); err != nil || len(samples.Samples) != 2 {
		t.Fatalf("samples: %s", r.body)
	}
	if bytes.Contains(r.body, []byte("@example.com")) {
		t.Errorf("samples hold personal data in clear: %s", r.body)
	}
	r = e.do(t, "GET", "/v1/flows", e.monitor, "")
	wantStatus(t, r, http.StatusOK)
	if !strings.Contains(string(r.body), `"name":"profiles-abroad"`) {
		t.Errorf("flows: %s", r.body)
	}
}

func TestFlowExportRefused(t *testing.T) {
	e := newEnv(t, options{flows: flowsFile})
	for _, tc := range []struct {
		name, path, token string
		status            int
		code              string
	}{
		{"undeclared flow", "/v1/flows/everything/export", "engineer", http.StatusNotFound, custos.CodeNotFound},
		{"not the recipient", "/v1/flows/profiles-abroad/export", "monitor", http.StatusForbidden, custos.CodeForbidden},
		{"recipient outside the flow's jurisdiction", "/v1/flows/profiles-abroad/export", "service", http.StatusForbidden, custos.CodeForbidden},
		{"forged cursor", "/v1/flows/profiles-abroad/export?cursor=dTE", "engineer", http.StatusBadRequest, custos.CodeInvalidRequest},
		{"bad limit", "/v1/flows/profiles-abroad/export?limit=-1", "engineer", http.StatusBadRequest, custos.CodeInvalidRequest},
		{"samples of an undeclared flow", "/v1/flows/everything/samples", "monitor", http.StatusNotFound, custos.CodeNotFound},
		{"no token", "/v1/flows", "", http.StatusUnauthorized, custos.CodeUnauthenticated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok := map[string]string{"engineer": e.engineer, "monitor": e.monitor, "service": e.service}[tc.token]
			checkProblem(t, e.do(t, "GET", tc.path, tok, ""), tc.status, tc.code)
		})
	}
}
