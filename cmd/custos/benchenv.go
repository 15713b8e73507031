package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/custos/custos"
	"github.com/custos/custos/internal/algo"
	"github.com/custos/custos/internal/config"
	"github.com/custos/custos/internal/flow"
	"github.com/custos/custos/internal/notekey"
	"github.com/custos/custos/internal/starter"
	"golang.org/x/mod/sumdb/note"
)

// benchEnv is what custos bench measures against: a fresh deployment in a
// temporary directory, served by the real gateway on a loopback port, the
// tokens of its parties, the data set, and a bare server on another
// loopback port for the baselines.
type benchEnv struct {
	e      *env
	dir    string
	d      *deployment
	base   string // the custos server's URL
	bare   *bareServer
	client *http.Client
	tokens map[string]string // by demoPrincipals' env name, and SG
	users  int               // users in the data set: benchUser(0) to benchUser(users-1)
	// watchers are the first users, who watched videos: the subjects of
	// recommendations.
	watchers int
	// covisit is the sample recommender built for this run, with its
	// reviewers' keys; nil when it could not be built, and covisitSkip
	// says why. manifest is its manifest once it is active.
	covisit     *benchModule
	covisitSkip string
	manifest    *algo.Manifest
	stop        func() error // stops the custos server
	closers     []io.Closer  // closed by Close
}

// benchModule is the sample recommender as the operator signs it, with the
// keys of the operator and the custodian's two reviewers.
type benchModule struct {
	wasm, manifest []byte
	op, alice, bob note.Signer
	keys           map[string]string // verifier keys, by signer name
}

// The data set: every user has a users record; the first benchWatchers
// users also watched benchWatches of benchVideos videos.
const (
	benchVideos   = 200
	benchWatchers = 250
	benchWatches  = 6
	benchLoaders  = 16 // concurrent clients loading the data set
)

func benchUser(i int) string { return fmt.Sprintf("u%07d", i) }

// benchSG is the operator's service in Singapore, the recipient of the
// starter's flow profiles-abroad.
var benchSG = custos.Principal{ID: "profiles-sg", Org: "operator", Loc: "SG", Roles: []string{"service"}}

// newBenchEnv makes, opens and serves a deployment for a data set of n
// users, yet to be loaded. With covisit, the deployment admits algorithms
// signed by its keys.
func newBenchEnv(ctx context.Context, e *env, n int, covisit *benchModule) (_ *benchEnv, err error) {
	dir, err := os.MkdirTemp("", "custos-bench-")
	if err != nil {
		return nil, err
	}
	b := &benchEnv{e: e, dir: dir, users: n, covisit: covisit, stop: func() error { return nil }}
	defer func() {
		if err != nil {
			b.Close()
		}
	}()
	cfg, err := b.initDeployment()
	if err != nil {
		return nil, err
	}
	// The server's log is formatted as when serving, and discarded: a
	// line per request would drown what bench prints.
	quiet := &env{stdout: io.Discard, stderr: io.Discard, log: slog.New(slog.NewJSONHandler(io.Discard, nil))}
	if b.d, err = openDeployment(ctx, cfg, quiet.log); err != nil {
		return nil, err
	}
	if err := b.serve(ctx, quiet); err != nil {
		return nil, err
	}
	if b.bare, err = newBareServer(b.d); err != nil {
		return nil, err
	}
	b.client = &http.Client{Transport: &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024, IdleConnTimeout: time.Minute, DisableCompression: true}}
	b.tokens = map[string]string{}
	for _, dp := range demoPrincipals {
		if b.tokens[dp.env], err = mint(cfg, dp.p, 12*time.Hour); err != nil {
			return nil, err
		}
	}
	if b.tokens["SG"], err = mint(cfg, benchSG, 12*time.Hour); err != nil {
		return nil, err
	}
	return b, nil
}

