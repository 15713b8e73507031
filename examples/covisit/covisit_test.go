package covisit_test

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/custos/custos/algo/guest"
	"github.com/custos/custos/examples/covisit"
)

// world is a synthetic platform with two tastes: even users watch mostly
// cooking videos, odd users mostly sports videos, the lower numbered videos
// of each kind more often.
type world struct {
	train   guest.TrainInput
	watched map[string][]guest.Record // each user's watch events
}

func synthetic(users, watches, videos int, seed uint64) world {
	r := rand.New(rand.NewPCG(seed, 0))
	w := world{watched: make(map[string][]guest.Record)}
	half := videos / 2
	var catalogue, events []guest.Record
	for i := range half {
		catalogue = append(catalogue, guest.Record{"id": fmt.Sprintf("cook-%04d", i)}, guest.Record{"id": fmt.Sprintf("sport-%04d", i)})
	}
	for u := range users {
		user := fmt.Sprintf("tk_user%05d", u)
		for range watches {
			kind := []string{"cook", "sport"}[u%2]
			if r.Float64() < 0.05 {
				kind = []string{"sport", "cook"}[u%2] // a taste of the other side
			}
			x := r.Float64()
			video := fmt.Sprintf("%s-%04d", kind, int(x*x*float64(half)))
			if r.Float64() < 0.01 {
				video = "gone-0001" // taken down: not in the catalogue
			}
			rec := guest.Record{"user": user, "video": video}
			events = append(events, rec)
			w.watched[user] = append(w.watched[user], rec)
		}
	}
	w.train = guest.TrainInput{
		ABI:         1,
		Seed:        "1",
		Collections: map[string][]guest.Record{"watch_events": events, "videos": catalogue},
	}
	return w
}

// request asks for k items for user, whose history is what they watched.
func (w world) request(user string, k int) guest.RecommendInput {
	return guest.RecommendInput{
		ABI: 1, Seed: "1", Subject: user, K: k,
		History: map[string][]guest.Record{"watch_events": w.watched[user]},
	}
}

func train(t testing.TB, in guest.TrainInput) []byte {
	t.Helper()
	model, err := covisit.Algorithm{}.Train(in)
	if err != nil {
		t.Fatal(err)
	}
	return model
}

func recommend(t testing.TB, model []byte, in guest.RecommendInput) []string {
	t.Helper()
	items, err := covisit.Algorithm{}.Recommend(model, in)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) > in.K {
		t.Fatalf("%d items for k = %d", len(items), in.K)
	}
	if _, err := guest.EncodeRecommendOutput(items, in.K); err != nil {
		t.Fatal(err)
	}
	for _, r := range in.History["watch_events"] {
		if slices.Contains(items, fmt.Sprint(r["video"])) {
			t.Fatalf("recommended %s, which the subject watched", r["video"])
		}
	}
	return items
}

func TestTaste(t *testing.T) {
	w := synthetic(300, 30, 200, 1)
	model := train(t, w.train)
	for u := range 20 {
		user := fmt.Sprintf("tk_user%05d", u)
		kind := []string{"cook-", "sport-"}[u%2]
		items := recommend(t, model, w.request(user, 10))
		if len(items) != 10 {
			t.Fatalf("%s: %d items, want 10", user, len(items))
		}
		for _, it := range items {
			if !strings.HasPrefix(it, kind) {
				t.Errorf("%s watches %s videos, got %v", user, kind, items)
				break
			}
		}
	}

	// A subject unknown to training, who watched three cooking videos.
	in := guest.RecommendInput{ABI: 1, Seed: "1", Subject: "tk_new", K: 5, History: map[string][]guest.Record{"watch_events": {
		{"user": "tk_new", "video": "cook-0003"}, {"user": "tk_new", "video": "cook-0010"}, {"user": "tk_new", "video": "cook-0040"},
	}}}
	for _, it := range recommend(t, model, in) {
		if !strings.HasPrefix(it, "cook-") {
			t.Errorf("a cook got %s", it)
		}
	}
}

func TestDeterministic(t *testing.T) {
	w := synthetic(200, 20, 100, 2)
	a, b := train(t, w.train), train(t, w.train)
	if !bytes.Equal(a, b) {
		t.Fatal("training twice gave different models")
	}
	// The model depends on who watched what, not on the order of records.
	shuffled := w.train
	events := slices.Clone(w.train.Collections["watch_events"])
	rand.New(rand.NewPCG(3, 0)).Shuffle(len(events), func(i, j int) { events[i], events[j] = events[j], events[i] })
	shuffled.Collections = map[string][]guest.Record{"watch_events": events, "videos": w.train.Collections["videos"]}
	if !bytes.Equal(a, train(t, shuffled)) {
		t.Fatal("shuffling the records changed the model")
	}
}

func TestK(t *testing.T) {
	w := synthetic(100, 20, 60, 4)
	model := train(t, w.train)
	user := "tk_user00000"
	seen := map[string]bool{}
	for _, r := range w.watched[user] {
		seen[r["video"].(string)] = true
	}
	unseen := 60 - len(seen)
	for _, k := range []int{1, 2, 7, 30, 100} {
		if got := recommend(t, model, w.request(user, k)); len(got) != min(k, unseen) {
			t.Errorf("k = %d: %d items, want %d", k, len(got), min(k, unseen))
		}
	}
	for _, k := range []int{0, -1, 101} {
		if _, err := (covisit.Algorithm{}).Recommend(model, w.request(user, k)); err == nil {
			t.Errorf("k = %d accepted", k)
		}
	}
}

