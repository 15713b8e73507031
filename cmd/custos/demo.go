package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/custos/custos"
	"github.com/custos/custos/internal/config"
	"github.com/custos/custos/internal/starter"
)

const demoUse = "custos demo [--listen 127.0.0.1:8080] [--dir DIR]"

// demoPrincipals are the parties of the arrangement, as the demo mints them.
var demoPrincipals = []struct {
	env, what string
	p         custos.Principal
}{
	{"SVC", "operator service in the US (writes and serves)", custos.Principal{ID: "feed-service", Org: "operator", Loc: "US", Roles: []string{"service"}}},
	{"STAFF", "vetted custodian staff in the US", custos.Principal{ID: "alice", Org: "custodian", Loc: "US", Roles: []string{"support"}, Vetted: true}},
	{"APPROVER", "a second vetted custodian in the US", custos.Principal{ID: "bob", Org: "custodian", Loc: "US", Roles: []string{"security"}, Vetted: true}},
	{"ENG", "operator engineer located abroad (SG)", custos.Principal{ID: "wei", Org: "operator", Loc: "SG", Roles: []string{"engineer"}}},
	{"MONITOR", "the monitor", custos.Principal{ID: "auditor-1", Org: "monitor", Loc: "US", Roles: []string{"auditor"}}},
}

type demoUser struct {
	id, handle, email, phone, birth, ip, country string
}

var demoUsers = []demoUser{
	{"u1", "ada", "ada@example.com", "+1 202 555 0101", "1990-04-12", "203.0.113.10", "US"},
	{"u2", "grace", "grace@example.org", "+1 415 555 0102", "1985-12-09", "198.51.100.7", "US"},
	{"u3", "linus", "linus@example.net", "+1 312 555 0103", "2001-07-30", "192.0.2.44", "US"},
	{"u4", "katherine", "kj@example.com", "+1 617 555 0104", "1978-08-26", "203.0.113.99", "US"},
	{"u5", "alan", "alan@example.org", "+1 646 555 0105", "1996-06-23", "2001:db8::5", "US"},
}

func (e *env) demo(ctx context.Context, args []string) error {
	fs := e.flags("demo", demoUse)
	listen := fs.String("listen", "127.0.0.1:8080", "address to listen on")
	dir := fs.String("dir", "", "directory for the demo deployment (default: a new temporary directory)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *dir == "" {
		d, err := os.MkdirTemp("", "custos-demo-")
		if err != nil {
			return err
		}
		*dir = d
	}
	if err := initDeployment(*dir, starter.Params{Name: "custos-demo", Jurisdiction: "US", Location: "us-local", Issuer: "custos-dev-issuer", ShredAfter: time.Minute}); err != nil {
		return err
	}
	cfgPath := filepath.Join(*dir, "custos.yaml")
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return err
	}
	d, err := openDeployment(ctx, cfg, e.log)
	if err != nil {
		return err
	}
	defer d.Close()
	tokens := map[string]string{}
	for _, dp := range demoPrincipals {
		t, err := mint(d.cfg, dp.p, 12*time.Hour)
		if err != nil {
			return err
		}
		tokens[dp.env] = t
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("couldn't listen: %w (pick another address with --listen)", err)
	}
	base := "http://" + ln.Addr().String()
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	ready := make(chan struct{})
	errc := make(chan error, 1)
	go func() { errc <- e.run(ctx, d, ln, func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-errc:
		return err
	}
	if err := loadDemo(ctx, base, tokens["SVC"]); err != nil {
		// The server stops before the deployment under it closes.
		stop()
		<-errc
		return fmt.Errorf("couldn't load the sample data: %w", err)
	}
	e.printDemo(base, cfgPath, tokens)
	return <-errc
}

