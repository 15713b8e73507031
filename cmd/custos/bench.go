package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/custos/custos"
	"github.com/custos/custos/algo/guest"
	"github.com/custos/custos/examples/covisit"
	"github.com/custos/custos/internal/algo"
	"github.com/custos/custos/internal/algotest"
	"github.com/custos/custos/internal/auditlog"
	"github.com/custos/custos/internal/bench"
	"github.com/custos/custos/internal/custody"
	"github.com/custos/custos/internal/verifier"
	"golang.org/x/mod/sumdb/note"
)

const benchUse = `custos bench [--duration 2s] [--concurrency 1,16] [--scenarios REGEXP|NAME,NAME] [--users 1000] [--json]
    custos bench --scale 1000,10000,100000 [--duration 2s] [--json]`

// benchScenario is a row of custos bench: an operation through custos and,
// where one applies, the same work done bare, without custody, measured in
// the same run at the same concurrency.
type benchScenario struct {
	name string
	what string // what one operation is
	unit string // what the rate counts, when an operation does many
	// serial scenarios are measured at concurrency 1 only.
	serial bool
	// goal is the least ratio to the baseline the design asks for; 0 for
	// none.
	goal float64
	op   func(*benchEnv, context.Context) (bench.Op, error)
	// bare is the baseline, measured once per concurrency for every
	// scenario that names the same bareName.
	bareName string
	bare     func(*benchEnv, context.Context) (bench.Op, error)
	// note says why a scenario without op is not measured.
	note string
}

// benchScenarios run in this order; audit-verify comes last, to verify
// the log every other scenario wrote.
var benchScenarios = []benchScenario{
	{name: "write", what: "POST /v1/records/users as the operator's service: a user's record replaced, sealed, its tokens indexed, audited",
		op: (*benchEnv).writeOp, bareName: "write (bare)", bare: (*benchEnv).bareWriteOp},
	{name: "read-service", what: "GET /v1/records/users/{id} as the operator's service in the US, purpose serving: every field in clear",
		goal: 0.5, op: readOp("SVC", "serving"), bareName: "read (bare)", bare: (*benchEnv).bareReadOp},
	{name: "read-engineer", what: "GET /v1/records/users/{id} as an operator engineer in SG: protected fields as tokens",
		goal: 0.5, op: readOp("ENG", ""), bareName: "read (bare)", bare: (*benchEnv).bareReadOp},
	{name: "read-custodian", what: "GET /v1/records/users/{id} as vetted custodian staff, purpose support: every field in clear",
		goal: 0.5, op: readOp("STAFF", "support"), bareName: "read (bare)", bare: (*benchEnv).bareReadOp},
	{name: "read-monitor", what: "GET /v1/records/users/{id} as the monitor: business metrics only",
		goal: 0.5, op: readOp("MONITOR", ""), bareName: "read (bare)", bare: (*benchEnv).bareReadOp},
	{name: "detokenize", what: "POST /v1/approvals by a second custodian, then POST /v1/detokenize of an email token with that grant (two requests, two audit entries)",
		op: (*benchEnv).detokenizeOp},
	{name: "audit-append", what: "a durable append to the deployment's audit log by concurrent writers, in process (auditlog Record)",
		op: (*benchEnv).appendOp, bareName: "append (bare)", bare: (*benchEnv).bareAppendOp},
	{name: "recommend", what: "POST /v1/algorithms/covisit/recommend as the operator's service: the sample recommender in the sandbox",
		op: (*benchEnv).recommendOp, bareName: "recommend (native)", bare: (*benchEnv).nativeRecommendOp},
	{name: "export", what: "GET /v1/flows/profiles-abroad/export as the operator's service in SG, pages of 1000, following the cursor",
		unit: "records", serial: true, op: (*benchEnv).exportOp, bareName: "export (bare)", bare: (*benchEnv).bareExportOp},
	{name: "aggregate", what: "POST /v1/aggregate as an operator analyst in SG: watch events counted by the watcher's country (joined from users), groups of at least k users (50, or half the watchers of a smaller data set)",
		op: (*benchEnv).aggregateOp, bareName: "aggregate (bare SQL)", bare: (*benchEnv).bareAggregateOp},
	{name: "audit-verify", what: "custos audit verify of the whole log over HTTP, from an empty state",
		unit: "entries", serial: true, op: (*benchEnv).verifyOp},
}

