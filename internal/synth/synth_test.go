package synth

import (
	"encoding/json"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/custos/custos/algo/guest"
	"github.com/custos/custos/examples/covisit"
	"github.com/custos/custos/internal/schema"
	"github.com/custos/custos/internal/starter"
)

func newPlatform(t testing.TB, cfg Config) *Platform {
	t.Helper()
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// all returns every record of p, users, videos and events in that order.
func all(p *Platform) []Record {
	var out []Record
	for r := range records(p.Users()) {
		out = append(out, r)
	}
	for r := range records(p.Videos()) {
		out = append(out, r)
	}
	for r := range records(p.Events()) {
		out = append(out, r)
	}
	return out
}

func TestSeed(t *testing.T) {
	cfg := Config{Seed: 7, Users: 300, Videos: 40, Events: 3000}
	p := newPlatform(t, cfg)
	a := all(p)
	if len(a) != p.Size() || p.Size() != 3340 {
		t.Fatalf("%d records, Size %d, want 3340", len(a), p.Size())
	}
	if !slices.EqualFunc(a, all(p), equalRecords) {
		t.Error("a platform's second reading differs from its first")
	}
	if !slices.EqualFunc(a, all(newPlatform(t, cfg)), equalRecords) {
		t.Error("two platforms of the same config differ")
	}
	cfg.Seed = 8
	b := all(newPlatform(t, cfg))
	same := 0
	for i := range a {
		if equalRecords(a[i], b[i]) {
			same++
		}
	}
	if same > len(a)/100 {
		t.Errorf("seeds 7 and 8 give %d of %d records the same", same, len(a))
	}
}

// TestStable pins the output of one seed: a change of what a seed makes
// changes the demo's data and should be deliberate.
func TestStable(t *testing.T) {
	p := newPlatform(t, Config{Seed: 1, Users: 50, Videos: 10, Events: 200})
	u := p.User(0)
	want := User{ID: "u000001", Handle: "nia_river1", Email: "nia.river1@example.org", Phone: "+1 704 555 0183", Birthdate: "1964-06-26", IP: "203.0.113.199", Country: "US"}
	if u != want {
		t.Errorf("seed 1's first user is %+v, was %+v", u, want)
	}
	v := p.Video(0)
	if v.ID != "v00001" || !strings.HasPrefix(v.Creator, "u0000") || v.DurationMS < 5000 || v.DurationMS > 180000 {
		t.Errorf("seed 1's first video is %+v", v)
	}
}

func equalRecords(a, b Record) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// TestSchema checks every record against the starter schema, and what the
// schema cannot check: ids unique and sortable, references to records made
// before, ages, durations, times and addresses in their ranges.
func TestSchema(t *testing.T) {
	sc, err := schema.Parse("schema.yaml", starter.Schema())
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Seed: 3, Users: 2000, Videos: 150, Events: 20000, Days: 7}
	p := newPlatform(t, cfg)
	end, start := DefaultEnd, DefaultEnd.AddDate(0, 0, -7)
	seen := map[string]bool{}
	var last Record
	countries := map[string]int{}
	ipv6 := 0
	for _, r := range all(p) {
		decode(t, sc, r)
		if seen[r.ID] || r.Collection == last.Collection && r.ID <= last.ID {
			t.Fatalf("%s %s repeats or follows %s", r.Collection, r.ID, last.ID)
		}
		seen[r.ID], last = true, r
		f := r.Fields
		switch r.Collection {
		case "users":
			countries[f["country"].(string)]++
			birth, _ := time.Parse(time.DateOnly, f["birthdate"].(string))
			if age := ageAt(birth, end); age < 13 || age > 80 {
				t.Errorf("a user aged %d", age)
			}
			a := netip.MustParseAddr(f["ip"].(string))
			if a.Is6() {
				ipv6++
			}
			if !documentation(a) {
				t.Errorf("address %s is not kept for documentation", a)
			}
		case "videos":
			if !seen[f["creator"].(string)] {
				t.Errorf("video %s names a creator who is no user", r.ID)
			}
		case "watch_events":
			if !seen[f["user"].(string)] || !seen[f["video"].(string)] {
				t.Errorf("event %s names a user or video not made before it", r.ID)
			}
			v := index(f["video"].(string))
			if w := f["watched_ms"].(int64); w < 1 || w > p.Video(v).DurationMS {
				t.Errorf("event %s: watched %d ms of a video of %d", r.ID, w, p.Video(v).DurationMS)
			}
			at, _ := time.Parse(time.RFC3339Nano, f["at"].(string))
			if at.Before(start) || !at.Before(end) {
				t.Errorf("event %s at %s, outside [%s, %s)", r.ID, at, start, end)
			}
		}
	}
	if countries["US"] < cfg.Users*9/10 || countries["PR"] == 0 || len(countries) < 4 {
		t.Errorf("countries %v: want mostly US and a few territories", countries)
	}
	if ipv6 < cfg.Users/20 || ipv6 > cfg.Users/5 {
		t.Errorf("%d of %d users have IPv6 addresses, want about one in ten", ipv6, cfg.Users)
	}
}

