package custody_test

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"testing"

	"github.com/custos/custos"
	"github.com/custos/custos/internal/custody"
	"github.com/custos/custos/internal/token"
)

var covisitAlg = custody.Algorithm{Name: "covisit", Reads: map[string][]string{
	"videos":       {"id"},
	"watch_events": {"at", "user", "video"},
}}

// watch writes a watch event of user watching video.
func (f *fixture) watch(t testing.TB, id, user, video string) {
	t.Helper()
	ev := map[string]string{"user": `"` + user + `"`, "video": `"` + video + `"`, "watched_ms": "4200", "at": `"2026-05-01T10:00:00Z"`}
	if _, _, err := f.svc.Write(context.Background(), svc, "watch_events", id, raw(ev)); err != nil {
		t.Fatal(err)
	}
}

// platform makes two users who watched videos, and their videos.
func platform(t *testing.T) *fixture {
	f := newFixture(t)
	ctx := context.Background()
	for _, u := range []string{"user-alpha", "user-bravo", "creator-one"} {
		if _, err := f.svc.Register(ctx, svc, custos.Subject{ID: u, Residency: "US"}); err != nil {
			t.Fatal(err)
		}
	}
	for _, v := range []string{"vid-1", "vid-2", "vid-3"} {
		fields := map[string]string{"id": `"` + v + `"`, "creator": `"creator-one"`, "title": `"t"`, "duration_ms": "1000"}
		if _, _, err := f.svc.Write(ctx, svc, "videos", v, raw(fields)); err != nil {
			t.Fatal(err)
		}
	}
	f.watch(t, "ev-3", "user-bravo", "vid-1")
	f.watch(t, "ev-1", "user-alpha", "vid-1")
	f.watch(t, "ev-2", "user-alpha", "vid-2")
	return f
}

type trainInput struct {
	ABI         int                                     `json:"abi"`
	Seed        string                                  `json:"seed"`
	Collections map[string][]map[string]json.RawMessage `json:"collections"`
}