// benchSkip is why a scenario cannot run here.
type benchSkip string

func (s benchSkip) Error() string { return string(s) }

func (e *env) bench(ctx context.Context, args []string) error {
	fs := e.flags("bench", benchUse+`

Measures custos on a fresh deployment in a temporary directory, served on
a loopback port, against bare handlers doing the same work without custody.

Example:
    custos bench --duration 5s --scenarios 'read|write'`)
	dur := fs.Duration("duration", 2*time.Second, "how long each row is measured, after a quarter as long of warm-up")
	concs := fs.String("concurrency", "1,16", "concurrent clients: a comma-separated list, a row each")
	filter := fs.String("scenarios", "", "the scenarios to run: a regular expression, or a comma-separated list of names (default: all)")
	users := fs.Int("users", 1000, "users in the data set")
	asJSON := fs.Bool("json", false, "print the results as JSON")
	scale := fs.String("scale", "", "instead, measure how costs grow with the data set, on a deployment of each of these numbers of users, such as 1000,10000,100000")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	conc, err := positiveInts(*concs)
	if err != nil || *dur <= 0 || *users < 1 {
		fmt.Fprintf(e.stderr, "custos bench: --concurrency must list positive numbers, --duration be positive and --users at least 1\n")
		fs.Usage()
		return errUsage
	}
	if *scale != "" {
		sizes, err := positiveInts(*scale)
		if err != nil {
			return fmt.Errorf("--scale: %w", err)
		}
		return e.benchScale(ctx, sizes, *dur, *asJSON)
	}
	sel, err := selectScenarios(*filter)
	if err != nil {
		return err
	}
	results, err := e.runBench(ctx, sel, conc, *dur, *users)
	if err != nil {
		return err
	}
	if *asJSON {
		return bench.WriteJSON(e.stdout, results)
	}
	if err := bench.WriteTable(e.stdout, results); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "\n%d users; rates over %s per row; VS BARE is the rate over the bare baseline's at the same concurrency.\n", *users, *dur)
	fmt.Fprintln(e.stdout, readGoal(results))
	return nil
}