// decode checks r's fields against its collection in sc: they decode, and
// to the values given.
func decode(t *testing.T, sc *schema.Schema, r Record) {
	t.Helper()
	c, err := sc.Collection(r.Collection)
	if err != nil {
		t.Fatal(err)
	}
	raw := map[string]json.RawMessage{}
	for k, v := range r.Fields {
		raw[k], _ = json.Marshal(v)
	}
	got, err := c.Decode(raw)
	if err != nil {
		t.Fatalf("%s %s: %v", r.Collection, r.ID, err)
	}
	for k, v := range r.Fields {
		if got[k] != v {
			t.Errorf("%s %s: %s decodes to %v, not %v", r.Collection, r.ID, k, got[k], v)
		}
	}
}

func ageAt(birth, t time.Time) int {
	age := t.Year() - birth.Year()
	if birth.AddDate(age, 0, 0).After(t) {
		age--
	}
	return age
}

// index returns the index of the user, video or event of an id.
func index(id string) int {
	n, err := strconv.Atoi(id[1:])
	if err != nil {
		panic(err)
	}
	return n - 1
}

func documentation(a netip.Addr) bool {
	for _, p := range []string{"192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32"} {
		if netip.MustParsePrefix(p).Contains(a) {
			return true
		}
	}
	return false
}

// TestPopularity checks that a few videos get most events: the top tenth
// of videos would get about a tenth of the events if videos were picked
// uniformly.
func TestPopularity(t *testing.T) {
	p := newPlatform(t, Config{Seed: 11, Users: 1000, Videos: 200, Events: 20000})
	counts := make([]int, 200)
	for e := range p.Events() {
		counts[index(e.Video)]++
	}
	slices.Sort(counts)
	slices.Reverse(counts)
	top := 0
	for _, c := range counts[:20] {
		top += c
	}
	if share := float64(top) / 20000; share < 0.3 {
		t.Errorf("the top 10%% of videos get %.2f of the events, want over 0.3", share)
	}
	creators := map[string]bool{}
	for v := range p.Videos() {
		creators[v.Creator] = true
	}
	if len(creators) > 1000/creatorShare || len(creators) < 1000/creatorShare/2 {
		t.Errorf("%d users made the 200 videos, want at most one in %d users and most of them", len(creators), creatorShare)
	}
}

// TestTaste checks that users watch mostly the topics they prefer: with
// one or two preferred topics of eight, picking videos uniformly would put
// about a fifth of a user's events there.
func TestTaste(t *testing.T) {
	p := newPlatform(t, Config{Seed: 12, Users: 500, Videos: 200, Events: 20000})
	in, two := 0, 0
	for u := range 500 {
		if a, b := p.taste(u); a != b {
			two++
		}
	}
	for e := range p.Events() {
		a, b := p.taste(index(e.User))
		if topic := p.Video(index(e.Video)).Topic; topic == a || topic == b {
			in++
		}
	}
	if share := float64(in) / 20000; share < 0.7 {
		t.Errorf("%.2f of the events are of topics their users prefer, want over 0.7", share)
	}
	if two < 150 || two > 350 {
		t.Errorf("%d of 500 users prefer two topics, want about half", two)
	}
}

func TestConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Users: 0, Videos: 1}, "users must be between 1 and"},
		{Config{Users: 1, Videos: 0}, "videos must be between 1 and"},
		{Config{Users: 1, Videos: 1, Events: -1}, "events must be between 0 and"},
		{Config{Users: MaxItems + 1, Videos: 1}, "users must be between"},
		{Config{Users: 1, Videos: 1, Topics: -1}, "topics"},
		{Config{Users: 1, Videos: 1, Days: -2}, "days"},
		{Config{Users: 1, Videos: 1, Jurisdiction: "us"}, "ISO 3166-1 alpha-2"},
	} {
		if _, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v): %v, want an error with %q", tc.cfg, err, tc.want)
		}
	}
	// The smallest platform, and one of another jurisdiction.
	p := newPlatform(t, Config{Users: 1, Videos: 1, Events: 3, Topics: 5, Jurisdiction: "DE"})
	if p.Config().Topics != 1 {
		t.Errorf("one video in %d topics", p.Config().Topics)
	}
	for r := range records(p.Events()) {
		if r.Fields["user"] != "u000001" || r.Fields["video"] != "v00001" {
			t.Errorf("event %v", r)
		}
	}
	if u := p.User(0); u.Country != "DE" {
		t.Errorf("a user of DE has country %s", u.Country)
	}
	// Ids grow past their usual width and stay sortable.
	p = newPlatform(t, Config{Users: 1234567, Videos: 1, Events: 0})
	if a, b := p.UserID(0), p.UserID(1234566); a != "u0000001" || b != "u1234567" {
		t.Errorf("ids %s and %s", a, b)
	}
}

func BenchmarkEvents(b *testing.B) {
	p := newPlatform(b, Config{Seed: 1, Users: 100000, Videos: 10000, Events: b.N})
	b.ResetTimer()
	n := 0
	for e := range p.Events() {
		_ = e.Record()
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
}

func BenchmarkUsers(b *testing.B) {
	p := newPlatform(b, Config{Seed: 1, Users: b.N, Videos: 1})
	b.ResetTimer()
	for u := range p.Users() {
		_ = u.Record()
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "users/s")
}

// TestLearnable checks that the sample recommender learns the users'
// tastes from a platform of the default size: most of what it recommends
// to a user is of the topics they prefer, which hold about a fifth of the
// videos.
func TestLearnable(t *testing.T) {
	p := newPlatform(t, Config{Seed: 1, Users: DefaultUsers, Videos: DefaultVideos, Events: DefaultEvents})
	var events, catalogue []guest.Record
	history := map[string][]guest.Record{}
	for e := range p.Events() {
		r := guest.Record{"user": e.User, "video": e.Video}
		events = append(events, r)
		history[e.User] = append(history[e.User], r)
	}
	for v := range p.Videos() {
		catalogue = append(catalogue, guest.Record{"id": v.ID})
	}
	alg := covisit.Algorithm{}
	model, err := alg.Train(guest.TrainInput{ABI: 1, Seed: "1", Collections: map[string][]guest.Record{"watch_events": events, "videos": catalogue}})
	if err != nil {
		t.Fatal(err)
	}
	in, all := 0, 0
	for u := range DefaultUsers {
		items, err := alg.Recommend(model, guest.RecommendInput{ABI: 1, Seed: "1", Subject: p.UserID(u), K: 5,
			History: map[string][]guest.Record{"watch_events": history[p.UserID(u)]}})
		if err != nil {
			t.Fatal(err)
		}
		a, b := p.taste(u)
		for _, v := range items {
			if topic := p.Video(index(v)).Topic; topic == a || topic == b {
				in++
			}
			all++
		}
	}
	if share := float64(in) / float64(all); share < 0.6 {
		t.Errorf("%.2f of the recommendations are of topics their users prefer, want over 0.6", share)
	}
}
