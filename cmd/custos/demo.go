package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/custos/custos"
	"github.com/custos/custos/internal/config"
	"github.com/custos/custos/internal/starter"
	"github.com/custos/custos/internal/synth"
)

const demoUse = "custos demo [--listen 127.0.0.1:8080] [--dir DIR] [--users N] [--videos N] [--events N] [--seed S] [--script]"

// demoPrincipals are the parties of the arrangement, as the demo mints them.
var demoPrincipals = []struct {
	env, what string
	p         custos.Principal
}{
	{"SVC", "the operator's service in the US (writes and serves)", custos.Principal{ID: "feed-service", Org: "operator", Loc: "US", Roles: []string{"service"}}},
	{"STAFF", "vetted custodian staff in the US", custos.Principal{ID: "alice", Org: "custodian", Loc: "US", Roles: []string{"support"}, Vetted: true}},
	{"APPROVER", "a second vetted custodian in the US", custos.Principal{ID: "bob", Org: "custodian", Loc: "US", Roles: []string{"security"}, Vetted: true}},
	{"ENG", "an operator engineer located abroad (SG)", custos.Principal{ID: "wei", Org: "operator", Loc: "SG", Roles: []string{"engineer"}}},
	{"ANALYST", "an operator analyst located abroad (SG)", custos.Principal{ID: "lin", Org: "operator", Loc: "SG", Roles: []string{"analyst"}}},
	{"SGSVC", "the operator's service in SG, recipient of the profiles-abroad flow", custos.Principal{ID: "profiles-sg", Org: "operator", Loc: "SG", Roles: []string{"service"}}},
	{"MONITOR", "the monitor", custos.Principal{ID: "auditor-1", Org: "monitor", Loc: "US", Roles: []string{"auditor"}}},
}

// demoK is k of the demo's aggregates: its platform is small, and the
// default of 50 would suppress nearly every daily group.
const demoK = 10

func (e *env) demo(ctx context.Context, args []string) error {
	fs := e.flags("demo", demoUse+`

Makes a deployment (or reuses the one in --dir), loads a synthetic
short-video platform through the API, and plays the arrangement step by
step: who asks what, and what comes back. Then it keeps serving and prints
tokens to try more by hand. With --script it exits after the steps: 0 when
every step's outcome is the one the arrangement demands, 1 otherwise.`)
	listen := fs.String("listen", "127.0.0.1:8080", "address to listen on")
	dir := fs.String("dir", "", "directory of the demo deployment (default: a new temporary directory); an existing one is reused")
	script := fs.Bool("script", false, "play the steps, then exit: non-zero if any step's outcome is wrong")
	pc := synth.Config{Jurisdiction: "US"}
	fs.IntVar(&pc.Users, "users", synth.DefaultUsers, "users of the synthetic platform")
	fs.IntVar(&pc.Videos, "videos", synth.DefaultVideos, "videos of the synthetic platform")
	fs.IntVar(&pc.Events, "events", synth.DefaultEvents, "watch events of the synthetic platform")
	fs.Uint64Var(&pc.Seed, "seed", 1, "seed of the synthetic platform")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	p, err := synth.New(pc)
	if err != nil {
		return fmt.Errorf("couldn't make the platform: %w", err)
	}
	start := time.Now()
	if *dir == "" {
		d, err := os.MkdirTemp("", "custos-demo-")
		if err != nil {
			return err
		}
		*dir = d
	}
	cfgPath := filepath.Join(*dir, "custos.yaml")
	if _, err := os.Stat(cfgPath); errors.Is(err, os.ErrNotExist) {
		if err := initDemo(*dir); err != nil {
			return err
		}
	}
	// The sample recommender builds while the platform loads.
	module := make(chan demoModule, 1)
	go func() { module <- buildDemoModule(*dir) }()

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
	// The server stops before the deployment under it closes.
	stopServer := func() error { stop(); return <-errc }

	w := e.stdout
	fmt.Fprintf(w, "custos demo is serving %s (deployment %s)\n\n", base, *dir)
	fmt.Fprintf(w, "Loading a synthetic short-video platform through the API, as the operator's service: %d users, %d videos, %d watch events (seed %d).\n",
		pc.Users, pc.Videos, pc.Events, pc.Seed)
	u, _ := url.Parse(base)
	if err := e.loadPlatform(ctx, u, tokens["SVC"], p, 16); err != nil {
		stopServer()
		return fmt.Errorf("couldn't load the platform: %w", err)
	}
	run := &demoRun{e: e, base: base, dir: *dir, tokens: tokens, platform: p, module: module}
	failed := run.play(ctx)
	fmt.Fprintf(w, "\n%d of %d steps went as the arrangement demands, in %s.\n", len(demoSteps())-failed, len(demoSteps()), time.Since(start).Round(time.Second))
	if *script {
		if err := stopServer(); err != nil {
			return err
		}
		if failed > 0 {
			return fmt.Errorf("%d steps of the demo did not go as the arrangement demands", failed)
		}
		return nil
	}
	e.printDemo(base, cfgPath, tokens, p)
	return <-errc
}