// positiveInts parses a comma-separated list of positive integers.
func positiveInts(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive integer", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// selectScenarios returns the scenarios filter names: a comma-separated
// list of names, or a regular expression matching names.
func selectScenarios(filter string) ([]benchScenario, error) {
	var names []string
	for _, s := range benchScenarios {
		names = append(names, s.name)
	}
	if filter == "" {
		return benchScenarios, nil
	}
	var match func(string) bool
	if strings.Contains(filter, ",") {
		list := strings.Split(filter, ",")
		for _, n := range list {
			if !slices.Contains(names, n) {
				return nil, fmt.Errorf("--scenarios: no scenario %q (scenarios: %s)", n, strings.Join(names, ", "))
			}
		}
		match = func(n string) bool { return slices.Contains(list, n) }
	} else {
		re, err := regexp.Compile(filter)
		if err != nil {
			return nil, fmt.Errorf("--scenarios: %w", err)
		}
		match = re.MatchString
	}
	var sel []benchScenario
	for _, s := range benchScenarios {
		if match(s.name) {
			sel = append(sel, s)
		}
	}
	if len(sel) == 0 {
		return nil, fmt.Errorf("--scenarios %q matches no scenario (scenarios: %s)", filter, strings.Join(names, ", "))
	}
	return sel, nil
}

// runBench measures the scenarios sel on a fresh deployment of n users.
func (e *env) runBench(ctx context.Context, sel []benchScenario, concs []int, dur time.Duration, n int) ([]bench.Result, error) {
	fmt.Fprintf(e.stderr, "custos bench: %d users, %s per row after %s of warm-up, concurrency %v, GOMAXPROCS %d, load %s\n",
		n, dur, dur/4, concs, runtime.GOMAXPROCS(0), loadAverage())
	var module *benchModule
	skip := "not selected"
	if slices.ContainsFunc(sel, func(s benchScenario) bool { return s.name == "recommend" }) {
		module, skip = e.buildCovisit()
	}
	b, err := newBenchEnv(ctx, e, n, module)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	b.covisitSkip = skip
	start := time.Now()
	fmt.Fprintf(e.stderr, "loading %d users through the API as the operator's service (%d clients)\n", n, benchLoaders)
	if err := b.load(ctx, 0, n); err != nil {
		return nil, fmt.Errorf("couldn't load the data set: %w", err)
	}
	// The watch history is for the recommender and the aggregates.
	if module != nil || slices.ContainsFunc(sel, func(s benchScenario) bool { return s.name == "aggregate" }) {
		fmt.Fprintf(e.stderr, "loading %d videos and the watch history of %d users\n", benchVideos, min(n, benchWatchers))
		if err := b.loadWatches(ctx); err != nil {
			return nil, fmt.Errorf("couldn't load the data set: %w", err)
		}
	}
	fmt.Fprintf(e.stderr, "loaded in %s\n", time.Since(start).Round(time.Millisecond))
	return b.measure(ctx, sel, concs, dur)
}

// measure runs each scenario at each concurrency, each row followed by its
// baseline's the first time that is measured at that concurrency.
func (b *benchEnv) measure(ctx context.Context, sel []benchScenario, concs []int, dur time.Duration) ([]bench.Result, error) {
	var results []bench.Result
	bareOps := map[string]bench.Op{}
	bares := map[string]bench.Result{} // by bareName and concurrency
	for _, s := range sel {
		if s.op == nil {
			fmt.Fprintf(b.e.stderr, "%s: %s\n", s.name, s.note)
			results = append(results, bench.Result{Scenario: s.name, Note: s.note})
			continue
		}
		op, err := s.op(b, ctx)
		if skip, ok := errors.AsType[benchSkip](err); ok {
			fmt.Fprintf(b.e.stderr, "%s: skipped: %s\n", s.name, skip)
			results = append(results, bench.Result{Scenario: s.name, Note: "skipped: " + string(skip)})
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
		if s.bare != nil && bareOps[s.bareName] == nil {
			if bareOps[s.bareName], err = s.bare(b, ctx); err != nil {
				return nil, fmt.Errorf("%s: %w", s.bareName, err)
			}
		}
		levels := concs
		if s.serial {
			levels = []int{1}
		}
		for _, c := range levels {
			r, err := b.row(ctx, s.name, s.what, s.unit, c, dur, op)
			if err != nil {
				return nil, err
			}
			if s.bare != nil {
				key := fmt.Sprintf("%s@%d", s.bareName, c)
				base, ok := bares[key]
				if !ok {
					if base, err = b.row(ctx, s.bareName, "the same without custody", s.unit, c, dur, bareOps[s.bareName]); err != nil {
						return nil, err
					}
					base.Bare, bares[key] = true, base
				}
				r.Compare(base, s.goal)
				results = append(results, r)
				if !ok {
					results = append(results, base)
				}
				continue
			}
			results = append(results, r)
		}
	}
	return results, nil
}

// row measures op at concurrency c and returns its row.
func (b *benchEnv) row(ctx context.Context, name, what, unit string, c int, dur time.Duration, op bench.Op) (bench.Result, error) {
	load := loadAverage()
	fmt.Fprintf(b.e.stderr, "measuring %s at concurrency %d for %s (load %s): %s\n", name, c, dur, load, what)
	m, err := bench.Run(ctx, bench.Config{Concurrency: c, Duration: dur, Warmup: dur / 4}, op)
	if err != nil {
		return bench.Result{}, fmt.Errorf("%s at concurrency %d: %w", name, c, err)
	}
	r := bench.NewResult(name, c, unit, m)
	r.Load, _ = strconv.ParseFloat(load, 64)
	return r, nil
}

// readGoal says whether reads met the design's goal.
func readGoal(results []bench.Result) string {
	var met, missed []string
	for _, r := range results {
		if r.Goal == nil {
			continue
		}
		row := fmt.Sprintf("%s@%d (%.2f)", r.Scenario, r.Concurrency, *r.Ratio)
		if r.Goal.Met {
			met = append(met, row)
		} else {
			missed = append(missed, row)
		}
	}
	switch {
	case len(met)+len(missed) == 0:
		return "Goal (a read through custos keeps at least half the bare handler's throughput): no read measured."
	case len(missed) == 0:
		return "Goal (a read through custos keeps at least half the bare handler's throughput): met by every read."
	}
	return "Goal (a read through custos keeps at least half the bare handler's throughput): NOT met by " + strings.Join(missed, ", ") + "."
}

// loadAverage returns the one-minute load average, or "?" where the
// system does not tell it.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) > 0 {
		return f[0]
	}
	return "?"
}