// loadDemo registers the sample users and writes their records through the
// API, as the operator's service would.
func loadDemo(ctx context.Context, base, svc string) error {
	c := &apiClient{base: base, token: svc, purpose: "serving"}
	for _, u := range demoUsers {
		if _, err := c.do(ctx, "PUT", "/v1/subjects/"+u.id, map[string]any{"residency": "US"}, http.StatusCreated); err != nil {
			return err
		}
		rec := map[string]any{"id": u.id, "fields": map[string]any{
			"id": u.id, "handle": u.handle, "email": u.email, "phone": u.phone,
			"birthdate": u.birth, "ip": u.ip, "country": u.country,
		}}
		if _, err := c.do(ctx, "POST", "/v1/records/users", rec, http.StatusCreated); err != nil {
			return err
		}
		vid := "v-" + u.id
		if _, err := c.do(ctx, "POST", "/v1/records/videos", map[string]any{"id": vid, "fields": map[string]any{
			"id": vid, "creator": u.id, "title": "A day with " + u.handle, "duration_ms": 60000,
		}}, http.StatusCreated); err != nil {
			return err
		}
	}
	for i, u := range demoUsers {
		for j := range 3 {
			v := demoUsers[(i+j+1)%len(demoUsers)]
			id := fmt.Sprintf("w-%s-%d", u.id, j)
			if _, err := c.do(ctx, "POST", "/v1/records/watch_events", map[string]any{"id": id, "fields": map[string]any{
				"user": u.id, "video": "v-" + v.id, "watched_ms": 15000 * (j + 1), "at": fmt.Sprintf("2026-11-2%dT1%d:00:00Z", j+1, i),
			}}, http.StatusCreated); err != nil {
				return err
			}
		}
	}
	return nil
}

func (e *env) printDemo(base, cfgPath string, tokens map[string]string) {
	w := e.stdout
	fmt.Fprintf(w, "custos demo is serving %s (deployment %s)\n", base, filepath.Dir(cfgPath))
	fmt.Fprintf(w, "Loaded %d users, their videos and watch events as the operator's service.\n\n", len(demoUsers))
	fmt.Fprintf(w, "Paste these into a shell to try it (tokens last 12 hours):\n\n")
	fmt.Fprintf(w, "export CUSTOS=%s\n", base)
	for _, dp := range demoPrincipals {
		fmt.Fprintf(w, "# %s\nexport %s=%s\n", dp.what, dp.env, tokens[dp.env])
	}
	fmt.Fprintf(w, `
# The same record, read by each party:
curl -s -H "Authorization: Bearer $STAFF" -H "Custos-Purpose: support" $CUSTOS/v1/records/users/u1
curl -s -H "Authorization: Bearer $ENG" $CUSTOS/v1/records/users/u1
curl -s -H "Authorization: Bearer $MONITOR" $CUSTOS/v1/records/users/u1
# A subject of another jurisdiction is refused (409 wrong_jurisdiction):
curl -s -X PUT -H "Authorization: Bearer $SVC" -d '{"residency":"DE"}' $CUSTOS/v1/subjects/u9
# Detokenize the engineer's token of u1's email: a second custodian approves
# exactly this request for alice, who then uses the grant (once, within 10 minutes):
TOK=$(curl -s -H "Authorization: Bearer $ENG" $CUSTOS/v1/records/users/u1 | sed 's/.*"email":{"form":"token","value":"\([^"]*\)".*/\1/')
REQ="\"tokens\":[\"$TOK\"],\"justification\":{\"reason\":\"fraud\",\"text\":\"chargeback review\",\"ticket\":\"T-1\"}"
GRANT=$(curl -s -H "Authorization: Bearer $APPROVER" -d "{\"requester\":\"alice\",$REQ}" $CUSTOS/v1/approvals | sed 's/.*"approval":"\([^"]*\)".*/\1/')
curl -s -H "Authorization: Bearer $STAFF" -d "{$REQ,\"approval\":\"$GRANT\"}" $CUSTOS/v1/detokenize
# Erase a subject and get the custodian's signed receipt:
curl -s -X DELETE -H "Authorization: Bearer $SVC" $CUSTOS/v1/subjects/u5
# Every decision above is on the transparency log; check it without trusting the server:
go run ./cmd/custos audit verify --log $CUSTOS/log/ --key %[2]s
go run ./cmd/custos audit report --log $CUSTOS/log/ --key %[2]s
curl -s -H "Authorization: Bearer $STAFF" $CUSTOS/v1/subjects/u1/accesses
# Mint more tokens:
go run ./cmd/custos token mint --config %[1]s --sub me --org operator --loc US --roles service

Press Ctrl-C to stop.
`, cfgPath, filepath.Join(filepath.Dir(cfgPath), "log.vkey"))
}

// apiClient calls the custos API, for the demo.
type apiClient struct {
	base, token, purpose string
	http                 http.Client
}

func (c *apiClient) do(ctx context.Context, method, path string, body any, want int) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if c.purpose != "" {
		req.Header.Set("Custos-Purpose", c.purpose)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != want {
		return out, fmt.Errorf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, want, out)
	}
	return out, nil
}
