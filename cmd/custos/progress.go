package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// progress shows how a long run advances, as done of total units: on a
// terminal, a bar redrawn in place at each update; elsewhere, a line every
// progressLineEvery. Its methods are called from one goroutine.
type progress struct {
	w       io.Writer
	tty     bool
	unit    string
	now     func() time.Time
	recent  []progressSample // the last progressWindow of updates, for the rate
	done    int
	total   int
	shown   time.Time // when the last line was written, off a terminal
	printed string    // the last line written
}

type progressSample struct {
	at   time.Time
	done int
}

const (
	progressWindow    = 5 * time.Second
	progressLineEvery = 5 * time.Second
	progressBarWidth  = 24
)

func newProgress(w io.Writer, unit string) *progress {
	return &progress{w: w, tty: isTerminal(w), unit: unit, now: time.Now}
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// update shows that done of total units are done.
func (p *progress) update(done, total int) {
	now := p.now()
	p.done, p.total = done, total
	p.recent = append(p.recent, progressSample{now, done})
	for len(p.recent) > 2 && now.Sub(p.recent[0].at) > progressWindow {
		p.recent = p.recent[1:]
	}
	switch {
	case p.tty:
		fmt.Fprintf(p.w, "\r%s %s\x1b[K", bar(done, total), p.line())
	case now.Sub(p.shown) >= progressLineEvery && done > 0:
		p.shown = now
		p.println()
	}
}

// finish ends the display: on a terminal, the line of the bar; elsewhere,
// with a line of the last state, unless it was the last line written.
func (p *progress) finish() {
	if p.tty {
		fmt.Fprintln(p.w)
		return
	}
	p.println()
}

func (p *progress) println() {
	l := p.line()
	if l != p.printed {
		fmt.Fprintln(p.w, l)
		p.printed = l
	}
}

// line describes the progress: done/total, percentage, rate over the last
// progressWindow and, until the end, the time left at that rate.
func (p *progress) line() string {
	pct := 100.0
	if p.total > 0 {
		pct = 100 * float64(p.done) / float64(p.total)
	}
	s := fmt.Sprintf("%d/%d %s (%.0f%%)", p.done, p.total, p.unit, pct)
	first, last := p.recent[0], p.recent[len(p.recent)-1]
	if span := last.at.Sub(first.at); span > 0 && last.done > first.done {
		rate := float64(last.done-first.done) / span.Seconds()
		s += fmt.Sprintf(", %.0f %s/s", rate, p.unit)
		if p.done < p.total {
			left := time.Duration(float64(p.total-p.done) / rate * float64(time.Second))
			s += fmt.Sprintf(", %s left", left.Round(time.Second))
		}
	}
	return s
}

// bar draws done of total as [=====>    ].
func bar(done, total int) string {
	n := progressBarWidth
	if total > 0 {
		n = min(progressBarWidth, progressBarWidth*done/total)
	}
	head := ""
	if n < progressBarWidth {
		head = ">"
	}
	return "[" + strings.Repeat("=", n) + head + strings.Repeat(" ", progressBarWidth-n-len(head)) + "]"
}
