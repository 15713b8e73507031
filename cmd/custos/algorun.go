package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/custos/custos/internal/custody"
)

// The commands that run an active algorithm on a server, and replay its runs.

const (
	trainUse     = "custos algo train --server URL --token TOKEN|--token-file FILE --name NAME"
	recommendUse = "custos algo recommend --server URL --token TOKEN|--token-file FILE --name NAME --subject ID [--k N]"
	replayUse    = "custos algo replay --server URL --token TOKEN|--token-file FILE --index N"
)

// errMismatch is returned when a replayed recommendation's output differs
// from the logged one.
var errMismatch = errors.New("the replayed output differs from the logged one: the algorithm did not do what the log says")

func (e *env) algoTrain(ctx context.Context, args []string) error {
	fs := e.flags("algo train", trainUse+"\n\nExample:\n    custos algo train --server http://127.0.0.1:8080 --token $SVC --name covisit")
	af := newAPIFlags(fs)
	name := fs.String("name", "", "the algorithm's name")
	a, err := connect(fs, af, args, func() bool { return *name == "" })
	if err != nil {
		return err
	}
	var t custody.Training
	if err := a.do(ctx, "POST", "/v1/algorithms/"+*name+"/train", []byte("{}"), &t); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "trained %s: model %d, learned by sha256:%s; audit index %d\n", t.Algorithm, t.Model, t.Bundle, t.AuditIndex)
	return nil
}

func (e *env) algoRecommend(ctx context.Context, args []string) error {
	fs := e.flags("algo recommend", recommendUse+"\n\nExample:\n    custos algo recommend --server http://127.0.0.1:8080 --token $SVC --name covisit --subject u1 --k 5")
	af := newAPIFlags(fs)
	name := fs.String("name", "", "the algorithm's name")
	subject := fs.String("subject", "", "the id of the subject to recommend for")
	k := fs.Int("k", 10, "at most this many items, 1 to 100")
	a, err := connect(fs, af, args, func() bool { return *name == "" || *subject == "" })
	if err != nil {
		return err
	}
	body, _ := json.Marshal(map[string]any{"subject": *subject, "k": *k})
	var r custody.Recommendation
	if err := a.do(ctx, "POST", "/v1/algorithms/"+*name+"/recommend", body, &r); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s\naudit index %d\n", strings.Join(r.Items, "\n"), r.AuditIndex)
	return nil
}

func (e *env) algoReplay(ctx context.Context, args []string) error {
	fs := e.flags("algo replay", replayUse+"\n\nRe-runs the recommendation logged at audit index N from its sealed input, bundle,\nmodel version and seed, and exits non-zero unless its output hashes to what the log says.\n\nExample:\n    custos algo replay --server http://127.0.0.1:8080 --token $MON --index 42")
	af := newAPIFlags(fs)
	index := fs.Int64("index", -1, "the audit index of the recommendation")
	a, err := connect(fs, af, args, func() bool { return *index < 0 })
	if err != nil {
		return err
	}
	body, _ := json.Marshal(map[string]any{"index": *index})
	var r custody.Replayed
	if err := a.do(ctx, "POST", "/v1/audit/replay", body, &r); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "entry %d: %s, bundle sha256:%s, model %d\nlogged output   sha256:%s\nreplayed output sha256:%s\n",
		r.Index, r.Algorithm, r.Bundle, r.Model, r.Logged, r.Replayed)
	if !r.Match {
		return errMismatch
	}
	fmt.Fprintf(e.stdout, "match; the replay is audit entry %d\n", r.AuditIndex)
	return nil
}
