package policy

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/custos/custos"
)

func TestStarterTable(t *testing.T) {
	cases := starterCases(t)
	if len(cases) < 25 {
		t.Errorf("starter table has %d cases, want at least 25", len(cases))
	}
	failures, err := RunTests(NewEngine(starterSet(t), testJurisdict), cases, starterField)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range failures {
		t.Errorf("%s: got %s, want %s", f.Case.Name, f.Got, f.Case.Want)
	}
}

// policyIDs finds the @id of every rule of a policy text.
var policyIDs = regexp.MustCompile(`@id\("([^"]+)"\)\s*(permit|forbid)`)

// dropRule removes the rule with the given @id from text.
func dropRule(tb testing.TB, text, id string) string {
	tb.Helper()
	start := strings.Index(text, `@id("`+id+`")`)
	if start < 0 {
		tb.Fatalf("no rule %s", id)
	}
	end := strings.Index(text[start:], "};")
	if end < 0 {
		tb.Fatalf("rule %s has no end", id)
	}
	return text[:start] + text[start+end+2:]
}

// TestStarterTableCoversEveryPermit drops each permit of the starter
// policies in turn: the starter table must notice every one.
func TestStarterTableCoversEveryPermit(t *testing.T) {
	text := string(starterText(t))
	cases := starterCases(t)
	rules := policyIDs.FindAllStringSubmatch(text, -1)
	if len(rules) < 10 {
		t.Fatalf("found %d rules in the starter policies", len(rules))
	}
	for _, r := range rules {
		id, effect := r[1], r[2]
		t.Run(id, func(t *testing.T) {
			e := NewEngine(mustParse(t, dropRule(t, text, id)), testJurisdict)
			failures, err := RunTests(e, cases, starterField)
			if err != nil {
				t.Fatal(err)
			}
			if effect == "permit" && len(failures) == 0 {
				t.Errorf("dropping %s fails no case", id)
			}
		})
	}
}

func TestRunTestsUnknownField(t *testing.T) {
	cases := []Case{{Name: "x", Field: "users.shoe_size", Want: "clear"}}
	_, err := RunTests(NewEngine(starterSet(t), testJurisdict), cases, starterField)
	if err == nil || !strings.Contains(err.Error(), "case 1") || !strings.Contains(err.Error(), "users.shoe_size") {
		t.Errorf("RunTests error = %v, want one naming case 1 and its field", err)
	}
	cases = []Case{{Name: "bad", Action: "fly", Field: "users.email", Want: "allow"}}
	if _, err := RunTests(NewEngine(starterSet(t), testJurisdict), cases, starterField); err == nil {
		t.Error("RunTests accepted an unknown action")
	}
}

func TestFormsStarter(t *testing.T) {
	e := NewEngine(starterSet(t), testJurisdict)
	fields := []Field{
		mustField(t, "users", "email"), mustField(t, "users", "country"),
		mustField(t, "videos", "title"), mustField(t, "watch_events", "at"),
	}
	for _, tt := range []struct {
		p    custos.Principal
		ctx  Context
		want []custos.Form
	}{
		{vettedCustodian, Context{Purpose: "support"}, []custos.Form{"clear", "clear", "clear", "clear"}},
		{vettedCustodian, Context{}, []custos.Form{"token", "token", "token", "token"}},
		{operatorAbroad, Context{}, []custos.Form{"token", "clear", "clear", "token"}},
		{operatorService, Context{}, []custos.Form{"clear", "clear", "clear", "clear"}},
		{monitor, Context{Purpose: "audit"}, []custos.Form{"withheld", "clear", "withheld", "withheld"}},
		{custos.Principal{ID: "x"}, Context{}, []custos.Form{"withheld", "withheld", "withheld", "withheld"}},
	} {
		for range 2 { // cold, then warm
			if got := e.Forms(tt.p, tt.ctx, fields); !slices.Equal(got, tt.want) {
				t.Errorf("Forms(%s, %+v) = %v, want %v", tt.p.ID, tt.ctx, got, tt.want)
			}
		}
	}
	if got := e.Forms(vettedCustodian, Context{}, nil); len(got) != 0 {
		t.Errorf("Forms of no fields = %v", got)
	}
}

