package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/custos/custos"
	"github.com/custos/custos/internal/synth"
)

// serveTest serves a new deployment on a local port until the test ends,
// and returns it and its address.
func serveTest(t testing.TB) (*deployment, string) {
	t.Helper()
	d := testDeployment(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &env{stdout: io.Discard, stderr: io.Discard, log: slog.New(slog.DiscardHandler)}
	ready, errc := make(chan struct{}), make(chan error, 1)
	go func() { errc <- e.run(ctx, d, ln, func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-errc:
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Error(err)
		}
	})
	return d, "http://" + ln.Addr().String()
}

func mintTest(t testing.TB, d *deployment, p custos.Principal) string {
	t.Helper()
	tok, err := mint(d.cfg, p, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

var (
	testService = custos.Principal{ID: "feed-service", Org: "operator", Loc: "US", Roles: []string{"service"}}
	testStaff   = custos.Principal{ID: "alice", Org: "custodian", Loc: "US", Roles: []string{"support"}, Vetted: true}
)

// TestLoad runs custos load against a server, checks that what it wrote is
// stored and reads as the platform made it, that a second run of the same
// seed replaces what the first wrote, and that a refusal stops it with the
// server's reason and no personal data.
func TestLoad(t *testing.T) {
	d, base := serveTest(t)
	svc := mintTest(t, d, testService)
	cfg := synth.Config{Seed: 9, Users: 60, Videos: 12, Events: 400}
	args := []string{"load", "--server", base, "--token", svc, "--users", "60", "--videos", "12", "--events", "400", "--seed", "9", "--concurrency", "4"}
	for run := range 2 {
		var stdout, stderr bytes.Buffer
		if code := Main(context.Background(), args, &stdout, &stderr); code != 0 {
			t.Fatalf("run %d: exit %d\nstderr:\n%s", run, code, &stderr)
		}
		if !strings.HasPrefix(stdout.String(), "loaded 60 users, 12 videos and 400 watch events (seed 9) in ") {
			t.Errorf("run %d: stdout %q", run, &stdout)
		}
		if lines := strings.Split(strings.TrimSpace(stderr.String()), "\n"); !strings.HasPrefix(lines[len(lines)-1], "472/472 records (100%)") {
			t.Errorf("run %d: progress ends %q", run, lines[len(lines)-1])
		}
		if strings.Contains(stderr.String(), "@example") {
			t.Errorf("run %d: stderr holds an email address", run)
		}
		for coll, want := range map[string]int{"users": 60, "videos": 12, "watch_events": 400} {
			if n := countRecords(t, d, coll); n != want {
				t.Errorf("run %d: %d %s stored, want %d", run, n, coll, want)
			}
		}
		if subs, err := d.store.Subjects(context.Background(), "", 1000); err != nil || len(subs) != 60 {
			t.Errorf("run %d: %d subjects stored (%v), want 60", run, len(subs), err)
		}
	}

	// The records read as the platform made them.
	p, err := synth.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	staff := &apiClient{base: base, token: mintTest(t, d, testStaff), purpose: "support"}
	for _, r := range []synth.Record{p.User(59).Record(), p.Video(11).Record(), lastEvent(p).Record()} {
		b, err := staff.do(context.Background(), "GET", "/v1/records/"+r.Collection+"/"+r.ID, nil, 200)
		if err != nil {
			t.Fatal(err)
		}
		var got demoRead
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		for name, v := range r.Fields {
			want, _ := json.Marshal(v)
			if f := got.Fields[name]; f.Form != "clear" || string(f.Value) != string(want) {
				t.Errorf("%s %s: %s reads %s %s, want %s in clear", r.Collection, r.ID, name, f.Form, f.Value, want)
			}
		}
	}

	// A server of another jurisdiction refuses the users: the load stops
	// at once, with the server's reason and a hint.
	var stdout, stderr bytes.Buffer
	args = []string{"load", "--server", base, "--token", svc, "--users", "500", "--videos", "1", "--events", "0", "--jurisdiction", "CA"}
	if code := Main(context.Background(), args, &stdout, &stderr); code != 1 {
		t.Fatalf("load of CA users: exit %d, want 1\nstderr:\n%s", code, &stderr)
	}
	msg := stderr.String()
	if !strings.Contains(msg, "custos: couldn't register a user as a subject: the server refused (409 wrong_jurisdiction)") || !strings.Contains(msg, "--jurisdiction") {
		t.Errorf("load of CA users: stderr %q", msg)
	}
	if strings.Contains(msg, "u000") {
		t.Errorf("the error names a user: %q", msg)
	}
	if n := countRecords(t, d, "users"); n != 60 {
		t.Errorf("%d users stored after the refusal, want 60", n)
	}
}

func countRecords(t *testing.T, d *deployment, collection string) int {
	t.Helper()
	n, after := 0, ""
	for {
		recs, err := d.store.Records(context.Background(), collection, after, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			return n
		}
		n += len(recs)
		after = recs[len(recs)-1].ID
	}
}

func lastEvent(p *synth.Platform) synth.Event {
	var last synth.Event
	for e := range p.Events() {
		last = e
	}
	return last
}

// TestLoadUsage checks the flags custos load refuses.
func TestLoadUsage(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"load"}, 2, "Usage: custos load"},
		{[]string{"load", "--server", "http://x", "--token", "t", "--concurrency", "0"}, 2, "Usage: custos load"},
		{[]string{"load", "--server", "http://x", "--token", "t", "--users", "0"}, 1, "couldn't make the platform: users must be between 1 and"},
		{[]string{"load", "--server", "http://127.0.0.1:1", "--token", "t", "--users", "3"}, 1, "couldn't register a user as a subject: couldn't reach the server:"},
	} {
		var stdout, stderr bytes.Buffer
		if code := Main(context.Background(), tc.args, &stdout, &stderr); code != tc.code || !strings.Contains(stderr.String(), tc.stderr) {
			t.Errorf("%s: exit %d, stderr %q; want %d and %q", strings.Join(tc.args, " "), code, &stderr, tc.code, tc.stderr)
		}
		if strings.Contains(stderr.String(), "/v1/subjects/") {
			t.Errorf("%s: stderr names a subject's path: %q", strings.Join(tc.args, " "), &stderr)
		}
	}
}

// BenchmarkLoad writes a platform of b.N events, one user for 20 and one
// video for 100, through the API of a server in the same process.
func BenchmarkLoad(b *testing.B) {
	for _, conc := range []int{16, 64} {
		b.Run("concurrency="+strconv.Itoa(conc), func(b *testing.B) {
			d, base := serveTest(b)
			u, _ := url.Parse(base)
			p, err := synth.New(synth.Config{Seed: 1, Users: b.N/20 + 1, Videos: b.N/100 + 1, Events: b.N})
			if err != nil {
				b.Fatal(err)
			}
			svc := mintTest(b, d, testService)
			e := &env{stdout: io.Discard, stderr: io.Discard}
			b.ResetTimer()
			if err := e.loadPlatform(context.Background(), u, svc, p, conc); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(p.Size())/b.Elapsed().Seconds(), "records/s")
		})
	}
}
