package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
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
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	dir := filepath.Join(t.TempDir(), "demo")
	exit := make(chan int, 1)
	go func() {
		exit <- Main(ctx, []string{"demo", "--listen", "127.0.0.1:0", "--dir", dir}, &stdout, &stderr)
	}()

	deadline := time.After(30 * time.Second)
	for !strings.Contains(stdout.String(), "Press Ctrl-C") {
		select {
		case code := <-exit:
			t.Fatalf("demo exited with %d before it was ready\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
		case <-deadline:
			t.Fatalf("demo not ready within 30s\nstdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
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
	for _, k := range []string{"CUSTOS", "SVC", "STAFF", "APPROVER", "ENG", "MONITOR"} {
		if vars[k] == "" {
			t.Fatalf("demo printed no export %s=…:\n%s", k, out)
		}
	}
	base := vars["CUSTOS"]
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
		if err := json.Unmarshal(do("GET", "/v1/records/users/u1", token, purpose, "", 200), &r); err != nil {
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
	if f := staff.Fields["email"]; f.Form != "clear" || str(f.Value) != "ada@example.com" {
		t.Errorf("staff gets email %s %s, want it in clear", f.Form, f.Value)
	}
	eng := read(vars["ENG"], "")
	email := eng.Fields["email"]
	if email.Form != "token" || !strings.HasPrefix(str(email.Value), "tk_") {
		t.Errorf("engineer abroad gets email %s %s, want a token", email.Form, email.Value)
	}
	if f := eng.Fields["handle"]; f.Form != "clear" || str(f.Value) != "ada" {
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
	if len(det.Values) != 1 || !det.Values[0].Found || det.Values[0].Token != tok || det.Values[0].Field != "users.email" || str(det.Values[0].Value) != "ada@example.com" {
		t.Errorf("detokenize with approval: %s", b)
	}
	do("POST", "/v1/detokenize", vars["STAFF"], "", req, 403) // a grant serves once

	// Erase a subject and get the custodian's signed receipt.
	if b := do("DELETE", "/v1/subjects/u5", vars["SVC"], "", "", 200); !bytes.Contains(b, []byte("custos erasure receipt v1")) {
		t.Errorf("erasure of u5: %s", b)
	}
	do("GET", "/v1/records/users/u5", vars["STAFF"], "support", "", 404)
	do("GET", "/v1/records/videos/v-u5", vars["STAFF"], "support", "", 404)

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
	if strings.Contains(stderr.String(), "ada@example.com") {
		t.Error("the log holds a protected value")
	}
}