// TestCacheKeyHoldsContext checks that a decision cached for one context is
// not served for another.
func TestCacheKeyHoldsContext(t *testing.T) {
	e := NewEngine(starterSet(t), testJurisdict)
	email := mustField(t, "users", "email")
	approved := Context{Reason: "legal", Justified: true, Approved: true}
	for range 2 {
		if !e.Allowed(vettedCustodian, custos.ActionDetokenize, email, approved) {
			t.Error("approved detokenization denied")
		}
		if e.Allowed(vettedCustodian, custos.ActionDetokenize, email, Context{Reason: "legal", Justified: true}) {
			t.Error("unapproved detokenization allowed from the cache")
		}
		if e.Allowed(vettedCustodian, custos.ActionDetokenize, email, Context{Approved: true}) {
			t.Error("unjustified detokenization allowed from the cache")
		}
	}
	// The same principal with other attributes is another principal.
	abroad := vettedCustodian
	abroad.Loc = "IE"
	if e.Allowed(abroad, custos.ActionDetokenize, email, approved) {
		t.Error("detokenization from abroad allowed from the cache")
	}
	// The same field with another class is another field.
	if e.Forms(operatorAbroad, Context{}, []Field{email})[0] != custos.FormToken {
		t.Error("operator abroad reads email other than as a token")
	}
	public := email
	public.Class = custos.ClassPublic
	if e.Forms(operatorAbroad, Context{}, []Field{public})[0] != custos.FormClear {
		t.Error("a cached decision for a protected field was served for a public one")
	}
}

func TestAllowedWrongResource(t *testing.T) {
	s := mustParse(t, `permit (principal, action, resource);`)
	e := NewEngine(s, testJurisdict)
	email := mustField(t, "users", "email")
	if !e.Allowed(vettedCustodian, custos.ActionWrite, email, Context{}) {
		t.Error("write denied under permit-all")
	}
	if e.Allowed(vettedCustodian, custos.ActionErase, email, Context{}) {
		t.Error("erase allowed on a field")
	}
	if e.Allowed(vettedCustodian, "fly", email, Context{}) {
		t.Error("an unknown action allowed")
	}
	if e.AllowedOnSubject(vettedCustodian, custos.ActionWrite, "s", "US", Context{}) {
		t.Error("write allowed on a subject")
	}
	if !e.AllowedOnSubject(vettedCustodian, custos.ActionErase, "s", "US", Context{}) {
		t.Error("erase denied under permit-all")
	}
}

func TestForbidOverrides(t *testing.T) {
	e := NewEngine(mustParse(t, `
permit (principal, action, resource);
forbid (principal, action == Custos::Action::"read-clear", resource is Custos::Field)
when { resource.class == "protected" };`), testJurisdict)
	got := e.Forms(operatorAbroad, Context{}, []Field{mustField(t, "users", "email"), mustField(t, "videos", "title")})
	if want := []custos.Form{custos.FormToken, custos.FormClear}; !slices.Equal(got, want) {
		t.Errorf("Forms = %v, want %v", got, want)
	}
}

// TestEvaluationErrorDenies checks that a policy failing at run time denies,
// even where Cedar alone would allow.
func TestEvaluationErrorDenies(t *testing.T) {
	const overflow = `9223372036854775807 + (if context.justified then 1 else 0) < 0`
	for name, text := range map[string]string{
		"failing permit": `permit (principal, action, resource) when { ` + overflow + ` };
permit (principal, action, resource);`,
		"failing forbid": `forbid (principal, action, resource) when { ` + overflow + ` };
permit (principal, action, resource);`,
	} {
		t.Run(name, func(t *testing.T) {
			e := NewEngine(mustParse(t, text), testJurisdict)
			email := mustField(t, "users", "email")
			if !e.Allowed(vettedCustodian, custos.ActionWrite, email, Context{}) {
				t.Error("denied without an evaluation error")
			}
			if e.Allowed(vettedCustodian, custos.ActionWrite, email, Context{Justified: true}) {
				t.Error("allowed despite an evaluation error")
			}
			if f := e.Forms(vettedCustodian, Context{Justified: true}, []Field{email})[0]; f != custos.FormWithheld {
				t.Errorf("read released %s despite an evaluation error", f)
			}
		})
	}
}

func TestNilSetDeniesAll(t *testing.T) {
	e := NewEngine(nil, testJurisdict)
	if f := e.Forms(vettedCustodian, Context{Purpose: "x"}, []Field{mustField(t, "users", "email")}); f[0] != custos.FormWithheld {
		t.Errorf("a nil set released %s", f[0])
	}
	if e.AllowedOnSubject(vettedCustodian, custos.ActionErase, "s", "US", Context{}) {
		t.Error("a nil set allowed an erasure")
	}
	if e.Version() == "" {
		t.Error("a nil set has no version")
	}
}

func TestReplace(t *testing.T) {
	e := NewEngine(starterSet(t), testJurisdict)
	email := mustField(t, "users", "email")
	before := e.Version()
	if f := e.Forms(operatorAbroad, Context{}, []Field{email})[0]; f != custos.FormToken {
		t.Fatalf("starter form %s", f)
	}
	// A set that fails to parse never reaches the engine.
	s, err := Parse(map[string][]byte{"bad.cedar": []byte(`permit (principal, action, resource) when { principal.nope };`)})
	if err == nil || s != nil {
		t.Fatalf("Parse of an invalid set = %v, %v", s, err)
	}
	if e.Version() != before {
		t.Error("a failed parse changed the engine")
	}
	// Replacing drops cached decisions.
	e.Replace(mustParse(t, `permit (principal, action == Custos::Action::"read-clear", resource);`))
	if e.Version() == before {
		t.Error("Replace kept the version")
	}
	if f := e.Forms(operatorAbroad, Context{}, []Field{email})[0]; f != custos.FormClear {
		t.Errorf("after Replace the form is %s, want clear", f)
	}
}

