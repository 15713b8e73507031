package policy

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/custos/custos"
)

const (
	starterDir    = "../starter/policies"
	starterTests  = "../starter/policy_tests.yaml"
	testJurisdict = "US"
)

// starterSchema is the schema the starter policy tests are written for.
var starterSchema = map[string]map[string]Field{
	"users": {
		"id":        {Class: custos.ClassProtected, Type: custos.TypeID},
		"handle":    {Class: custos.ClassPublic, Type: custos.TypeString},
		"email":     {Class: custos.ClassProtected, Type: custos.TypeEmail},
		"phone":     {Class: custos.ClassProtected, Type: custos.TypePhone},
		"birthdate": {Class: custos.ClassProtected, Type: custos.TypeDate},
		"ip":        {Class: custos.ClassProtected, Type: custos.TypeIP},
		"country":   {Class: custos.ClassBusinessMetric, Type: custos.TypeString},
	},
	"videos": {
		"id":          {Class: custos.ClassPublic, Type: custos.TypeID},
		"creator":     {Class: custos.ClassInterop, Type: custos.TypeID},
		"title":       {Class: custos.ClassPublic, Type: custos.TypeString},
		"duration_ms": {Class: custos.ClassPublic, Type: custos.TypeInt},
	},
	"watch_events": {
		"user":       {Class: custos.ClassProtected, Type: custos.TypeID},
		"video":      {Class: custos.ClassPublic, Type: custos.TypeID},
		"watched_ms": {Class: custos.ClassProtected, Type: custos.TypeInt},
		"at":         {Class: custos.ClassProtected, Type: custos.TypeTimestamp},
	},
}

// starterField resolves a field of starterSchema.
func starterField(collection, name string) (Field, bool) {
	f, ok := starterSchema[collection][name]
	f.Collection, f.Name = collection, name
	return f, ok
}

func mustField(tb testing.TB, collection, name string) Field {
	tb.Helper()
	f, ok := starterField(collection, name)
	if !ok {
		tb.Fatalf("no field %s.%s in the starter schema", collection, name)
	}
	return f
}

func starterText(tb testing.TB) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(starterDir, "custos.cedar"))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func starterSet(tb testing.TB) *Set {
	tb.Helper()
	s, err := LoadDir(starterDir)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func starterCases(tb testing.TB) []Case {
	tb.Helper()
	b, err := os.ReadFile(starterTests)
	if err != nil {
		tb.Fatal(err)
	}
	cases, err := ParseTests(b)
	if err != nil {
		tb.Fatal(err)
	}
	return cases
}

func mustParse(tb testing.TB, text string) *Set {
	tb.Helper()
	s, err := Parse(map[string][]byte{"test.cedar": []byte(text)})
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// Principals of the tests.
var (
	vettedCustodian = custos.Principal{ID: "alice", Issuer: "idp", Org: custos.OrgCustodian, Loc: "US", Vetted: true}
	operatorAbroad  = custos.Principal{ID: "frank", Issuer: "idp", Org: custos.OrgOperator, Loc: "CN"}
	operatorService = custos.Principal{ID: "api", Issuer: "idp", Org: custos.OrgOperator, Loc: "US", Roles: []string{"service"}}
	monitor         = custos.Principal{ID: "mona", Issuer: "idp", Org: custos.OrgMonitor, Loc: "US"}
)
