package gateway_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/custos/custos"
	"github.com/custos/custos/internal/custody"
	"github.com/custos/custos/internal/gateway"
	"github.com/custos/custos/internal/governance"
	"github.com/custos/custos/internal/notekey"
	"github.com/custos/custos/internal/policy"
	"github.com/custos/custos/internal/schema"
	"github.com/custos/custos/internal/starter"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/mod/sumdb/note"
)

// governed is a gateway whose custody keeps the governance of its rules,
// with a custodian's and a monitor's governance keys.
type governed struct {
	*env
	monitorKey, custodianKey note.Signer
}

func newGoverned(t *testing.T) *governed {
	t.Helper()
	e := newEnv(t, options{})
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "policies"), 0o700)
	for n, d := range starter.Policies() {
		os.WriteFile(filepath.Join(dir, "policies", n), d, 0o644)
	}
	os.WriteFile(filepath.Join(dir, "schema.yaml"), starter.Schema(), 0o644)
	g := &governed{env: e}
	keys := map[string][]string{}
	for role, s := range map[string]*note.Signer{"custodian": &g.custodianKey, "monitor": &g.monitorKey} {
		skey, vkey, err := notekey.Generate(role+"-1", "test key")
		if err != nil {
			t.Fatal(err)
		}
		if *s, err = note.NewSigner(skey); err != nil {
			t.Fatal(err)
		}
		keys[role] = []string{vkey}
	}
	b, err := governance.Open(governance.Config{
		Dir: filepath.Join(dir, "governance"), Deployment: "custos-test",
		PolicyDir: filepath.Join(dir, "policies"), SchemaPath: filepath.Join(dir, "schema.yaml"),
		Signers: keys, Require: []string{"custodian", "monitor"}, Suspender: "monitor",
		Locations: func() (governance.Locations, error) {
			return governance.Locations{Permitted: []string{"us-local"}}, nil
		},
		Check: func(k governance.Kind, c governance.Content) error {
			var err error
			switch k {
			case governance.KindSchema:
				_, err = schema.Parse(governance.SchemaFile, c[governance.SchemaFile])
			case governance.KindPolicy:
				_, err = policy.Parse(c)
			}
			return err
		},
	}, func([]governance.Event) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	svc := e.ce.With(t, func(c *custody.Config) { c.Governance = b })
	cfg := e.cfg
	cfg.Custody, cfg.Registry = svc, prometheus.NewRegistry()
	e.gw = gateway.New(cfg)
	t.Cleanup(e.gw.Close)
	e.srv.Config.Handler = e.gw
	return g
}

// statement returns the body of POST /v1/suspension: a statement of
// action signed by s, changing the state the server serves now.
func (g *governed) statement(t *testing.T, s note.Signer, action string, principals ...string) string {
	t.Helper()
	var cur governance.SuspensionState
	r := g.do(t, "GET", "/v1/suspension", g.monitor, "")
	wantStatus(t, r, http.StatusOK)
	if err := json.Unmarshal(r.body, &cur); err != nil {
		t.Fatal(err)
	}
	st := governance.Suspension{Deployment: cur.Deployment, Action: action, Principals: principals, Reason: "test", Previous: cur.Digest, Time: time.Now()}
	msg, err := note.Sign(&note.Note{Text: string(st.Text())}, s)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]string{"statement": string(msg)})
	return string(body)
}

