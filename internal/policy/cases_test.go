package policy

import (
	"fmt"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestParseTestsErrors(t *testing.T) {
	for _, tt := range []struct {
		name, table string
		want        string // part of the error
	}{
		{"empty", "", "no cases"},
		{"empty list", "[]", "no cases"},
		{"not a list", "name: x\n", "list of cases"},
		{"two documents", "- {name: a, field: users.email, want: clear}\n---\n- {name: b}\n", "one YAML document"},
		{"unknown key", "- name: a\n  field: users.email\n  want: clear\n- name: b\n  field: users.email\n  wnat: clear\n", "case 2"},
		{"unknown principal key", "- name: a\n  principal: {id: x, vettted: true}\n  field: users.email\n  want: clear\n", "vettted"},
		{"wrong type", "- name: a\n  principal: {vetted: maybe}\n  field: users.email\n  want: clear\n", "case 1"},
		{"no name", "- {field: users.email, want: clear}\n", "case 1 (line 1)"},
		{"bad form", "- {name: a, field: users.email, want: allow}\n", "case 1"},
		{"bad outcome", "- {name: a, action: write, field: users.email, want: clear}\n", "case 1"},
		{"unknown action", "- {name: ok, field: users.email, want: clear}\n- {name: a, action: fly, field: users.email, want: allow}\n", "case 2 (line 2)"},
		{"bad field", "- {name: a, field: email, want: clear}\n", "collection.field"},
		{"subject without residency", "- {name: a, action: erase, subject: {id: s}, want: allow}\n", "residency"},
		{"subject action on a field", "- {name: a, action: erase, field: users.email, subject: {residency: US}, want: allow}\n", "no field"},
		{"algorithm action without a name", "- {name: a, action: algo-read, want: allow}\n", "algorithm name"},
		{"algorithm action on a field", "- {name: a, action: algo-submit, algorithm: x, field: users.email, want: allow}\n", "no field"},
		{"syntax", "- {name: a\n", "couldn't parse"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseTests([]byte(tt.table))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseTests error = %v, want one saying %q", err, tt.want)
			}
		})
	}
}

func TestParseTestsBounds(t *testing.T) {
	var b strings.Builder
	for i := range maxCases + 1 {
		fmt.Fprintf(&b, "- {name: c%d, field: users.email, want: clear}\n", i)
	}
	if _, err := ParseTests([]byte(b.String())); err == nil || !strings.Contains(err.Error(), "cases") {
		t.Errorf("ParseTests of too many cases: %v", err)
	}
	big := "- name: " + strings.Repeat("x", maxTableBytes) + "\n"
	if _, err := ParseTests([]byte(big)); err == nil {
		t.Error("ParseTests of an oversized table succeeded")
	}
}

func TestParseTestsStarter(t *testing.T) {
	cases := starterCases(t)
	c := cases[0]
	if c.Principal.Org != "custodian" || !c.Principal.Vetted || c.Field != "users.email" || c.Want != "clear" || c.Purpose != "support" {
		t.Errorf("first starter case = %+v", c)
	}
	// A table written back parses to the same cases.
	b, err := yaml.Marshal(cases)
	if err != nil {
		t.Fatal(err)
	}
	again, err := ParseTests(b)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(again) != fmt.Sprint(cases) {
		t.Error("the starter table does not round-trip")
	}
}

func TestRunTestsReportsFailures(t *testing.T) {
	cases, err := ParseTests([]byte(`
- name: right
  principal: {org: operator, loc: CN}
  field: users.email
  want: token
- name: wrong
  principal: {org: operator, loc: CN}
  field: users.email
  want: clear
- name: wrong action
  principal: {org: operator, loc: CN}
  action: write
  field: users.email
  want: allow
`))
	if err != nil {
		t.Fatal(err)
	}
	failures, err := RunTests(NewEngine(starterSet(t), testJurisdict), cases, starterField)
	if err != nil {
		t.Fatal(err)
	}
	if len(failures) != 2 || failures[0].Case.Name != "wrong" || failures[0].Got != "token" || failures[1].Got != "deny" {
		t.Errorf("failures = %+v", failures)
	}
}

// anyField resolves every field, so that fuzzed tables reach the engine.
func anyField(collection, name string) (Field, bool) {
	if f, ok := starterField(collection, name); ok {
		return f, true
	}
	return Field{Collection: collection, Name: name, Class: "protected", Type: "string"}, true
}

func FuzzParseTests(f *testing.F) {
	f.Add([]byte("- {name: a, principal: {org: operator, loc: CN, roles: [service, service]}, field: users.email, want: token}\n"))
	f.Add([]byte("- {name: a, action: erase, subject: {residency: US}, context: {justified: true, break_glass: true}, want: allow}\n"))
	f.Add([]byte("- &a {name: a, field: users.email, want: clear}\n- *a\n"))
	f.Add([]byte("- name: a\n  action: detokenize\n  field: x.y\n  context: {reason: legal, approved: true}\n  want: deny\n"))
	e := NewEngine(starterSet(f), testJurisdict)
	f.Fuzz(func(t *testing.T, table []byte) {
		cases, err := ParseTests(table)
		if err != nil {
			return
		}
		if len(cases) == 0 {
			t.Fatal("ParseTests accepted a table without cases")
		}
		failures, err := RunTests(e, cases, anyField)
		if err != nil {
			t.Fatalf("RunTests refused a case ParseTests accepted: %v", err)
		}
		if len(failures) > len(cases) {
			t.Fatal("more failures than cases")
		}
	})
}