// initDeployment writes the deployment, as custos init does, with the
// starter's flow allowed the highest rate, so that exports measure custody
// rather than the limit, and with the sample recommender's keys.
func (b *benchEnv) initDeployment() (*config.Config, error) {
	if err := initDeployment(b.dir, starter.Params{Name: "custos-bench", Jurisdiction: "US", Location: "us-local", Issuer: "custos-dev-issuer", ShredAfter: time.Hour}); err != nil {
		return nil, err
	}
	flows := filepath.Join(b.dir, "flows.yaml")
	y, err := os.ReadFile(flows)
	if err != nil {
		return nil, err
	}
	fast := strings.Replace(string(y), "rate: 1000 ", fmt.Sprintf("rate: %d ", flow.MaxRate), 1)
	if fast == string(y) {
		return nil, errors.New("the starter's flows.yaml declares no rate of 1000 to raise for the benchmark")
	}
	if err := os.WriteFile(flows, []byte(fast), 0o644); err != nil {
		return nil, err
	}
	cfg, err := config.Load(filepath.Join(b.dir, "custos.yaml"))
	if err != nil {
		return nil, err
	}
	if m := b.covisit; m != nil {
		for name, vkey := range m.keys {
			if err := os.WriteFile(filepath.Join(b.dir, name+".vkey"), []byte(vkey+"\n"), 0o644); err != nil {
				return nil, err
			}
		}
		cfg.Algorithms.Operators = []string{"operator.example.vkey"}
		cfg.Algorithms.Reviewers = []string{"alice.vkey", "bob.vkey"}
		cfg.Algorithms.Approvals = 2
	}
	// k of aggregates stays the default of 50 unless the data set has
	// fewer watchers, so that the aggregate scenario releases groups.
	cfg.Aggregates.MinSubjects = map[string]int{"default": benchK(b.users)}
	return cfg, nil
}

// benchK is k of aggregates for a data set of n users.
func benchK(n int) int { return max(2, min(50, min(n, benchWatchers)/2)) }

// serve serves the deployment on a loopback port until Close.
func (b *benchEnv) serve(ctx context.Context, quiet *env) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("couldn't listen on loopback: %w", err)
	}
	b.base = "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(ctx)
	ready, errc := make(chan struct{}), make(chan error, 1)
	go func() { errc <- quiet.run(ctx, b.d, ln, func() { close(ready) }) }()
	b.stop = func() error {
		cancel()
		return <-errc
	}
	select {
	case <-ready:
		return nil
	case err := <-errc:
		b.stop = func() error { return nil }
		return err
	}
}

// Close stops the servers and removes the deployment.
func (b *benchEnv) Close() error {
	errs := []error{b.stop()}
	for _, c := range b.closers {
		errs = append(errs, c.Close())
	}
	if b.bare != nil {
		errs = append(errs, b.bare.Close())
	}
	if b.d != nil {
		errs = append(errs, b.d.Close())
	}
	errs = append(errs, os.RemoveAll(b.dir))
	return errors.Join(errs...)
}

// call makes a request to the custos server as the principal whose token
// is tokens[who], and returns the body of an answer with status want.
func (b *benchEnv) call(ctx context.Context, method, path, who, purpose string, body []byte, want int) ([]byte, error) {
	return do(ctx, b.client, method, b.base+path, b.tokens[who], purpose, body, want)
}