func TestGovernanceRoutesByParty(t *testing.T) {
	g := newGoverned(t)
	policy := `{"kind":"policy","files":{"custos.cedar":"permit (principal, action, resource is Custos::Field) when { principal.org == \"custodian\" };\n"}}`
	for _, tc := range []struct {
		name, method, path, token, body string
		status                          int
		code                            string
	}{
		{"operator may not propose", "POST", "/v1/proposals", g.engineer, policy, 403, custos.CodeForbidden},
		{"monitor may not propose", "POST", "/v1/proposals", g.monitor, policy, 403, custos.CodeForbidden},
		{"custodian staff propose", "POST", "/v1/proposals", g.staff, policy, 201, ""},
		{"a proposal that does not load", "POST", "/v1/proposals", g.staff, `{"kind":"policy","files":{"x.cedar":"permit ("}}`, 400, custos.CodeInvalidRequest},
		{"an unknown kind", "POST", "/v1/proposals", g.staff, `{"kind":"budget","files":{"x":"y"}}`, 400, custos.CodeInvalidRequest},
		{"a flows proposal of another file", "POST", "/v1/proposals", g.staff, `{"kind":"flows","files":{"x":"y"}}`, 400, custos.CodeInvalidRequest},
		{"monitor lists proposals", "GET", "/v1/proposals", g.monitor, "", 200, ""},
		{"operator may not list proposals", "GET", "/v1/proposals", g.engineer, "", 403, custos.CodeForbidden},
		{"a signature that is not one", "POST", "/v1/proposals/0123456789abcdef/signatures", g.monitor, `{"signature":"x"}`, 404, custos.CodeNotFound},
		{"operator reads the suspension", "GET", "/v1/suspension", g.engineer, "", 200, ""},
		{"custodian may not post a suspension", "POST", "/v1/suspension", g.staff, `{"statement":"x"}`, 403, custos.CodeForbidden},
		{"a statement that is not signed", "POST", "/v1/suspension", g.monitor, `{"statement":"custos suspension v1\n"}`, 422, custos.CodeInvalidSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := g.do(t, tc.method, tc.path, tc.token, tc.body)
			if tc.code != "" {
				checkProblem(t, r, tc.status, tc.code)
				return
			}
			wantStatus(t, r, tc.status)
		})
	}
}

func TestSuspensionStopsTheOperator(t *testing.T) {
	g := newGoverned(t)
	g.addUser(t, "u1", ada)
	checkProblem(t, g.do(t, "POST", "/v1/suspension", g.monitor, g.statement(t, g.custodianKey, governance.Suspend)), 422, custos.CodeInvalidSignature)
	wantStatus(t, g.do(t, "POST", "/v1/suspension", g.monitor, g.statement(t, g.monitorKey, governance.Suspend)), http.StatusOK)
	for _, tc := range []struct {
		name, method, path, token, body string
		status                          int
	}{
		{"operator service reads", "GET", "/v1/records/users/u1", g.service, "", 403},
		{"operator service writes", "POST", "/v1/records/users", g.service, recordBody("u2", ada), 403},
		{"operator engineer reads", "GET", "/v1/records/users/u1", g.engineer, "", 403},
		{"operator lists algorithms", "GET", "/v1/algorithms", g.engineer, "", 403},
		{"operator reads its suspension", "GET", "/v1/suspension", g.engineer, "", 200},
		{"custodian reads", "GET", "/v1/records/users/u1", g.staff, "", 200},
		{"monitor reads", "GET", "/v1/records/users/u1", g.monitor, "", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := g.do(t, tc.method, tc.path, tc.token, tc.body)
			if tc.status == 403 {
				checkProblem(t, r, 403, custos.CodeSuspended)
				return
			}
			wantStatus(t, r, tc.status)
		})
	}
	var refused int
	for _, en := range g.ce.Entries(t) {
		if en.Action == "suspended" && en.Decision == "deny" && en.Org == custos.OrgOperator {
			refused++
		}
	}
	if refused != 4 {
		t.Fatalf("%d refusals of suspended principals on the log, want 4", refused)
	}
	wantStatus(t, g.do(t, "POST", "/v1/suspension", g.monitor, g.statement(t, g.monitorKey, governance.Lift)), http.StatusOK)
	wantStatus(t, g.do(t, "GET", "/v1/records/users/u1", g.service, ""), http.StatusOK)
	// One principal alone.
	wantStatus(t, g.do(t, "POST", "/v1/suspension", g.monitor, g.statement(t, g.monitorKey, governance.Suspend, "wei")), http.StatusOK)
	checkProblem(t, g.do(t, "GET", "/v1/records/users/u1", g.engineer, ""), 403, custos.CodeSuspended)
	wantStatus(t, g.do(t, "GET", "/v1/records/users/u1", g.service, ""), http.StatusOK)
}
