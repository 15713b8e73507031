package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/custos/custos"
	"github.com/custos/custos/internal/synth"
)

const loadUse = "custos load --server URL --token TOKEN|--token-file FILE [--users N] [--videos N] [--events N] [--seed S] [--concurrency C] [--jurisdiction CC]"

// load writes a synthetic short-video platform through a server's API, as
// the operator's service would.
func (e *env) load(ctx context.Context, args []string) error {
	fs := e.flags("load", loadUse+"\n\nExample:\n    custos load --server http://127.0.0.1:8080 --token $SVC --events 100000")
	af := newAPIFlags(fs)
	var cfg synth.Config
	fs.IntVar(&cfg.Users, "users", synth.DefaultUsers, "how many users to make; one in 20 make videos")
	fs.IntVar(&cfg.Videos, "videos", synth.DefaultVideos, "how many videos to make")
	fs.IntVar(&cfg.Events, "events", synth.DefaultEvents, "how many watch events to make")
	fs.Uint64Var(&cfg.Seed, "seed", 1, "the seed: the same seed makes the same platform")
	fs.StringVar(&cfg.Jurisdiction, "jurisdiction", "US", "where the users reside: the server's jurisdiction")
	conc := fs.Int("concurrency", 16, "how many requests to have under way at a time")
	a, err := connect(fs, af, args, func() bool { return *conc < 1 || *conc > 1024 })
	if err != nil {
		return err
	}
	p, err := synth.New(cfg)
	if err != nil {
		return fmt.Errorf("couldn't make the platform: %w", err)
	}
	start := time.Now()
	if err := e.loadPlatform(ctx, a.server, a.token, p, *conc); err != nil {
		return err
	}
	d := time.Since(start)
	fmt.Fprintf(e.stdout, "loaded %d users, %d videos and %d watch events (seed %d) in %s: %.0f records/s\n",
		cfg.Users, cfg.Videos, cfg.Events, cfg.Seed, d.Round(time.Millisecond), float64(p.Size())/d.Seconds())
	return nil
}

// loadPlatform writes p through the API of server, as the principal of
// token (the operator's service), concurrency requests at a time, and
// shows its progress on e.stderr. It stops at the first error.
func (e *env) loadPlatform(ctx context.Context, server *url.URL, token string, p *synth.Platform, concurrency int) error {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = concurrency
	w := apiWriter{&api{server: server, token: token, http: &http.Client{Transport: t, Timeout: time.Minute}}}
	defer t.CloseIdleConnections()
	bar := newProgress(e.stderr, "records")
	err := synth.Load(ctx, w, p, concurrency, bar.update)
	bar.finish()
	return err
}

// apiWriter writes a platform's subjects and records through the API.
type apiWriter struct{ a *api }

var _ synth.Writer = apiWriter{}

func (w apiWriter) Register(ctx context.Context, id, jurisdiction string) error {
	body, err := json.Marshal(map[string]string{"residency": jurisdiction})
	if err != nil {
		return err
	}
	return w.send(ctx, "PUT", "/v1/subjects/"+url.PathEscape(id), body)
}

func (w apiWriter) Put(ctx context.Context, r synth.Record) error {
	body, err := json.Marshal(map[string]any{"id": r.ID, "fields": r.Fields})
	if err != nil {
		return err
	}
	return w.send(ctx, "POST", "/v1/records/"+url.PathEscape(r.Collection), body)
}

// send sends a request and returns an error for any answer but 2xx. Its
// errors name no subject or record: the path, which holds an id, is left
// out.
func (w apiWriter) send(ctx context.Context, method, path string, body []byte) error {
	resp, data, err := w.a.send(ctx, method, path, body)
	if ue, ok := errors.AsType[*url.Error](err); ok {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("couldn't reach the server: %w (is custos serve running at --server?)", ue.Err)
	} else if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return refusal(resp.StatusCode, data, loadHints)
	}
	return nil
}

// loadHints say what to do about a refusal of a load, by code.
var loadHints = map[string]string{
	custos.CodeUnauthenticated:   hints[custos.CodeUnauthenticated],
	custos.CodeForbidden:         "write as the operator's service: mint its token with custos token mint --org operator --roles service",
	custos.CodeWrongJurisdiction: "the server serves another jurisdiction: name it with --jurisdiction",
	custos.CodeConflict:          "the server holds records of another platform under the same ids: load the seed and sizes loaded before, or into a new deployment",
	custos.CodeAuditUnavailable:  hints[custos.CodeAuditUnavailable],
	custos.CodeSuspended:         hints[custos.CodeSuspended],
}
