package aggregate

import (
	"cmp"
	"errors"
	"io"
	"math"
	"slices"
	"strings"
)

// ErrTooManyGroups is returned by Add once a query forms more than
// MaxGroups groups.
var ErrTooManyGroups = errors.New("the query forms too many groups")

// Table accumulates a query's records group by group. Subjects are numbered
// by the caller (0, 1, …): a Table never sees who they are. It is not safe
// for concurrent use.
type Table struct {
	measure string
	noise   *Noise
	cells   map[string]*cell
	// population holds every subject with a record in the collection,
	// filtered or not; taken those with a record that passed.
	population map[int32]struct{}
	taken      map[int32]int // records of each subject aggregated
}

type cell struct {
	key      []string
	records  int
	sum      float64
	distinct map[string]struct{}
	subjects map[int32]struct{}
}

// NewTable returns a table for q, which Check accepted.
func NewTable(q *Query) *Table {
	return &Table{measure: q.Measure, noise: q.Noise, cells: map[string]*cell{}, population: map[int32]struct{}{}, taken: map[int32]int{}}
}

// See counts subject in the population of the collection: every subject
// with a record in it, whether the record passed the filters or not.
func (t *Table) See(subject int32) { t.population[subject] = struct{}{} }

// Add adds one record of subject that passed the filters, in the group of
// key, with its measured value x (sum, avg) or text d (count_distinct).
// With noise, records of a subject beyond MaxPerSubject are left out.
func (t *Table) Add(subject int32, key []string, x float64, d string) error {
	t.See(subject)
	if t.noise != nil && t.taken[subject] >= t.noise.MaxPerSubject {
		return nil
	}
	k := strings.Join(key, "\x00")
	c := t.cells[k]
	if c == nil {
		if len(t.cells) >= MaxGroups {
			return ErrTooManyGroups
		}
		c = &cell{key: slices.Clone(key), subjects: map[int32]struct{}{}}
		if t.measure == CountDistinct {
			c.distinct = map[string]struct{}{}
		}
		t.cells[k] = c
	}
	t.taken[subject]++
	c.records++
	c.subjects[subject] = struct{}{}
	switch t.measure {
	case Sum, Avg:
		if t.noise != nil {
			x = math.Max(-t.noise.MaxValue, math.Min(t.noise.MaxValue, x))
		}
		c.sum += x
	case CountDistinct:
		c.distinct[d] = struct{}{}
	}
	return nil
}

// Population returns the number of subjects with a record in the
// collection.
func (t *Table) Population() int { return len(t.population) }

// QuerySet returns the subjects whose records were aggregated, sorted.
func (t *Table) QuerySet() []int32 {
	s := make([]int32, 0, len(t.taken))
	for x := range t.taken {
		s = append(s, x)
	}
	slices.Sort(s)
	return s
}

// Group is one released group: its key and its figure.
type Group struct {
	Key   []string `json:"key"`
	Value float64  `json:"value"`
}

// Result is what a query releases.
type Result struct {
	Groups []Group
	// Suppressed is the number of groups withheld: those of fewer than k
	// subjects, and those withheld with them so that the withheld groups
	// together hold no fewer than k subjects.
	Suppressed int
	// Scale is the scale of the Laplace noise added to each figure (for
	// avg, to its sum and its count); 0 without noise.
	Scale float64
}

