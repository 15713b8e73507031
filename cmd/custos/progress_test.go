package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestProgressLines checks the display off a terminal: a line every
// progressLineEvery with the rate of the last progressWindow and the time
// left at it, and a last line at the end.
func TestProgressLines(t *testing.T) {
	var out bytes.Buffer
	p := newProgress(&out, "records")
	now := time.Unix(0, 0)
	p.now = func() time.Time { return now }
	// 100 records/s for 6 s, then 400/s for 6 s, reported 5 times a second.
	done := 0
	for i := range 61 {
		p.update(done, 4000)
		now = now.Add(200 * time.Millisecond)
		if i < 30 {
			done += 20
		} else {
			done += 80
		}
	}
	p.update(done, 4000)
	p.finish()
	want := []string{
		"20/4000 records (0%), 100 records/s, 40s left",   // the first update with some done, at 0.2 s
		"520/4000 records (13%), 100 records/s, 35s left", // 5 s later
		"2280/4000 records (57%), 352 records/s, 5s left", // 5 s later: 1 s at 100/s, 4 s at 400/s
		"3080/4000 records (77%), 400 records/s, 2s left", // at the end, 12.2 s: 5 s at 400/s
	}
	if got := strings.Split(strings.TrimSpace(out.String()), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if strings.Contains(out.String(), "\r") {
		t.Error("a carriage return off a terminal")
	}
}

func TestBar(t *testing.T) {
	for _, tc := range []struct {
		done, total int
		want        string
	}{
		{0, 10, "[>                       ]"},
		{5, 10, "[============>           ]"},
		{10, 10, "[========================]"},
		{0, 0, "[========================]"},
	} {
		if got := bar(tc.done, tc.total); got != tc.want {
			t.Errorf("bar(%d, %d) = %q, want %q", tc.done, tc.total, got, tc.want)
		}
	}
}
