package governance

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"
)

// maxDiffCells bounds the work of comparing one file: the lines that
// differ between the common prefix and suffix, old times new. Beyond it
// the whole middle is shown removed and added.
const maxDiffCells = 1 << 20

// Diff returns the changes from old to new as unified-diff hunks without
// context, file by file in name order: "file NAME", then "@@ -a,b +c,d @@"
// and the lines removed ("-") and added ("+"). Lines are escaped so that
// the diff holds no control character (a tab is shown as \t): it is
// signed-note text. An empty string means no change.
func Diff(old, new Content) string {
	var b strings.Builder
	names := slices.AppendSeq(slices.Collect(maps.Keys(old)), maps.Keys(new))
	slices.Sort(names)
	names = slices.Compact(names)
	for _, n := range names {
		o, inOld := old[n]
		w, inNew := new[n]
		if inOld && inNew && string(o) == string(w) {
			continue
		}
		what := "changed"
		switch {
		case !inOld:
			what = "added"
		case !inNew:
			what = "removed"
		}
		fmt.Fprintf(&b, "file %s %s\n", escape(n), what)
		diffLines(&b, lines(o), lines(w))
	}
	return b.String()
}

// lines splits text into lines without their line breaks.
func lines(text []byte) []string {
	if len(text) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(text), "\n"), "\n")
}

// diffLines writes the hunks that turn a into b.
func diffLines(w *strings.Builder, a, b []string) {
	pre := 0
	for pre < len(a) && pre < len(b) && a[pre] == b[pre] {
		pre++
	}
	suf := 0
	for suf < len(a)-pre && suf < len(b)-pre && a[len(a)-1-suf] == b[len(b)-1-suf] {
		suf++
	}
	ma, mb := a[pre:len(a)-suf], b[pre:len(b)-suf]
	var keep [][2]int // pairs of equal lines in ma and mb, in order
	if len(ma)*len(mb) <= maxDiffCells {
		keep = lcs(ma, mb)
	}
	i, j := 0, 0
	for _, k := range append(keep, [2]int{len(ma), len(mb)}) {
		hunk(w, ma[i:k[0]], mb[j:k[1]], pre+i, pre+j)
		i, j = k[0]+1, k[1]+1
	}
}

// hunk writes one hunk removing del at line a and adding add at line b
// (0-based), if there is anything to write.
func hunk(w *strings.Builder, del, add []string, a, b int) {
	if len(del) == 0 && len(add) == 0 {
		return
	}
	fmt.Fprintf(w, "@@ -%d,%d +%d,%d @@\n", start(a, len(del)), len(del), start(b, len(add)), len(add))
	for _, l := range del {
		w.WriteString("-" + escape(l) + "\n")
	}
	for _, l := range add {
		w.WriteString("+" + escape(l) + "\n")
	}
}

// start is the 1-based first line of a range of n lines at 0-based i, as
// unified diffs number an empty range: the line before it.
func start(i, n int) int {
	if n == 0 {
		return i
	}
	return i + 1
}

// lcs returns the index pairs of a longest common subsequence of a and b.
func lcs(a, b []string) [][2]int {
	n, m := len(a), len(b)
	t := make([]int32, (n+1)*(m+1))
	at := func(i, j int) *int32 { return &t[i*(m+1)+j] }
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			switch {
			case a[i] == b[j]:
				*at(i, j) = *at(i+1, j+1) + 1
			default:
				*at(i, j) = max(*at(i+1, j), *at(i, j+1))
			}
		}
	}
	var out [][2]int
	for i, j := 0, 0; i < n && j < m; {
		switch {
		case a[i] == b[j]:
			out = append(out, [2]int{i, j})
			i, j = i+1, j+1
		case *at(i+1, j) >= *at(i, j+1):
			i++
		default:
			j++
		}
	}
	return out
}

// escape makes s printable signed-note text: control characters are
// written as Go escapes, a backslash doubled, invalid UTF-8 as \ufffd.
func escape(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' || r == utf8.RuneError }) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r == utf8.RuneError:
			b.WriteString(`\ufffd`)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