// Release returns the groups of at least k distinct subjects, sorted by
// key, with noise drawn from rnd when the query asked for it.
//
// A group of fewer than k subjects is suppressed. So are, in turn, released
// groups, smallest first, wherever suppressed groups would otherwise be
// recoverable by subtraction: the same query grouped by fewer of its terms
// (or by none) gives the totals of coarser groups, and a coarser total minus
// its released groups is the figure of its suppressed ones. Within every
// coarser group (of every subset of the terms, down to the grand total),
// the suppressed groups together hold no subject or at least k.
func (t *Table) Release(k int, rnd io.Reader) (Result, error) {
	cells := make([]*cell, 0, len(t.cells))
	for _, c := range t.cells {
		cells = append(cells, c)
	}
	// Smallest first, so that complementary suppression takes the
	// smallest released groups; ties by key, so that it is deterministic.
	slices.SortFunc(cells, func(a, b *cell) int {
		return cmp.Or(cmp.Compare(len(a.subjects), len(b.subjects)), slices.Compare(a.key, b.key))
	})
	hidden := make([]bool, len(cells))
	for i, c := range cells {
		hidden[i] = len(c.subjects) < k
	}
	suppressComplements(cells, hidden, k)
	res := Result{}
	if t.noise != nil {
		res.Scale = t.scale()
	}
	for i, c := range cells {
		if hidden[i] {
			res.Suppressed++
			continue
		}
		v, err := t.figure(c, res.Scale, rnd)
		if err != nil {
			return Result{}, err
		}
		res.Groups = append(res.Groups, Group{Key: c.key, Value: v})
	}
	slices.SortFunc(res.Groups, func(a, b Group) int { return slices.Compare(a.Key, b.Key) })
	return res, nil
}

// suppressComplements hides, in each coarser group of cells (sorted
// smallest first), the smallest visible cells until the hidden cells of
// the coarser group hold no subject or at least k, and repeats until no
// coarser group needs more.
func suppressComplements(cells []*cell, hidden []bool, k int) {
	if len(cells) == 0 {
		return
	}
	terms := len(cells[0].key)
	for changed := true; changed; {
		changed = false
		// Each proper subset of the terms, as a bit mask, is a coarser
		// grouping; the empty one is the grand total.
		for mask := 0; mask < 1<<terms-1; mask++ {
			coarse := map[string][]int{}
			for i, c := range cells {
				var b strings.Builder
				for j, v := range c.key {
					if mask&(1<<j) != 0 {
						b.WriteString(v)
						b.WriteByte(0)
					}
				}
				coarse[b.String()] = append(coarse[b.String()], i)
			}
			for _, members := range coarse {
				subjects := map[int32]struct{}{}
				for _, i := range members {
					if hidden[i] {
						for s := range cells[i].subjects {
							subjects[s] = struct{}{}
						}
					}
				}
				for _, i := range members { // smallest first
					if len(subjects) == 0 || len(subjects) >= k {
						break
					}
					if !hidden[i] {
						hidden[i], changed = true, true
						for s := range cells[i].subjects {
							subjects[s] = struct{}{}
						}
					}
				}
			}
		}
	}
}

// scale returns the Laplace scale of the query's noise: its sensitivity
// (how much one subject, with at most MaxPerSubject records, can change
// all the figures together) over epsilon. avg spends half of epsilon on
// its sum and half on its count, so each gets twice the scale.
func (t *Table) scale() float64 {
	c := float64(t.noise.MaxPerSubject)
	switch t.measure {
	case Sum:
		return c * t.noise.MaxValue / t.noise.Epsilon
	case Avg:
		return 2 * c * t.noise.MaxValue / t.noise.Epsilon
	}
	return c / t.noise.Epsilon
}

// figure returns c's measure, noised with scale b when b > 0.
func (t *Table) figure(c *cell, b float64, rnd io.Reader) (float64, error) {
	noisy := func(x, scale float64) (float64, error) {
		if b == 0 {
			return x, nil
		}
		n, err := Laplace(rnd, scale)
		return x + n, err
	}
	count := func(x float64, scale float64) (float64, error) {
		v, err := noisy(x, scale)
		return math.Max(0, math.Round(v)), err
	}
	switch t.measure {
	case Count:
		return count(float64(c.records), b)
	case CountDistinct:
		return count(float64(len(c.distinct)), b)
	case Sum:
		return noisy(c.sum, b)
	}
	// avg: its count's scale is that of a count at half epsilon.
	sum, err := noisy(c.sum, b)
	if err != nil {
		return 0, err
	}
	countScale := 0.0
	if b > 0 {
		countScale = b / t.noise.MaxValue
	}
	n, err := count(float64(c.records), countScale)
	if err != nil {
		return 0, err
	}
	return sum / math.Max(1, n), nil
}