func (b *benchEnv) writeOp(context.Context) (bench.Op, error) {
	var version atomic.Int64
	return func(ctx context.Context, _ int) (int, error) {
		v := int(version.Add(1))
		_, err := b.call(ctx, "POST", "/v1/records/users", "SVC", "serving", userBody(v%b.users, v), http.StatusOK)
		return 1, err
	}, nil
}

func (b *benchEnv) bareWriteOp(ctx context.Context) (bench.Op, error) {
	if err := b.bare.prepareWrites(ctx, b.users); err != nil {
		return nil, err
	}
	var version atomic.Int64
	return func(ctx context.Context, _ int) (int, error) {
		v := int(version.Add(1))
		_, err := do(ctx, b.client, "POST", b.bare.url+"/records/users", "", "", userBody(v%b.users, v), http.StatusOK)
		return 1, err
	}, nil
}

// readOp reads random users' records as the principal who, for purpose.
func readOp(who, purpose string) func(*benchEnv, context.Context) (bench.Op, error) {
	return func(b *benchEnv, _ context.Context) (bench.Op, error) {
		return func(ctx context.Context, _ int) (int, error) {
			_, err := b.call(ctx, "GET", "/v1/records/users/"+benchUser(rand.IntN(b.users)), who, purpose, nil, http.StatusOK)
			return 1, err
		}, nil
	}
}

func (b *benchEnv) bareReadOp(context.Context) (bench.Op, error) {
	return func(ctx context.Context, _ int) (int, error) {
		_, err := do(ctx, b.client, "GET", b.bare.url+"/records/users/"+benchUser(rand.IntN(b.users)), "", "", nil, http.StatusOK)
		return 1, err
	}, nil
}

// detokenizeOp resolves tokens of users' emails as an operator engineer
// reads them: alice asks, bob approves.
func (b *benchEnv) detokenizeOp(ctx context.Context) (bench.Op, error) {
	var tokens []string
	for i := range min(b.users, 64) {
		out, err := b.call(ctx, "GET", "/v1/records/users/"+benchUser(i), "ENG", "", nil, http.StatusOK)
		if err != nil {
			return nil, err
		}
		var rd struct {
			Fields map[string]custody.Field `json:"fields"`
		}
		if err := json.Unmarshal(out, &rd); err != nil || rd.Fields["email"].Form != custos.FormToken {
			return nil, fmt.Errorf("an engineer's read holds no email token: %s", out)
		}
		var t string
		json.Unmarshal(rd.Fields["email"].Value, &t)
		tokens = append(tokens, t)
	}
	return func(ctx context.Context, _ int) (int, error) {
		req := map[string]any{
			"tokens":        []string{tokens[rand.IntN(len(tokens))]},
			"justification": map[string]string{"reason": "fraud", "text": "chargeback review", "ticket": "T-1"},
		}
		approval, _ := json.Marshal(map[string]any{"requester": "alice", "tokens": req["tokens"], "justification": req["justification"]})
		out, err := b.call(ctx, "POST", "/v1/approvals", "APPROVER", "", approval, http.StatusCreated)
		if err != nil {
			return 0, err
		}
		var grant struct{ Approval string }
		if err := json.Unmarshal(out, &grant); err != nil {
			return 0, err
		}
		req["approval"] = grant.Approval
		body, _ := json.Marshal(req)
		out, err = b.call(ctx, "POST", "/v1/detokenize", "STAFF", "", body, http.StatusOK)
		if err == nil && !bytes.Contains(out, []byte(`"found":true`)) {
			err = fmt.Errorf("the token was not found: %s", out)
		}
		return 1, err
	}, nil
}

