package gateway_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/custos/custos"
	"github.com/custos/custos/internal/gateway"
	"github.com/prometheus/client_golang/prometheus"
)

// TestZeroLimitsGetDefaults checks that a Config without limits makes a
// usable gateway rather than one that refuses everything.
func TestZeroLimitsGetDefaults(t *testing.T) {
	e := newEnv(t, options{})
	cfg := e.cfg
	cfg.MaxBodyBytes, cfg.MaxInFlight, cfg.RequestTimeout = 0, 0, 0
	cfg.Registry = prometheus.NewRegistry()
	gw := gateway.New(cfg)
	t.Cleanup(gw.Close)
	for _, r := range []*http.Request{
		httptest.NewRequest("GET", "/healthz", nil),
		withToken(httptest.NewRequest("PUT", "/v1/subjects/z1", strings.NewReader(`{"residency":"US"}`)), e.service),
	} {
		w := httptest.NewRecorder()
		gw.ServeHTTP(w, r)
		if w.Code >= 300 {
			t.Fatalf("%s %s with zero limits: %d %s", r.Method, r.URL.Path, w.Code, w.Body)
		}
	}
}

func TestMetricsOnlyGet(t *testing.T) {
	e := newEnv(t, options{})
	w := httptest.NewRecorder()
	e.gw.ServeHTTP(w, httptest.NewRequest("POST", "/metrics", nil))
	if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET" {
		t.Fatalf("POST /metrics = %d, Allow %q", w.Code, w.Header().Get("Allow"))
	}
	w = httptest.NewRecorder()
	e.gw.ServeHTTP(w, httptest.NewRequest("GET", "/nowhere", nil))
	w = httptest.NewRecorder()
	e.gw.ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	if !strings.Contains(w.Body.String(), `custos_http_requests_total{code="404",route="unmatched"} 1`) {
		t.Fatal("a request to no route is not counted")
	}
}

func withToken(r *http.Request, tok string) *http.Request {
	r.Header.Set("Authorization", "Bearer "+tok)
	return r
}

// TestAuthFailuresRecorded checks that failed authentications reach the
// audit log as a count, with nothing of what they presented.
func TestAuthFailuresRecorded(t *testing.T) {
	e := newEnv(t, options{})
	cfg := e.cfg
	cfg.Registry = prometheus.NewRegistry()
	gw := gateway.New(cfg)
	for _, tok := range []string{"garbage-7f3a", e.service + "x", ""} {
		w := httptest.NewRecorder()
		gw.ServeHTTP(w, withToken(httptest.NewRequest("GET", "/v1/records/users/u1", nil), tok))
		if w.Code != http.StatusUnauthorized {
			t.Fatalf("bad token: %d", w.Code)
		}
	}
	gw.Close() // records what the interval has counted
	var got []custos.AuditEntry
	for _, en := range e.ce.Entries(t) {
		if en.Action == "auth-failure" {
			got = append(got, en)
		}
	}
	if len(got) != 1 || got[0].Count != 3 || got[0].Decision != "deny" {
		t.Fatalf("auth-failure entries: %+v", got)
	}
	if strings.Contains(got[0].Detail+got[0].Principal, "7f3a") {
		t.Fatal("the entry holds what a request presented")
	}
}

func TestAccesses(t *testing.T) {
	e := newEnv(t, options{})
	e.addUser(t, "u1", ada)
	e.do(t, "GET", "/v1/records/users/u1", e.engineer, "")
	checkProblem(t, e.do(t, "GET", "/v1/subjects/u1/accesses", e.engineer, ""), 403, custos.CodeForbidden)
	r := e.do(t, "GET", "/v1/subjects/u1/accesses", e.staff, "")
	wantStatus(t, r, http.StatusOK)
	auditIndex(t, r)
	var body struct {
		Subject  string `json:"subject"`
		Accesses []struct {
			Index  uint64 `json:"index"`
			Action string `json:"action"`
			Org    string `json:"org"`
		} `json:"accesses"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatal(err)
	}
	var reads int
	for _, a := range body.Accesses {
		if a.Action == "read" && a.Org == "operator" {
			reads++
		}
	}
	if body.Subject != "u1" || reads != 1 {
		t.Fatalf("accesses = %s", r.body)
	}
}
