package main

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/custos/custos"
	"github.com/custos/custos/internal/algotest"
	"github.com/custos/custos/internal/synth"
)

// demoRun is what the demo's steps share.
type demoRun struct {
	e        *env
	base     string
	dir      string
	tokens   map[string]string
	platform *synth.Platform
	module   <-chan demoModule
	http     http.Client
	// emailToken is the engineer's token of the first user's email.
	emailToken string
	// lastIndex is the highest audit index an answer named.
	lastIndex uint64
}

// demoStep is one step of the arrangement: who does what, and a run that
// says what was asked and what came back, and fails when the outcome is
// not the one the arrangement demands.
type demoStep struct {
	title, who string
	run        func(ctx context.Context, r *demoRun, say func(string, ...any)) error
}

// demoSteps returns the steps, in order. (A function: the steps run
// custos commands through Main, which runs the demo.)
func demoSteps() []demoStep {
	return []demoStep{
		{"The operator's service writes a watch event", "SVC", stepWrite},
		{"An operator engineer abroad reads a user: tokens and masks only", "ENG", stepReadAbroad},
		{"Vetted custodian staff detokenize the engineer's token, with a justification and a second approver", "STAFF", stepDetokenize},
		{"The operator's recommender is signed, approved twice, trained and serving", "SVC", stepRecommender},
		{"An analyst abroad gets daily watch counts per video and country, small groups suppressed", "ANALYST", stepAggregate},
		{"Reads from abroad that the arrangement forbids are refused", "ENG", stepForbidden},
		{"A declared flow exports public profiles to SG in exactly its declared shape", "SGSVC", stepFlow},
		{"The monitor verifies the transparency log without trusting the server, and reports", "MONITOR", stepMonitor},
	}
}

// play plays the steps and returns how many failed.
func (r *demoRun) play(ctx context.Context) (failed int) {
	w := r.e.stdout
	steps := demoSteps()
	for i, s := range steps {
		fmt.Fprintf(w, "\n[%d/%d] %s\n      as %s\n", i+1, len(steps), s.title, demoWho(s.who))
		say := func(format string, args ...any) {
			for _, l := range strings.Split(strings.TrimRight(fmt.Sprintf(format, args...), "\n"), "\n") {
				fmt.Fprintf(w, "      %s\n", l)
			}
		}
		if err := s.run(ctx, r, say); err != nil {
			fmt.Fprintf(w, "      ✗ not as the arrangement demands: %v\n", err)
			failed++
			continue
		}
		fmt.Fprintf(w, "      ✓\n")
	}
	return failed
}

func demoWho(env string) string {
	for _, dp := range demoPrincipals {
		if dp.env == env {
			return fmt.Sprintf("%s (%s, org %s, in %s)", dp.what, dp.p.ID, dp.p.Org, dp.p.Loc)
		}
	}
	return env
}

// call sends a request as the principal of who and returns the status and
// body.
func (r *demoRun) call(ctx context.Context, who, method, path string, body any) (int, []byte, error) {
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			return 0, nil, err
		}
	}
	resp, out, err := send(ctx, &r.http, method, r.base+path, r.tokens[who], "", b)
	if err != nil {
		return 0, nil, err
	}
	if i, err := strconv.ParseUint(resp.Header.Get("Custos-Audit-Index"), 10, 64); err == nil {
		r.lastIndex = max(r.lastIndex, i)
	}
	return resp.StatusCode, out, nil
}

// want checks the status of a call, and says what came back.
func want(status int, body []byte, err error, codes ...int) error {
	if err != nil {
		return err
	}
	if !slices.Contains(codes, status) {
		return fmt.Errorf("status %d: %s", status, clip(string(body), 300))
	}
	return nil
}