// initDemo makes the demo's deployment in dir: the starter deployment, the
// operator's and two reviewers' keys for algorithms, and a k for the
// demo's small platform.
func initDemo(dir string) error {
	if err := initDeployment(dir, starter.Params{Name: "custos-demo", Jurisdiction: "US", Location: "us-local", Issuer: "custos-dev-issuer", ShredAfter: time.Minute}); err != nil {
		return err
	}
	kd := filepath.Join(dir, "algorithm-keys")
	for _, name := range []string{"operator.example", "alice", "bob"} {
		e := &env{stdout: io.Discard, stderr: io.Discard}
		if err := e.keygen("algo", "", []string{"--name", name, "--dir", kd}); err != nil {
			return err
		}
	}
	cfgPath := filepath.Join(dir, "custos.yaml")
	cfg, err := os.ReadFile(cfgPath)
	if err != nil {
		return err
	}
	cfg = append(cfg, fmt.Sprintf(`
# The demo's: the operator's key signs its algorithms, and alice's and
# bob's keys approve them; k of aggregates is %d, the platform being small.
algorithms:
  operators: [algorithm-keys/operator.example.vkey]
  reviewers: [algorithm-keys/alice.vkey, algorithm-keys/bob.vkey]
  approvals: 2
aggregates:
  min_subjects: {default: %d}
`, demoK, demoK)...)
	return os.WriteFile(cfgPath, cfg, 0o644)
}

func (e *env) printDemo(base, cfgPath string, tokens map[string]string, p *synth.Platform) {
	w := e.stdout
	u := p.User(0)
	fmt.Fprintf(w, "\nIt keeps serving. Paste these into a shell to try more (tokens last 12 hours):\n\n")
	fmt.Fprintf(w, "export CUSTOS=%s\n", base)
	for _, dp := range demoPrincipals {
		fmt.Fprintf(w, "# %s\nexport %s=%s\n", dp.what, dp.env, tokens[dp.env])
	}
	fmt.Fprintf(w, `
# The same record, read by each party:
curl -s -H "Authorization: Bearer $STAFF" -H "Custos-Purpose: support" $CUSTOS/v1/records/users/%[3]s
curl -s -H "Authorization: Bearer $ENG" $CUSTOS/v1/records/users/%[3]s
curl -s -H "Authorization: Bearer $MONITOR" $CUSTOS/v1/records/users/%[3]s
# A subject of another jurisdiction is refused (409 wrong_jurisdiction):
curl -s -X PUT -H "Authorization: Bearer $SVC" -d '{"residency":"DE"}' $CUSTOS/v1/subjects/u9
# Daily watch counts per video and country, for the analyst abroad (k = %[4]d here):
curl -s -H "Authorization: Bearer $ANALYST" -d '{"collection":"watch_events","measure":"count","group_by":["video","users.country","day(at)"]}' $CUSTOS/v1/aggregate
# A recommendation from the operator's algorithm, which runs inside custos:
curl -s -X POST -H "Authorization: Bearer $SVC" -d '{"subject":"%[3]s","k":5}' $CUSTOS/v1/algorithms/covisit/recommend
# The declared flow of public profiles to SG:
curl -s -H "Authorization: Bearer $SGSVC" "$CUSTOS/v1/flows/profiles-abroad/export?limit=3"
# Detokenize the engineer's token of the user's email: a second custodian approves
# exactly this request for alice, who then uses the grant (once, within 10 minutes):
TOK=$(curl -s -H "Authorization: Bearer $ENG" $CUSTOS/v1/records/users/%[3]s | sed 's/.*"email":{"form":"token","value":"\([^"]*\)".*/\1/')
REQ="\"tokens\":[\"$TOK\"],\"justification\":{\"reason\":\"fraud\",\"text\":\"chargeback review\",\"ticket\":\"T-1\"}"
GRANT=$(curl -s -H "Authorization: Bearer $APPROVER" -d "{\"requester\":\"alice\",$REQ}" $CUSTOS/v1/approvals | sed 's/.*"approval":"\([^"]*\)".*/\1/')
curl -s -H "Authorization: Bearer $STAFF" -d "{$REQ,\"approval\":\"$GRANT\"}" $CUSTOS/v1/detokenize
# Erase a subject and get the custodian's signed receipt:
curl -s -X DELETE -H "Authorization: Bearer $SVC" $CUSTOS/v1/subjects/%[5]s
# Every decision above is on the transparency log; check it without trusting the server:
go run ./cmd/custos audit verify --log $CUSTOS/log/ --key %[2]s
go run ./cmd/custos audit report --log $CUSTOS/log/ --key %[2]s
curl -s -H "Authorization: Bearer $STAFF" $CUSTOS/v1/subjects/%[3]s/accesses
# Mint more tokens:
go run ./cmd/custos token mint --config %[1]s --sub me --org operator --loc US --roles service

Press Ctrl-C to stop.
`, cfgPath, filepath.Join(filepath.Dir(cfgPath), "log.vkey"), u.ID, demoK, p.User(p.Config().Users-1).ID)
}

// sub runs a custos command in this process, as a user would from the
// shell, and returns what it printed.
func (e *env) sub(ctx context.Context, args ...string) (string, error) {
	var out, errOut bytes.Buffer
	if code := Main(ctx, args, &out, &errOut); code != 0 {
		return out.String(), fmt.Errorf("custos %s exited with %d: %s", strings.Join(args[:2], " "), code, strings.TrimSpace(errOut.String()))
	}
	return out.String(), nil
}
