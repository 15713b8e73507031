package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custos/custos/internal/synth"
)

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// demoRead is a read of a record's fields, as the API answers it.
type demoRead struct {
	Fields map[string]struct {
		Form  string          `json:"form"`
		Value json.RawMessage `json:"value"`
	} `json:"fields"`
}

// TestDemo runs `custos demo` and does what it tells a new user to try,
// with the tokens it prints, then stops it as Ctrl-C would.
func TestDemo(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	dir := filepath.Join(t.TempDir(), "demo")
	exit := make(chan int, 1)
	go func() {
		exit <- Main(ctx, []string{"demo", "--listen", "127.0.0.1:0", "--dir", dir}, &stdout, &stderr)
	}()

	deadline := time.After(3 * time.Minute)
	for !strings.Contains(stdout.String(), "Press Ctrl-C") {
		select {
		case code := <-exit:
			t.Fatalf("demo exited with %d before it was ready\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
		case <-deadline:
			t.Fatalf("demo not ready within 3 minutes\nstdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	out := stdout.String()
	vars := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if kv, ok := strings.CutPrefix(sc.Text(), "export "); ok {
			k, v, _ := strings.Cut(kv, "=")
			vars[k] = v
		}
	}
	for _, k := range []string{"CUSTOS", "SVC", "STAFF", "APPROVER", "ENG", "ANALYST", "SGSVC", "MONITOR"} {
		if vars[k] == "" {
			t.Fatalf("demo printed no export %s=…:\n%s", k, out)
		}
	}
	base := vars["CUSTOS"]
	p, err := synth.New(synth.Config{Seed: 1, Users: synth.DefaultUsers, Videos: synth.DefaultVideos, Events: synth.DefaultEvents, Jurisdiction: "US"})
	if err != nil {
		t.Fatal(err)
	}
	user := p.User(0)
	if !strings.Contains(out, "\n8 of 8 steps went as the arrangement demands") || strings.Contains(out, "✗") {
		t.Errorf("not every step went as the arrangement demands:\n%s\nstderr:\n%s", out, stderr.String())
	}
	if !strings.HasPrefix(out, "custos demo is serving "+base+" (deployment "+dir+")\n") {
		t.Errorf("demo output starts %q", strings.SplitN(out, "\n", 2)[0])
	}
	if strings.HasSuffix(base, ":0") {
		t.Fatalf("demo printed the address it was given, not the one it listens on: %s", base)
	}

	do := func(method, path, token, purpose, body string, want int) []byte {
		t.Helper()
		var v any
		if body != "" {
			v = json.RawMessage(body)
		}
		c := &apiClient{base: base, token: token, purpose: purpose}
		b, err := c.do(ctx, method, path, v, want)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	read := func(token, purpose string) demoRead {
		t.Helper()
		var r demoRead
		if err := json.Unmarshal(do("GET", "/v1/records/users/u000001", token, purpose, "", 200), &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	str := func(raw json.RawMessage) string {
		var s string
		json.Unmarshal(raw, &s)
		return s
	}

	// The same record, read by each party.
	staff := read(vars["STAFF"], "support")
	if f := staff.Fields["email"]; f.Form != "clear" || str(f.Value) != user.Email {
		t.Errorf("staff gets email %s %s, want it in clear", f.Form, f.Value)
	}
	eng := read(vars["ENG"], "")
	email := eng.Fields["email"]
	if email.Form != "token" || !strings.HasPrefix(str(email.Value), "tk_") {
		t.Errorf("engineer abroad gets email %s %s, want a token", email.Form, email.Value)
	}
	if f := eng.Fields["handle"]; f.Form != "clear" || str(f.Value) != user.Handle {
		t.Errorf("engineer abroad gets handle %s %s, want it in clear", f.Form, f.Value)
	}
	mon := read(vars["MONITOR"], "")
	for name, f := range mon.Fields {
		want := "withheld"
		if name == "country" {
			want = "clear"
		}
		if f.Form != want {
			t.Errorf("monitor gets %s as %s, want %s", name, f.Form, want)
		}
	}
	if f := mon.Fields["country"]; str(f.Value) != "US" {
		t.Errorf("monitor gets country %s, want US", f.Value)
	}

	// A subject of another jurisdiction is refused.
	if b := do("PUT", "/v1/subjects/u9", vars["SVC"], "", `{"residency":"DE"}`, 409); !bytes.Contains(b, []byte(`"code":"wrong_jurisdiction"`)) {
		t.Errorf("PUT of a DE subject: %s", b)
	}

	// Detokenize the engineer's token of u1's email: refused without a
	// second approver, answered with one.
	tok := str(email.Value)
	just := `"justification":{"reason":"fraud","text":"chargeback review","ticket":"T-1"}`
	if b := do("POST", "/v1/detokenize", vars["STAFF"], "", `{"tokens":["`+tok+`"],`+just+`}`, 403); !bytes.Contains(b, []byte(`"code":"approval_required"`)) {
		t.Errorf("detokenize without approval: %s", b)
	}
	var det struct {
		Values []struct {
			Token string          `json:"token"`
			Found bool            `json:"found"`
			Field string          `json:"field"`
			Value json.RawMessage `json:"value"`
		} `json:"values"`
	}
	var grant struct {
		Approval string `json:"approval"`
	}
	if err := json.Unmarshal(do("POST", "/v1/approvals", vars["APPROVER"], "", `{"requester":"alice","tokens":["`+tok+`"],`+just+`}`, 201), &grant); err != nil || grant.Approval == "" {
		t.Fatalf("approval: %v %+v", err, grant)
	}
	req := `{"tokens":["` + tok + `"],` + just + `,"approval":"` + grant.Approval + `"}`
	b := do("POST", "/v1/detokenize", vars["STAFF"], "", req, 200)
	if err := json.Unmarshal(b, &det); err != nil {
		t.Fatal(err)
	}
	if len(det.Values) != 1 || !det.Values[0].Found || det.Values[0].Token != tok || det.Values[0].Field != "users.email" || str(det.Values[0].Value) != user.Email {
		t.Errorf("detokenize with approval: %s", b)
	}
	do("POST", "/v1/detokenize", vars["STAFF"], "", req, 403) // a grant serves once

	// The analyst's aggregate and the recommendation the demo prints.
	var agg struct {
		K      int
		Groups []struct{ Key []string }
	}
	b = do("POST", "/v1/aggregate", vars["ANALYST"], "", `{"collection":"watch_events","measure":"count","group_by":["video","users.country","day(at)"]}`, 200)
	if err := json.Unmarshal(b, &agg); err != nil || agg.K != demoK || len(agg.Groups) == 0 {
		t.Errorf("aggregate: %v %s", err, b)
	}
	var rec struct{ Items []string }
	b = do("POST", "/v1/algorithms/covisit/recommend", vars["SVC"], "", `{"subject":"u000001","k":5}`, 200)
	if err := json.Unmarshal(b, &rec); err != nil || len(rec.Items) == 0 {
		t.Errorf("recommend: %v %s", err, b)
	}
	do("GET", "/v1/flows/profiles-abroad/export?limit=3", vars["SGSVC"], "", "", 200)

	// Erase a subject and get the custodian's signed receipt.
	last := p.User(p.Config().Users - 1).ID
	if b := do("DELETE", "/v1/subjects/"+last, vars["SVC"], "", "", 200); !bytes.Contains(b, []byte("custos erasure receipt v1")) {
		t.Errorf("erasure of %s: %s", last, b)
	}
	do("GET", "/v1/records/users/"+last, vars["STAFF"], "support", "", 404)

	// Ctrl-C stops the demo cleanly.
	cancel()
	select {
	case code := <-exit:
		if code != 0 {
			t.Errorf("demo exited with %d after cancel\nstderr:\n%s", code, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("demo did not stop within 15s of cancel")
	}
	if strings.Contains(stderr.String(), user.Email) {
		t.Error("the log holds a protected value")
	}
}

// TestDemoScriptFails plays the demo with --script against a deployment
// whose policy lets the operator read every field in clear from anywhere:
// the engineer's read abroad is not what the arrangement demands, and the
// demo exits non-zero.
func TestDemoScriptFails(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "demo")
	if err := initDemo(dir); err != nil {
		t.Fatal(err)
	}
	// Before the first start, the policies on disk are trusted as the
	// signed ones.
	pol := filepath.Join(dir, "policies", "custos.cedar")
	b, err := os.ReadFile(pol)
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, "\npermit (principal, action == Custos::Action::\"read-clear\", resource is Custos::Field)\nwhen { principal.org == \"operator\" };\n"...)
	if err := os.WriteFile(pol, b, 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr syncBuffer
	code := Main(context.Background(), []string{"demo", "--script", "--listen", "127.0.0.1:0", "--dir", dir, "--users", "60", "--videos", "20", "--events", "300"}, &stdout, &stderr)
	out := stdout.String()
	if code == 0 {
		t.Fatalf("demo --script exited 0 with a policy that releases protected fields abroad:\n%s", out)
	}
	step, _, _ := strings.Cut(out[strings.Index(out, "[2/8]"):], "[3/8]")
	if !strings.Contains(step, "✗ not as the arrangement demands: protected field id came back in clear") {
		t.Errorf("step 2 of the demo:\n%s", step)
	}
	if !strings.Contains(stderr.String(), "did not go as the arrangement demands") {
		t.Errorf("stderr: %s", stderr.String())
	}
}

// TestDemoScript plays the demo with --script on the starter deployment:
// every step goes as the arrangement demands, and it exits 0.
func TestDemoScript(t *testing.T) {
	t.Parallel()
	var stdout, stderr syncBuffer
	code := Main(context.Background(), []string{"demo", "--script", "--listen", "127.0.0.1:0", "--dir", filepath.Join(t.TempDir(), "demo")}, &stdout, &stderr)
	if out := stdout.String(); code != 0 || !strings.Contains(out, "\n8 of 8 steps went as the arrangement demands") || strings.Contains(out, "Press Ctrl-C") {
		t.Errorf("demo --script exited %d:\n%s\nstderr:\n%s", code, out, stderr.String())
	}
}