func clip(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func stepWrite(ctx context.Context, r *demoRun, say func(string, ...any)) error {
	u, v := r.platform.User(0), r.platform.Video(0)
	body := map[string]any{"id": "w-demo-1", "fields": map[string]any{
		"user": u.ID, "video": v.ID, "watched_ms": 30000, "at": "2026-11-30T12:00:00Z",
	}}
	say("POST /v1/records/watch_events %s", mustJSON(body))
	status, out, err := r.call(ctx, "SVC", "POST", "/v1/records/watch_events", body)
	if err := want(status, out, err, http.StatusCreated, http.StatusOK); err != nil {
		return err
	}
	say("→ %d %s", status, clip(string(out), 200))
	say("The user, the watch time and the time are sealed under the user's data key; the write is on the log.")
	return nil
}

type demoField struct {
	Form  string          `json:"form"`
	Value json.RawMessage `json:"value"`
}

func stepReadAbroad(ctx context.Context, r *demoRun, say func(string, ...any)) error {
	u := r.platform.User(0)
	say("GET /v1/records/users/%s", u.ID)
	status, out, err := r.call(ctx, "ENG", "GET", "/v1/records/users/"+u.ID, nil)
	if err := want(status, out, err, http.StatusOK); err != nil {
		return err
	}
	var rec struct {
		Fields     map[string]demoField `json:"fields"`
		AuditIndex uint64               `json:"audit_index"`
	}
	if err := json.Unmarshal(out, &rec); err != nil {
		return err
	}
	for _, name := range []string{"id", "handle", "email", "phone", "birthdate", "ip", "country"} {
		f := rec.Fields[name]
		say("→ %-9s %-6s %s", name, f.Form, f.Value)
	}
	say("(audit index %d)", rec.AuditIndex)
	for _, name := range []string{"id", "email", "phone", "birthdate", "ip"} {
		if rec.Fields[name].Form == "clear" {
			return fmt.Errorf("protected field %s came back in clear", name)
		}
	}
	if f := rec.Fields["handle"]; f.Form != "clear" || string(f.Value) != strconv.Quote(u.Handle) {
		return fmt.Errorf("the public handle came back %s %s, want it in clear", f.Form, f.Value)
	}
	if f := rec.Fields["email"]; f.Form != "token" {
		return fmt.Errorf("the email came back %s, want a token", f.Form)
	} else {
		json.Unmarshal(f.Value, &r.emailToken)
	}
	return nil
}

func stepDetokenize(ctx context.Context, r *demoRun, say func(string, ...any)) error {
	if r.emailToken == "" {
		return fmt.Errorf("no token to detokenize: the engineer's read failed")
	}
	just := map[string]string{"reason": "fraud", "text": "chargeback review", "ticket": "T-1"}
	req := map[string]any{"requester": "alice", "tokens": []string{r.emailToken}, "justification": just}
	say("bob (a second vetted custodian) approves: POST /v1/approvals %s", mustJSON(req))
	status, out, err := r.call(ctx, "APPROVER", "POST", "/v1/approvals", req)
	if err := want(status, out, err, http.StatusCreated); err != nil {
		return err
	}
	var grant struct {
		Approval string `json:"approval"`
	}
	if err := json.Unmarshal(out, &grant); err != nil || grant.Approval == "" {
		return fmt.Errorf("no grant in %s", clip(string(out), 200))
	}
	say("→ %d, a single-use grant", status)
	body := map[string]any{"tokens": []string{r.emailToken}, "justification": just, "approval": grant.Approval}
	say("alice: POST /v1/detokenize with the grant")
	status, out, err = r.call(ctx, "STAFF", "POST", "/v1/detokenize", body)
	if err := want(status, out, err, http.StatusOK); err != nil {
		return err
	}
	say("→ %d %s", status, clip(string(out), 300))
	var res struct {
		Values []struct {
			Value json.RawMessage `json:"value"`
		} `json:"values"`
	}
	if err := json.Unmarshal(out, &res); err != nil || len(res.Values) != 1 {
		return fmt.Errorf("unexpected answer")
	}
	if got, want := string(res.Values[0].Value), strconv.Quote(r.platform.User(0).Email); got != want {
		return fmt.Errorf("detokenized to %s, want the user's email %s", got, want)
	}
	say("The token stood for the user's email; the detokenization and its approval are loud on the log.")
	return nil
}

// demoModule is the sample recommender, built from this checkout.
type demoModule struct {
	module, manifest, source string // files
	err                      error
}

// buildDemoModule builds examples/covisit for the sandbox into dir, with
// its manifest and an archive of its source.
func buildDemoModule(dir string) demoModule {
	out := filepath.Join(dir, "covisit")
	if err := os.MkdirAll(out, 0o700); err != nil {
		return demoModule{err: err}
	}
	root, err := algotest.Root()
	if err != nil {
		return demoModule{err: fmt.Errorf("the sample recommender is built from a checkout of custos with the go tool: %w", err)}
	}
	wasm, err := algotest.Compile("./examples/covisit/wasm", out)
	if err != nil {
		return demoModule{err: err}
	}
	m := demoModule{module: filepath.Join(out, "covisit.wasm"), manifest: filepath.Join(root, "examples/covisit/manifest.json"), source: filepath.Join(out, "source.tar")}
	if err := os.WriteFile(m.module, wasm, 0o644); err != nil {
		return demoModule{err: err}
	}
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	files, _ := filepath.Glob(filepath.Join(root, "examples/covisit/*.go"))
	more, _ := filepath.Glob(filepath.Join(root, "examples/covisit/wasm/*.go"))
	for _, f := range append(files, more...) {
		data, err := os.ReadFile(f)
		if err != nil {
			return demoModule{err: err}
		}
		rel, _ := filepath.Rel(root, f)
		tw.WriteHeader(&tar.Header{Name: rel, Mode: 0o644, Size: int64(len(data)), ModTime: time.Unix(0, 0)})
		tw.Write(data)
	}
	tw.Close()
	if err := os.WriteFile(m.source, b.Bytes(), 0o644); err != nil {
		return demoModule{err: err}
	}
	return m
}

func stepRecommender(ctx context.Context, r *demoRun, say func(string, ...any)) error {
	m := <-r.module
	if m.err != nil {
		return m.err
	}
	keys := filepath.Join(r.dir, "algorithm-keys")
	bundle := filepath.Join(r.dir, "covisit", "covisit.bundle")
	cmds := [][]string{
		{"algo", "sign", "--key", filepath.Join(keys, "operator.example.key"), "--manifest", m.manifest, "--module", m.module, "--source", m.source, "--out", bundle},
		{"algo", "submit", "--server", r.base, "--token", r.tokens["ENG"], "--bundle", bundle},
		{"algo", "approve", "--server", r.base, "--token", r.tokens["STAFF"], "--key", filepath.Join(keys, "alice.key"), "--name", "covisit", "--module", m.module},
		{"algo", "approve", "--server", r.base, "--token", r.tokens["APPROVER"], "--key", filepath.Join(keys, "bob.key"), "--name", "covisit", "--module", m.module},
		{"algo", "train", "--server", r.base, "--token", r.tokens["SVC"], "--name", "covisit"},
	}
	who := []string{"the operator signs", "an operator engineer submits", "alice reviews and approves", "bob reviews and approves", "the operator's service trains"}
	for i, args := range cmds {
		say("%s: custos %s", who[i], strings.Join(args[:2], " "))
		out, err := r.e.sub(ctx, args...)
		if err != nil && !(i == 1 && strings.Contains(err.Error(), "conflict")) {
			return err
		}
		if out != "" {
			say("→ %s", clip(out, 300))
		}
	}
	u := r.platform.User(0)
	say("the operator's service asks for 5 videos for %s: custos algo recommend", u.ID)
	out, err := r.e.sub(ctx, "algo", "recommend", "--server", r.base, "--token", r.tokens["SVC"], "--name", "covisit", "--subject", u.ID, "--k", "5")
	if err != nil {
		return err
	}
	say("→ %s", strings.ReplaceAll(strings.TrimSpace(out), "\n", " "))
	seen := map[string]bool{}
	for ev := range r.platform.Events() {
		if ev.User == u.ID {
			seen[ev.Video] = true
		}
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	items := lines[:len(lines)-1]
	if len(items) == 0 {
		return fmt.Errorf("no recommendation came back")
	}
	for _, v := range items {
		if seen[v] {
			return fmt.Errorf("recommended %s, which the user watched", v)
		}
	}
	say("Videos the user has not watched. The algorithm saw tokens only, inside the sandbox; its inputs are sealed for replay.")
	return nil
}

type demoAggregate struct {
	K      int `json:"k"`
	Groups []struct {
		Key   []string `json:"key"`
		Value float64  `json:"value"`
	} `json:"groups"`
	Suppressed int    `json:"suppressed"`
	AuditIndex uint64 `json:"audit_index"`
}

func stepAggregate(ctx context.Context, r *demoRun, say func(string, ...any)) error {
	q := map[string]any{"collection": "watch_events", "measure": "count", "group_by": []string{"video", "users.country", "day(at)"}}
	say("POST /v1/aggregate %s", mustJSON(q))
	status, out, err := r.call(ctx, "ANALYST", "POST", "/v1/aggregate", q)
	if err := want(status, out, err, http.StatusOK); err != nil {
		return err
	}
	var res demoAggregate
	if err := json.Unmarshal(out, &res); err != nil {
		return err
	}
	slices.SortFunc(res.Groups, func(a, b struct {
		Key   []string `json:"key"`
		Value float64  `json:"value"`
	}) int {
		return int(b.Value - a.Value)
	})
	for i, g := range res.Groups[:min(5, len(res.Groups))] {
		say("→ %-30s %4.0f views%s", strings.Join(g.Key, " "), g.Value, map[bool]string{true: "   (the largest groups)"}[i == 0])
	}
	say("→ %d groups released, %d withheld as too small or to protect the small ones (k = %d distinct users); audit index %d",
		len(res.Groups), res.Suppressed, res.K, res.AuditIndex)
	if len(res.Groups) == 0 || res.Suppressed == 0 {
		return fmt.Errorf("want some groups released and some suppressed")
	}
	return nil
}

func stepForbidden(ctx context.Context, r *demoRun, say func(string, ...any)) error {
	u := r.platform.User(0)
	cases := []struct {
		who, what, method, path string
		body                    any
		code                    string
	}{
		{"ANALYST", "the watch events of one user", "POST", "/v1/aggregate",
			map[string]any{"collection": "watch_events", "measure": "count", "group_by": []string{"day(at)"}, "where": []any{map[string]any{"term": "user", "in": []string{u.ID}}}}, custos.CodeForbidden},
		{"ANALYST", "views of users of the smallest territory, " + smallestCountry(r.platform), "POST", "/v1/aggregate",
			map[string]any{"collection": "watch_events", "measure": "count", "group_by": []string{"video"}, "where": []any{map[string]any{"term": "users.country", "in": []string{smallestCountry(r.platform)}}}}, custos.CodeQuerySetTooSmall},
		{"ENG", "the user's email behind the token, without custody's approval", "POST", "/v1/detokenize",
			map[string]any{"tokens": []string{r.emailToken}, "justification": map[string]string{"reason": "fraud", "text": "curious", "ticket": "T-2"}}, custos.CodeForbidden},
		{"ENG", "who accessed the user's data", "GET", "/v1/subjects/" + u.ID + "/accesses", nil, custos.CodeForbidden},
	}
	for _, c := range cases {
		say("%s asks for %s: %s %s", c.who, c.what, c.method, c.path)
		status, out, err := r.call(ctx, c.who, c.method, c.path, c.body)
		if err != nil {
			return err
		}
		var p struct {
			Code   string `json:"code"`
			Detail string `json:"detail"`
		}
		json.Unmarshal(out, &p)
		say("→ %d %s: %s", status, p.Code, p.Detail)
		if status != http.StatusForbidden || p.Code != c.code {
			return fmt.Errorf("want 403 %s", c.code)
		}
	}
	say("Each refusal is on the log too.")
	return nil
}

// smallestCountry returns the country of the fewest users of p, after US.
func smallestCountry(p *synth.Platform) string {
	n := map[string]int{}
	for u := range p.Users() {
		n[u.Country]++
	}
	best := ""
	for c, k := range n {
		if c != "US" && (best == "" || k < n[best] || k == n[best] && c < best) {
			best = c
		}
	}
	return best
}

func stepFlow(ctx context.Context, r *demoRun, say func(string, ...any)) error {
	say("GET /v1/flows/profiles-abroad/export?limit=3")
	status, out, err := r.call(ctx, "SGSVC", "GET", "/v1/flows/profiles-abroad/export?limit=3", nil)
	if err := want(status, out, err, http.StatusOK); err != nil {
		return err
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	for _, l := range lines {
		say("→ %s", clip(l, 160))
	}
	for _, l := range lines[:len(lines)-1] {
		var rec struct {
			Fields map[string]string `json:"fields"`
		}
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			return err
		}
		names := slices.Sorted(maps.Keys(rec.Fields))
		if !slices.Equal(names, []string{"country", "email", "handle", "id"}) || !strings.HasPrefix(rec.Fields["email"], "tk_") {
			return fmt.Errorf("a record left in another shape than declared: %v", names)
		}
	}
	say("Exactly the declared fields: the email as the operator's token. The page is on the log, and a sample is kept for the monitor.")
	return nil
}

func stepMonitor(ctx context.Context, r *demoRun, say func(string, ...any)) error {
	key := filepath.Join(r.dir, "log.vkey")
	// The log publishes a checkpoint every second: wait for one that
	// covers the steps above.
	if err := r.waitCheckpoint(ctx); err != nil {
		return err
	}
	say("custos audit verify --log %s/log/ --key %s", r.base, key)
	out, err := r.e.sub(ctx, "audit", "verify", "--log", r.base+"/log/", "--key", key)
	if err != nil {
		return err
	}
	say("→ %s", strings.TrimSpace(out))
	say("custos audit report --log %s/log/ --key %s", r.base, key)
	out, err = r.e.sub(ctx, "audit", "report", "--log", r.base+"/log/", "--key", key)
	if err != nil {
		return err
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for _, l := range lines[:min(len(lines), 60)] {
		say("  %s", l)
	}
	if len(lines) > 60 {
		say("  … (%d more lines)", len(lines)-60)
	}
	return nil
}

// waitCheckpoint waits until the log's checkpoint covers the last entry an
// answer named, as its tree size says, for up to 10 seconds.
func (r *demoRun) waitCheckpoint(ctx context.Context) error {
	last := r.lastIndex
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		status, out, err := r.call(ctx, "MONITOR", "GET", "/log/checkpoint", nil)
		if err := want(status, out, err, http.StatusOK); err != nil {
			return err
		}
		if lines := strings.SplitN(string(out), "\n", 3); len(lines) == 3 {
			if size, err := strconv.ParseUint(lines[1], 10, 64); err == nil && size > last {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("no checkpoint covered audit index %d within 10 seconds", last)
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
