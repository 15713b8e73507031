package policy

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadDirStarter(t *testing.T) {
	s := starterSet(t)
	if s.Len() < 10 {
		t.Errorf("starter set has %d policies, want at least 10", s.Len())
	}
	if len(s.Version()) != 16 {
		t.Errorf("Version() = %q, want 16 hex digits", s.Version())
	}
}

func TestLoadDir(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadDir(dir); err == nil {
		t.Error("LoadDir of an empty directory succeeded")
	}
	if _, err := LoadDir(filepath.Join(dir, "missing")); err == nil {
		t.Error("LoadDir of a missing directory succeeded")
	}
	write := func(name, text string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("README.md", "not a policy")
	if _, err := LoadDir(dir); err == nil {
		t.Error("LoadDir without .cedar files succeeded")
	}
	write("b.cedar", `permit (principal, action == Custos::Action::"read-token", resource);`)
	write("a.cedar", `permit (principal, action == Custos::Action::"read-masked", resource);`)
	s, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != 2 {
		t.Errorf("Len() = %d, want 2", s.Len())
	}
	write("c.cedar", "permit (principal, action, resource)\nwhen { principal.vetid };")
	_, err = LoadDir(dir)
	if err == nil || !strings.Contains(err.Error(), "c.cedar:1:1") {
		t.Errorf("LoadDir error = %v, want one naming c.cedar:1:1", err)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tt := range []struct {
		name, text string
		line, col  int
		msg        string // part of the message
	}{
		{"syntax", "permit (principal, action, resource)\nwhen { principal.org == ; };", 2, 27, "invalid primary"},
		{"unterminated", "permit (principal, action, resource);\nforbid (", 2, 9, ""},
		{"unknown attribute", "\n\npermit (principal, action, resource)\nwhen { principal.vetid };", 3, 1, "vetid"},
		{"unknown action", `permit (principal, action == Custos::Action::"reed", resource);`, 1, 1, "reed"},
		{"unknown entity type", `permit (principal is Custos::User, action, resource);`, 1, 1, "Custos::User"},
		{"type error", `permit (principal, action, resource) when { principal.vetted == "yes" || principal.roles };`, 1, 1, ""},
		{"attribute of the wrong resource", `permit (principal, action == Custos::Action::"erase", resource) when { resource.class == "public" };`, 1, 1, "class"},
		{"missing context attribute", `permit (principal, action, resource) when { context.urgent };`, 1, 1, "urgent"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(map[string][]byte{"x.cedar": []byte(tt.text)})
			pe, ok := errors.AsType[*ParseError](err)
			if !ok {
				t.Fatalf("Parse error = %v, want a *ParseError", err)
			}
			if pe.File != "x.cedar" || pe.Line != tt.line || pe.Column != tt.col {
				t.Errorf("error at %s:%d:%d, want x.cedar:%d:%d (%v)", pe.File, pe.Line, pe.Column, tt.line, tt.col, err)
			}
			if !strings.Contains(pe.Msg, tt.msg) {
				t.Errorf("error %q does not say %q", pe.Msg, tt.msg)
			}
			if strings.Contains(err.Error(), "<input>") {
				t.Errorf("error %q does not name its file", err)
			}
		})
	}
}

func TestParseDuplicateID(t *testing.T) {
	p := `@id("same") permit (principal, action, resource);`
	_, err := Parse(map[string][]byte{"a.cedar": []byte(p), "b.cedar": []byte(p)})
	if err == nil || !strings.Contains(err.Error(), "b.cedar") {
		t.Errorf("Parse error = %v, want one naming b.cedar", err)
	}
}

func TestParseBounds(t *testing.T) {
	big := strings.Repeat("// filler\n", maxSetBytes/10+1)
	if _, err := Parse(map[string][]byte{"big.cedar": []byte(big)}); err == nil {
		t.Error("Parse of an oversized set succeeded")
	}
	many := strings.Repeat("permit (principal, action, resource);\n", maxPolicies+1)
	if _, err := Parse(map[string][]byte{"many.cedar": []byte(many)}); err == nil {
		t.Error("Parse of too many policies succeeded")
	}
	if _, err := Parse(map[string][]byte{"": nil}); err == nil {
		t.Error("Parse of a file without a name succeeded")
	}
}

func TestVersion(t *testing.T) {
	a := []byte(`permit (principal, action, resource);`)
	b := []byte(`forbid (principal, action, resource);`)
	v := func(files map[string][]byte) string {
		t.Helper()
		s, err := Parse(files)
		if err != nil {
			t.Fatal(err)
		}
		return s.Version()
	}
	base := v(map[string][]byte{"a.cedar": a, "b.cedar": b})
	for i := 0; i < 10; i++ { // map order must not matter
		if got := v(map[string][]byte{"b.cedar": b, "a.cedar": a}); got != base {
			t.Fatalf("Version changed from %s to %s", base, got)
		}
	}
	for name, files := range map[string]map[string][]byte{
		"content":  {"a.cedar": a, "b.cedar": append([]byte("// changed\n"), b...)},
		"name":     {"a.cedar": a, "c.cedar": b},
		"boundary": {"a.cedar": append(append([]byte{}, a...), b...), "b.cedar": nil},
		"one file": {"a.cedar": a},
	} {
		if v(files) == base {
			t.Errorf("a change of %s keeps the version", name)
		}
	}
	var zero *Set
	if zero.Version() == "" || zero.Len() != 0 {
		t.Error("a nil set has no version")
	}
}

func FuzzParse(f *testing.F) {
	f.Add(starterText(f))
	for _, s := range []string{
		`permit (principal, action, resource);`,
		`forbid (principal is Custos::Principal, action in [Custos::Action::"erase"], resource is Custos::Subject) unless { principal.vetted };`,
		`permit (principal, action, resource) when { [1, 2].containsAll([1]) && ip("10.0.0.1").isLoopback() && decimal("1.5") > decimal("1.0") };`,
		`@id("x") permit (principal == Custos::Principal::"a", action, resource) when { context.purpose like "*a\*b" };`,
		`permit (principal, action, resource) when { if context.approved then resource.jurisdiction has x else false };`,
		"permit (principal, action, resource)\nwhen { principal.org == ; };",
		`permit (?principal, action, resource);`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, text []byte) {
		s, err := Parse(map[string][]byte{"fuzz.cedar": text})
		if err != nil {
			if s != nil {
				t.Fatal("Parse returned a set and an error")
			}
			return
		}
		e := NewEngine(s, testJurisdict)
		fields := []Field{mustField(t, "users", "email"), mustField(t, "videos", "title")}
		e.Forms(vettedCustodian, Context{Purpose: "x", Justified: true}, fields)
		e.Allowed(operatorService, "detokenize", fields[0], Context{})
		e.AllowedOnSubject(monitor, "erase", "s", "US", Context{})
	})
}