// benchEntry is an audit entry of the size of a read's, marked as the
// benchmark's own.
func benchEntry() custos.AuditEntry {
	p := demoPrincipals[0].p
	return custos.AuditEntry{
		Time: time.Now().UTC(), Action: "bench-append", Decision: "allow", Principal: p.ID, Org: p.Org, Loc: p.Loc, Purpose: "serving",
		Collection: "users", Record: strings.Repeat("r", 43), Subject: strings.Repeat("s", 43),
		Forms:  map[string]string{"id": "clear", "handle": "clear", "email": "clear", "phone": "clear", "birthdate": "clear", "ip": "clear", "country": "clear"},
		Detail: "custos bench: not a read",
	}
}

func (b *benchEnv) appendOp(context.Context) (bench.Op, error) {
	return func(ctx context.Context, _ int) (int, error) {
		_, err := b.d.log.Record(ctx, benchEntry())
		return 1, err
	}, nil
}

// bareAppendOp appends the entry to a file and syncs it, each writer on
// its own: no grouping of syncs but what the kernel does.
func (b *benchEnv) bareAppendOp(context.Context) (bench.Op, error) {
	f, err := os.OpenFile(filepath.Join(b.dir, "bare-append.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	b.closers = append(b.closers, f)
	return func(context.Context, int) (int, error) {
		e, err := custos.MarshalAuditEntry(benchEntry())
		if err != nil {
			return 0, err
		}
		if _, err := f.Write(append(e, '\n')); err != nil {
			return 0, err
		}
		return 1, f.Sync()
	}, nil
}

// buildCovisit builds the sample recommender with the go tool, or says
// why it cannot.
func (e *env) buildCovisit() (*benchModule, string) {
	fmt.Fprintf(e.stderr, "building the sample recommender (GOOS=wasip1 go build ./examples/covisit/wasm)\n")
	m, err := buildCovisit()
	if err != nil {
		fmt.Fprintf(e.stderr, "recommend will be skipped: %v\n", err)
		return nil, err.Error()
	}
	return m, ""
}

func buildCovisit() (*benchModule, error) {
	dir, err := os.MkdirTemp("", "custos-bench-covisit-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	// Nothing is downloaded: a build that needs a module not in the
	// module cache fails.
	wasm, err := algotest.Compile("./examples/covisit/wasm", dir, "GOPROXY=off")
	if err != nil {
		return nil, fmt.Errorf("%w (building the sample recommender needs the go tool, and a checkout of custos with its modules downloaded: run custos bench from one)", err)
	}
	root, err := algotest.Root()
	if err != nil {
		return nil, err
	}
	manifest, err := os.ReadFile(filepath.Join(root, "examples", "covisit", "manifest.json"))
	if err != nil {
		return nil, err
	}
	return newBenchModule(wasm, manifest)
}

// activateCovisit signs the sample recommender as the operator, submits
// it, has both reviewers approve it, and trains it: the walkthrough's
// steps, through the API.
func (b *benchEnv) activateCovisit(ctx context.Context) (*algo.Manifest, error) {
	m := b.covisit
	d := json.NewDecoder(bytes.NewReader(m.manifest))
	d.DisallowUnknownFields()
	var man algo.Manifest
	if err := d.Decode(&man); err != nil {
		return nil, fmt.Errorf("the sample recommender's manifest: %w", err)
	}
	man.SourceSHA256 = algo.Digest([]byte("custos bench: built from the checkout it ran in"))
	bundle, err := algo.Sign(man, m.wasm, m.op)
	if err != nil {
		return nil, err
	}
	body, _ := json.Marshal(bundle)
	if _, err := b.call(ctx, "POST", "/v1/algorithms", "ENG", "", body, http.StatusCreated); err != nil {
		return nil, err
	}
	ref := url.PathEscape(man.Name + "@" + man.Version)
	out, err := b.call(ctx, "GET", "/v1/algorithms/"+ref, "STAFF", "", nil, http.StatusOK)
	if err != nil {
		return nil, err
	}
	var en struct{ Manifest string }
	if err := json.Unmarshal(out, &en); err != nil {
		return nil, err
	}
	for _, r := range []struct {
		who    string
		signer note.Signer
	}{{"STAFF", m.alice}, {"APPROVER", m.bob}} {
		line, err := algo.Approve([]byte(en.Manifest), r.signer)
		if err != nil {
			return nil, err
		}
		body, _ := json.Marshal(map[string]string{"signature": line})
		if _, err := b.call(ctx, "POST", "/v1/algorithms/"+ref+"/approvals", r.who, "", body, http.StatusOK); err != nil {
			return nil, err
		}
	}
	if _, err := b.call(ctx, "POST", "/v1/algorithms/"+man.Name+"/train", "SVC", "serving", nil, http.StatusOK); err != nil {
		return nil, err
	}
	return &man, nil
}

func (b *benchEnv) recommendOp(ctx context.Context) (bench.Op, error) {
	if b.covisit == nil {
		return nil, benchSkip(b.covisitSkip)
	}
	fmt.Fprintf(b.e.stderr, "signing, submitting, approving and training the sample recommender\n")
	man, err := b.activateCovisit(ctx)
	if err != nil {
		return nil, err
	}
	b.manifest = man
	return func(ctx context.Context, _ int) (int, error) {
		body := fmt.Appendf(nil, `{"subject":%q,"k":10}`, benchUser(rand.IntN(b.watchers)))
		_, err := b.call(ctx, "POST", "/v1/algorithms/covisit/recommend", "SVC", "serving", body, http.StatusOK)
		return 1, err
	}, nil
}

// nativeRecommendOp trains the recommender natively on the input custody
// gave the module, and prepares each watcher's recommend input as custody
// builds it, for the bare server.
func (b *benchEnv) nativeRecommendOp(ctx context.Context) (bench.Op, error) {
	a := custody.Algorithm{Name: b.manifest.Name, Reads: b.manifest.Reads}
	in, err := b.d.custody.TrainInput(ctx, a, 1, custody.DefaultMaxAlgorithmInput)
	if err != nil {
		return nil, err
	}
	train, err := guest.DecodeTrainInput(in)
	if err != nil {
		return nil, err
	}
	model, err := covisit.Algorithm{}.Train(train)
	if err != nil {
		return nil, err
	}
	inputs := map[string][]byte{}
	for u := range b.watchers {
		if inputs[benchUser(u)], err = b.d.custody.RecommendInput(ctx, a, benchUser(u), 10, 1, custody.DefaultMaxAlgorithmInput); err != nil {
			return nil, err
		}
	}
	b.bare.setRecommender(model, inputs)
	return func(ctx context.Context, _ int) (int, error) {
		body := fmt.Appendf(nil, `{"subject":%q,"k":10}`, benchUser(rand.IntN(b.watchers)))
		_, err := do(ctx, b.client, "POST", b.bare.url+"/recommend", "", "", body, http.StatusOK)
		return 1, err
	}, nil
}

// cursors keeps each worker's place in a walk of a collection.
type cursors struct {
	mu sync.Mutex
	at map[int]string
}

func (c *cursors) get(w int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.at[w]
}

func (c *cursors) set(w int, cursor string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.at[w] = cursor
}

// pageEnd is the last line of an export page.
type pageEnd struct {
	Cursor string `json:"cursor"`
	End    bool   `json:"end"`
	Count  int    `json:"count"`
}

// lastLine decodes the last line of an NDJSON page.
func lastLine(page []byte) (pageEnd, error) {
	page = bytes.TrimRight(page, "\n")
	var end pageEnd
	err := json.Unmarshal(page[bytes.LastIndexByte(page, '\n')+1:], &end)
	return end, err
}

// walk returns an op that fetches the page after a worker's cursor with
// fetch, and starts again from the beginning at the end.
func walk(fetch func(ctx context.Context, cursor string) ([]byte, error)) bench.Op {
	c := &cursors{at: map[int]string{}}
	return func(ctx context.Context, w int) (int, error) {
		page, err := fetch(ctx, c.get(w))
		if err != nil {
			return 0, err
		}
		end, err := lastLine(page)
		if err != nil {
			return 0, fmt.Errorf("a page does not end with its cursor: %w", err)
		}
		if end.End {
			end.Cursor = ""
		}
		c.set(w, end.Cursor)
		return end.Count, nil
	}
}

func (b *benchEnv) exportOp(context.Context) (bench.Op, error) {
	return walk(func(ctx context.Context, cursor string) ([]byte, error) {
		return b.call(ctx, "GET", "/v1/flows/profiles-abroad/export?limit=1000&cursor="+url.QueryEscape(cursor), "SG", "", nil, http.StatusOK)
	}), nil
}

func (b *benchEnv) bareExportOp(context.Context) (bench.Op, error) {
	return walk(func(ctx context.Context, after string) ([]byte, error) {
		return do(ctx, b.client, "GET", b.bare.url+"/export?limit=1000&after="+url.QueryEscape(after), "", "", nil, http.StatusOK)
	}), nil
}

// verifyOp verifies the whole log as custos audit verify does, once the
// served checkpoint covers every entry written so far.
func (b *benchEnv) verifyOp(ctx context.Context) (bench.Op, error) {
	v, err := auditlog.ReadVerifier(filepath.Join(b.dir, "log.vkey"))
	if err != nil {
		return nil, err
	}
	if err := b.waitCheckpoint(ctx); err != nil {
		return nil, err
	}
	return func(ctx context.Context, _ int) (int, error) {
		res, err := verifier.Verify(ctx, verifier.Config{LogURL: b.base + "/log/", Verifier: v})
		if err != nil {
			return 0, fmt.Errorf("the log does not verify: %w", err)
		}
		return int(res.Entries), nil
	}, nil
}

// waitCheckpoint waits for the served checkpoint to cover every entry
// appended so far.
func (b *benchEnv) waitCheckpoint(ctx context.Context) error {
	want := b.d.log.Size()
	deadline := time.Now().Add(time.Minute)
	for {
		_, size, err := b.d.log.ServedCheckpoint(ctx)
		if err == nil && size >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the log's checkpoint did not reach size %d within a minute (at %d; %v)", want, size, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// benchAggregate is the query of the aggregate scenario.
var benchAggregate = []byte(`{"collection":"watch_events","measure":"count","group_by":["users.country"]}`)

func (b *benchEnv) aggregateOp(context.Context) (bench.Op, error) {
	return func(ctx context.Context, _ int) (int, error) {
		_, err := b.call(ctx, "POST", "/v1/aggregate", "ANALYST", "", benchAggregate, http.StatusOK)
		return 1, err
	}, nil
}

func (b *benchEnv) bareAggregateOp(context.Context) (bench.Op, error) {
	return func(ctx context.Context, _ int) (int, error) {
		_, err := do(ctx, b.client, "POST", b.bare.url+"/aggregate", "", "", benchAggregate, http.StatusOK)
		return 1, err
	}, nil
}