func TestColdUser(t *testing.T) {
	w := synthetic(200, 20, 100, 5)
	model := train(t, w.train)

	// The most watched catalogue videos, counting each user once.
	watchers := map[string]map[string]bool{}
	for _, r := range w.train.Collections["videos"] {
		watchers[r["id"].(string)] = map[string]bool{}
	}
	for _, r := range w.train.Collections["watch_events"] {
		if m, ok := watchers[r["video"].(string)]; ok {
			m[r["user"].(string)] = true
		}
	}
	popular := slices.SortedFunc(maps.Keys(watchers), func(a, b string) int {
		return cmp.Or(cmp.Compare(len(watchers[b]), len(watchers[a])), strings.Compare(a, b))
	})

	for _, history := range []map[string][]guest.Record{nil, {}, {"watch_events": {}}} {
		in := guest.RecommendInput{ABI: 1, Seed: "1", Subject: "tk_cold", K: 12, History: history}
		if got := recommend(t, model, in); !slices.Equal(got, popular[:12]) {
			t.Errorf("cold user got %v, want %v", got, popular[:12])
		}
	}

	// A subject who watched only a video nobody else did still gets k
	// items: the popular ones fill in.
	in := guest.RecommendInput{ABI: 1, Seed: "1", Subject: "tk_odd", K: 3, History: map[string][]guest.Record{
		"watch_events": {{"user": "tk_odd", "video": "gone-0001"}},
	}}
	if got := recommend(t, model, in); !slices.Equal(got, popular[:3]) {
		t.Errorf("got %v, want %v", got, popular[:3])
	}
}

// A subject who watched all but two catalogue videos gets those two, even
// when asking for more.
func TestAlmostEverythingWatched(t *testing.T) {
	w := synthetic(50, 10, 20, 6)
	model := train(t, w.train)
	var history []guest.Record
	for _, r := range w.train.Collections["videos"] {
		if id := r["id"].(string); id != "cook-0002" && id != "sport-0009" {
			history = append(history, guest.Record{"user": "tk_busy", "video": id})
		}
	}
	in := guest.RecommendInput{ABI: 1, Seed: "1", Subject: "tk_busy", K: 10, History: map[string][]guest.Record{"watch_events": history}}
	got := recommend(t, model, in)
	slices.Sort(got)
	if !slices.Equal(got, []string{"cook-0002", "sport-0009"}) {
		t.Errorf("got %v", got)
	}
}

func TestFields(t *testing.T) {
	in := guest.TrainInput{ABI: 1, Seed: "1", Collections: map[string][]guest.Record{
		"videos": {{"id": json.Number("10")}, {"id": "a"}, {"id": "a"}, {}},
		"watch_events": {
			{"user": "tk_1", "video": json.Number("10")}, {"user": "tk_1", "video": "a"},
			{"user": "tk_2", "video": json.Number("10")}, {"user": "tk_2"}, {"video": "a"},
		},
	}}
	model := train(t, in)
	req := guest.RecommendInput{ABI: 1, Seed: "1", Subject: "tk_3", K: 5, History: map[string][]guest.Record{
		"watch_events": {{"user": "tk_3", "video": json.Number("10")}},
	}}
	if got := recommend(t, model, req); !slices.Equal(got, []string{"a"}) {
		t.Errorf("got %v, want [a]", got)
	}

	for name, records := range map[string]map[string][]guest.Record{
		"video a bool":   {"watch_events": {{"user": "tk_1", "video": true}}},
		"user a number":  {"watch_events": {{"user": 1.5, "video": "a"}}},
		"id an object":   {"videos": {{"id": map[string]any{"x": 1}}}},
		"id a float":     {"videos": {{"id": 1.0}}},
		"history a bool": nil,
	} {
		t.Run(name, func(t *testing.T) {
			if records == nil {
				req := req
				req.History = map[string][]guest.Record{"watch_events": {{"video": false}}}
				if _, err := (covisit.Algorithm{}).Recommend(model, req); err == nil {
					t.Fatal("accepted")
				}
				return
			}
			_, err := covisit.Algorithm{}.Train(guest.TrainInput{ABI: 1, Seed: "1", Collections: records})
			if err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestMalformedModel(t *testing.T) {
	w := synthetic(50, 10, 20, 7)
	model := train(t, w.train)
	garbage := make([]byte, 300)
	rand.NewChaCha8([32]byte{8}).Read(garbage)
	for name, b := range map[string][]byte{
		"nil":           nil,
		"version 0":     {0},
		"version 1":     append([]byte{1}, model[1:]...),
		"version 3":     append([]byte{3}, model[1:]...),
		"no items":      {2},
		"truncated":     model[:len(model)-1],
		"trailing byte": append(slices.Clone(model), 0),
		"garbage":       garbage,
		"huge count":    append([]byte{2, 0xff, 0xff, 0xff, 0xff}, model[5:]...),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := (covisit.Algorithm{}).Recommend(b, w.request("tk_user00001", 3)); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}