func TestTrainInput(t *testing.T) {
	f := platform(t)
	ctx := context.Background()
	in, err := f.svc.TrainInput(ctx, covisitAlg, 42, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var got trainInput
	d := json.NewDecoder(bytes.NewReader(in))
	d.DisallowUnknownFields()
	if err := d.Decode(&got); err != nil {
		t.Fatalf("input does not decode: %v\n%s", err, in)
	}
	if got.ABI != 1 || got.Seed != "42" || len(got.Collections) != 2 {
		t.Fatalf("input = abi %d seed %q %d collections", got.ABI, got.Seed, len(got.Collections))
	}
	// Protected values never in clear: not the users' ids, not the times,
	// and fields the manifest does not declare not at all.
	for _, clear := range []string{"user-alpha", "user-bravo", "2026-05-01", "4200", "watched_ms", "creator-one", "title"} {
		if bytes.Contains(in, []byte(clear)) {
			t.Errorf("the input holds %q", clear)
		}
	}
	tok, err := token.New(f.keyring.TokenKey())
	if err != nil {
		t.Fatal(err)
	}
	algoTok := func(id string) string {
		s, err := tok.Token("algorithm:covisit", custos.TypeID, id)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	opTok, _ := tok.Token(custos.OrgOperator, custos.TypeID, "user-alpha")
	events := got.Collections["watch_events"]
	if len(events) != 3 {
		t.Fatalf("%d watch events, want 3", len(events))
	}
	var pairs []string
	for _, ev := range events {
		var user, video string
		json.Unmarshal(ev["user"], &user)
		json.Unmarshal(ev["video"], &video)
		if user == opTok {
			t.Error("the algorithm got the operator's token: its tokens must be its own audience's")
		}
		if _, ok := ev["at"]; !ok || len(ev) != 3 {
			t.Errorf("watch event fields = %v, want at, user and video", ev)
		}
		pairs = append(pairs, user+" "+video)
	}
	want := []string{algoTok("user-alpha") + " vid-1", algoTok("user-alpha") + " vid-2", algoTok("user-bravo") + " vid-1"}
	slices.Sort(want) // by subject token, then record id: the same as pair order here
	if !slices.Equal(pairs, want) {
		t.Errorf("watch events = %q, want %q in this order", pairs, want)
	}
	if n := len(got.Collections["videos"]); n != 3 {
		t.Errorf("%d videos, want 3", n)
	}

	again, err := f.svc.TrainInput(ctx, covisitAlg, 42, 1<<20)
	if err != nil || !bytes.Equal(again, in) {
		t.Errorf("a second input differs from the first: deterministic inputs are part of the ABI (%v)", err)
	}
	if _, err := f.svc.TrainInput(ctx, covisitAlg, 42, 100); custos.ErrorCode(err) != custos.CodeTooLarge {
		t.Errorf("an input over its cap: err = %v, want %s", err, custos.CodeTooLarge)
	}
}

func TestAlgorithmReadsOnlyWhatTheSchemaDeclares(t *testing.T) {
	f := platform(t)
	for _, tt := range []struct {
		reads map[string][]string
		code  string
	}{
		{map[string][]string{"watch_events": {"nosuch"}}, custos.CodeUnknownField},
		{map[string][]string{"nosuch": {"id"}}, custos.CodeUnknownCollection},
	} {
		a := custody.Algorithm{Name: "x", Reads: tt.reads}
		if _, err := f.svc.TrainInput(context.Background(), a, 1, 1<<20); custos.ErrorCode(err) != tt.code {
			t.Errorf("reads %v: err = %v, want %s", tt.reads, err, tt.code)
		}
	}
}

func TestRecommendInput(t *testing.T) {
	f := platform(t)
	ctx := context.Background()
	in, err := f.svc.RecommendInput(ctx, covisitAlg, "user-alpha", 5, 7, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		ABI     int                                     `json:"abi"`
		Seed    string                                  `json:"seed"`
		Subject string                                  `json:"subject"`
		K       int                                     `json:"k"`
		History map[string][]map[string]json.RawMessage `json:"history"`
	}
	d := json.NewDecoder(bytes.NewReader(in))
	d.DisallowUnknownFields()
	if err := d.Decode(&got); err != nil {
		t.Fatalf("input does not decode: %v\n%s", err, in)
	}
	if got.K != 5 || got.Seed != "7" || got.Subject == "" || bytes.Contains(in, []byte("user-alpha")) {
		t.Errorf("input = %s", in)
	}
	var videos []string
	for _, ev := range got.History["watch_events"] {
		var user, video string
		json.Unmarshal(ev["user"], &user)
		json.Unmarshal(ev["video"], &video)
		if user != got.Subject {
			t.Errorf("history holds another subject's event")
		}
		videos = append(videos, video)
	}
	if !slices.Equal(videos, []string{"vid-1", "vid-2"}) {
		t.Errorf("history videos = %q, want vid-1 and vid-2", videos)
	}
	if _, err := f.svc.RecommendInput(ctx, covisitAlg, "nobody", 5, 7, 1<<20); custos.ErrorCode(err) != custos.CodeNotFound {
		t.Errorf("unknown subject: err = %v, want not_found", err)
	}
}

func TestModelsAreSealedAndVersioned(t *testing.T) {
	f := platform(t)
	ctx := context.Background()
	if _, err := f.svc.LatestModel(ctx, "covisit"); custos.ErrorCode(err) != custos.CodeNotFound {
		t.Fatalf("LatestModel before training: err = %v, want not_found", err)
	}
	secret := []byte("model-state: the co-visitation counts of everyone")
	for v := 1; v <= 2; v++ {
		m, err := f.svc.SealModel(ctx, covisitAlg, "ab12", append(secret, byte('0'+v)))
		if err != nil {
			t.Fatal(err)
		}
		if m.Version != v || m.Size != len(secret)+1 {
			t.Fatalf("model %d = %+v", v, m)
		}
	}
	latest, err := f.svc.LatestModel(ctx, "covisit")
	if err != nil || latest.Version != 2 || latest.Bundle != "ab12" {
		t.Fatalf("LatestModel = %+v, %v; want version 2", latest, err)
	}
	m, model, err := f.svc.OpenModel(ctx, "covisit", 1)
	if err != nil || m.Version != 1 || string(model) != string(secret)+"1" {
		t.Fatalf("OpenModel(1) = %+v %q, %v", m, model, err)
	}
	if _, _, err := f.svc.OpenModel(ctx, "other", 1); custos.ErrorCode(err) != custos.CodeNotFound {
		t.Errorf("another algorithm's model: err = %v, want not_found", err)
	}
	// At rest the model is ciphertext.
	recs, err := f.store.Records(ctx, "algorithm/models", "", 10)
	if err != nil || len(recs) != 2 {
		t.Fatalf("stored models = %d, %v", len(recs), err)
	}
	for _, r := range recs {
		if bytes.Contains(r.Sealed, secret) || bytes.Contains(r.Clear, secret) {
			t.Error("a model is stored in clear")
		}
	}
	// No client can erase the algorithm's key or register its id.
	if _, err := f.svc.Erase(ctx, svc, "algorithm/covisit"); err == nil {
		t.Error("a client erased the algorithm's key")
	}
	if _, err := f.svc.Register(ctx, svc, custos.Subject{ID: "algorithm/x", Residency: "US"}); err == nil {
		t.Error("a client registered a subject id reserved for algorithms")
	}
}