// TestReplaceConcurrent runs Forms and Allowed while the set is replaced:
// every call must decide against one set from start to end.
func TestReplaceConcurrent(t *testing.T) {
	clear := mustParse(t, `permit (principal, action in [Custos::Action::"read-clear", Custos::Action::"write"], resource);`)
	token := mustParse(t, `permit (principal, action == Custos::Action::"read-token", resource);`)
	e := NewEngine(clear, testJurisdict)
	var fields []Field
	for c, fs := range starterSchema {
		for n := range fs {
			fields = append(fields, mustField(t, c, n))
		}
	}
	n := 2000
	if testing.Short() {
		n = 200
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range n {
			e.Replace([]*Set{clear, token}[i%2])
		}
	})
	for g := range 4 {
		wg.Go(func() {
			p := custos.Principal{ID: fmt.Sprint("p", g%2), Org: custos.OrgOperator}
			for range n {
				got := e.Forms(p, Context{}, fields)
				if got[0] != custos.FormClear && got[0] != custos.FormToken {
					t.Errorf("form %s", got[0])
					return
				}
				for _, f := range got {
					if f != got[0] {
						t.Errorf("one call saw two sets: %v", got)
						return
					}
				}
				e.Allowed(p, custos.ActionWrite, fields[0], Context{})
				_ = e.Version()
			}
		})
	}
	wg.Wait()
}

func TestCacheBounded(t *testing.T) {
	c := newCache()
	fields := []Field{{Collection: "users", Name: "email"}, {Collection: "users", Name: "phone"}}
	forms := []custos.Form{custos.FormToken, custos.FormMasked}
	for i := range maxCacheEntries {
		c.store(fmt.Sprint(i), "", fields, forms)
	}
	total := 0
	for i := range c.shards {
		total += len(c.shards[i].m)
	}
	if total > maxCacheEntries || total < maxCacheEntries/4 {
		t.Errorf("cache holds %d decisions, want at most %d and not much less", total, maxCacheEntries)
	}
	// A call with more fields than a shard holds is decided, not cached.
	many := make([]Field, maxShardEntries+1)
	for i := range many {
		many[i] = Field{Collection: "c", Name: fmt.Sprint(i)}
	}
	c.store("big", "", many, make([]custos.Form, len(many)))
	if got := make([]custos.Form, len(many)); c.lookup("big", "", many, got) {
		t.Error("an oversized call was cached")
	}
}

func TestRequestKey(t *testing.T) {
	p := vettedCustodian
	keys := map[string]Context{}
	for _, ctx := range []Context{
		{}, {Purpose: "a"}, {Reason: "a"}, {Purpose: "a", Reason: "b"}, {Purpose: "ab"}, {Purpose: "a\x01b"},
		{Justified: true}, {Approved: true}, {BreakGlass: true}, {Justified: true, Approved: true},
	} {
		k, ok := requestKey(p, ctx)
		if !ok {
			t.Fatalf("%+v is not cacheable", p)
		}
		if prev, ok := keys[k]; ok {
			t.Errorf("contexts %+v and %+v share a key", prev, ctx)
		}
		keys[k] = ctx
	}
}

// TestAmbiguousPrincipalsUncached checks that principals with attributes
// no verified credential can carry are decided without the cache, and that
// roles "a" and "b" are never taken for the role "a,b", cached or not.
func TestAmbiguousPrincipalsUncached(t *testing.T) {
	s := mustParse(t, `permit (principal, action == Custos::Action::"read-clear", resource)
when { principal.roles.contains("a") && principal.roles.contains("b") };`)
	e := NewEngine(s, testJurisdict)
	email := mustField(t, "users", "email")
	two := custos.Principal{ID: "x", Roles: []string{"a", "b"}}
	one := custos.Principal{ID: "x", Roles: []string{"a,b"}}
	for range 2 {
		if f := e.Forms(two, Context{}, []Field{email})[0]; f != custos.FormClear {
			t.Errorf("roles a and b: %s", f)
		}
		if f := e.Forms(one, Context{}, []Field{email})[0]; f != custos.FormWithheld {
			t.Errorf("role \"a,b\": %s", f)
		}
	}
	for _, p := range []custos.Principal{one, {ID: "x\x00"}, {Roles: []string{""}}} {
		if _, ok := requestKey(p, Context{}); ok {
			t.Errorf("%+v is cacheable", p)
		}
	}
}
