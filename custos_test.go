package custos

import "testing"

func TestPrincipalKeyDistinct(t *testing.T) {
	ps := []Principal{
		{ID: "a"},
		{ID: "a", Vetted: true},
		{ID: "a", Roles: []string{"x,y"}},
		{ID: "a", Roles: []string{"x", "y"}},
		{ID: "a", Roles: []string{""}},
		{ID: "a\x00b"},
		{ID: "a", Org: "b"},
		{ID: "ab"},
		{Issuer: "a"},
		{Org: "a"},
		{Loc: "a"},
		{ID: "1:a"},
		{ID: "a", Loc: "US"},
	}
	seen := map[string]int{}
	for i, p := range ps {
		k := p.Key()
		if j, ok := seen[k]; ok {
			t.Errorf("principals %d %+v and %d %+v share key %q", j, ps[j], i, p, k)
		}
		seen[k] = i
	}
	p, q := Principal{ID: "a", Roles: []string{"x"}}, Principal{ID: "a", Roles: []string{"x"}}
	if p.Key() != q.Key() {
		t.Error("equal principals have different keys")
	}
}

func FuzzPrincipalKey(f *testing.F) {
	f.Add("a", "b", "c,d", "", false)
	f.Fuzz(func(t *testing.T, id1, id2, r1, r2 string, v bool) {
		p := Principal{ID: id1, Roles: []string{r1}, Vetted: v}
		q := Principal{ID: id2, Roles: []string{r2}, Vetted: v}
		if (p.ID != q.ID || r1 != r2) && p.Key() == q.Key() {
			t.Fatalf("%+v and %+v share a key", p, q)
		}
	})
}