func do(ctx context.Context, c *http.Client, method, url, token, purpose string, body []byte, want int) ([]byte, error) {
	resp, out, err := send(ctx, c, method, url, token, purpose, body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != want {
		return nil, fmt.Errorf("%s %s: status %d, want %d: %.300s", method, strings.SplitN(url, "?", 2)[0], resp.StatusCode, want, out)
	}
	return out, nil
}

// send sends a request with token as bearer (none when empty) and the
// purpose (none when empty), and returns the response, its body read.
func send(ctx context.Context, c *http.Client, method, url, token, purpose string, body []byte) (*http.Response, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return nil, nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if purpose != "" {
		req.Header.Set("Custos-Purpose", purpose)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	return resp, out, err
}

// userFields returns the fields of user i's record; version varies the
// handle, so that a rewrite changes the record.
func userFields(i, version int) map[string]any {
	id := benchUser(i)
	return map[string]any{
		"id": id, "handle": fmt.Sprintf("user-%d-%d", i, version), "email": id + "@example.com",
		"phone": fmt.Sprintf("+1 202 %03d %04d", 200+i/10000%800, i%10000), "birthdate": fmt.Sprintf("19%02d-%02d-%02d", 50+i%50, 1+i%12, 1+i%28),
		"ip": fmt.Sprintf("198.51.%d.%d", i/254%256, 1+i%254), "country": "US",
	}
}

// userBody is the body of a write of user i's record.
func userBody(i, version int) []byte {
	b, _ := json.Marshal(map[string]any{"id": benchUser(i), "fields": userFields(i, version)})
	return b
}

// load registers users from..to-1 and writes their records through the
// API, as the operator's service does, with benchLoaders clients.
func (b *benchEnv) load(ctx context.Context, from, to int) error {
	return parallel(ctx, from, to, benchLoaders, func(ctx context.Context, i int) error {
		if _, err := b.call(ctx, "PUT", "/v1/subjects/"+benchUser(i), "SVC", "serving", []byte(`{"residency":"US"}`), http.StatusCreated); err != nil {
			return err
		}
		_, err := b.call(ctx, "POST", "/v1/records/users", "SVC", "serving", userBody(i, 0), http.StatusCreated)
		return err
	})
}

// loadWatches writes the videos and the watch events of the first
// watchers users, who must be loaded, through the API.
func (b *benchEnv) loadWatches(ctx context.Context) error {
	b.watchers = min(b.users, benchWatchers)
	err := parallel(ctx, 0, benchVideos, benchLoaders, func(ctx context.Context, v int) error {
		body, _ := json.Marshal(map[string]any{"id": benchVideo(v), "fields": map[string]any{
			"id": benchVideo(v), "creator": benchUser(v % b.users), "title": fmt.Sprintf("video %d", v), "duration_ms": 60000,
		}})
		_, err := b.call(ctx, "POST", "/v1/records/videos", "SVC", "serving", body, http.StatusCreated)
		return err
	})
	if err != nil {
		return err
	}
	return parallel(ctx, 0, b.watchers, benchLoaders, func(ctx context.Context, u int) error {
		// Each user watches videos near a favourite, so that videos are
		// watched together and co-visitation has something to learn.
		rng := rand.New(rand.NewPCG(uint64(u), 1))
		fav := rng.IntN(benchVideos)
		for j := range benchWatches {
			body, _ := json.Marshal(map[string]any{"id": fmt.Sprintf("w-%d-%d", u, j), "fields": map[string]any{
				"user": benchUser(u), "video": benchVideo((fav + rng.IntN(10)) % benchVideos), "watched_ms": 30000, "at": "2026-11-20T10:00:00Z",
			}})
			if _, err := b.call(ctx, "POST", "/v1/records/watch_events", "SVC", "serving", body, http.StatusCreated); err != nil {
				return err
			}
		}
		return nil
	})
}

func benchVideo(v int) string { return fmt.Sprintf("v%05d", v) }

// parallel calls f for from..to-1 with n goroutines and returns the first
// error.
func parallel(ctx context.Context, from, to, n int, f func(context.Context, int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	next.Store(int64(from))
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < to && ctx.Err() == nil; i = int(next.Add(1) - 1) {
				if err := f(ctx, i); err != nil {
					cancel(err)
				}
			}
		})
	}
	wg.Wait()
	return context.Cause(ctx)
}

// newBenchModule builds the sample recommender from this checkout and
// makes the keys that sign and approve it.
func newBenchModule(wasm, manifest []byte) (*benchModule, error) {
	m := &benchModule{wasm: wasm, manifest: manifest, keys: map[string]string{}}
	for name, s := range map[string]*note.Signer{"operator.example": &m.op, "alice": &m.alice, "bob": &m.bob} {
		skey, vkey, err := notekey.Generate(name, "algo key")
		if err != nil {
			return nil, err
		}
		if *s, err = note.NewSigner(skey); err != nil {
			return nil, err
		}
		m.keys[name] = vkey
	}
	return m, nil
}
