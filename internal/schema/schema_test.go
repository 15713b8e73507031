package schema

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/custos/custos"
)

func TestStarterSchema(t *testing.T) {
	s, err := Load(filepath.Join("..", "starter", "schema.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		subject string
		fields  []string
	}{
		"users":        {"id", []string{"id", "handle", "email", "phone", "birthdate", "ip", "country"}},
		"videos":       {"creator", []string{"id", "creator", "title", "duration_ms"}},
		"watch_events": {"user", []string{"user", "video", "watched_ms", "at"}},
	}
	if len(s.Collections) != len(want) {
		t.Errorf("got %d collections, want %d", len(s.Collections), len(want))
	}
	for name, w := range want {
		c, err := s.Collection(name)
		if err != nil {
			t.Fatal(err)
		}
		if c.Subject != w.subject || !c.Fields[c.Subject].Required {
			t.Errorf("%s: subject %q (required %v), want %q, required", name, c.Subject, c.Fields[c.Subject].Required, w.subject)
		}
		if strings.Join(c.Order, ",") != strings.Join(w.fields, ",") {
			t.Errorf("%s: fields %v, want %v", name, c.Order, w.fields)
		}
	}
	classes := map[string]custos.Class{
		"users.email": custos.ClassProtected, "users.handle": custos.ClassPublic,
		"users.country": custos.ClassBusinessMetric, "videos.creator": custos.ClassInterop,
		"watch_events.at": custos.ClassProtected, "watch_events.video": custos.ClassPublic,
	}
	for path, want := range classes {
		cname, fname, _ := strings.Cut(path, ".")
		if got := s.Collections[cname].Fields[fname].Class; got != want {
			t.Errorf("%s: class %s, want %s", path, got, want)
		}
	}
	if got := s.Collections["watch_events"].Fields["at"].Type; got != custos.TypeTimestamp {
		t.Errorf("watch_events.at: type %s, want timestamp", got)
	}
	if len(s.Digest) != 64 {
		t.Errorf("digest %q, want 64 hex digits", s.Digest)
	}
}

const good = `version: 1
collections:
  users:
    subject: id
    fields:
      id: {type: id, class: protected}
      bio:
        type: string
        class: public
        max: 100
        required: true
        description: what the user says of themselves
      avatar: {type: bytes, class: public, max: 1048576}
`

func TestParseGood(t *testing.T) {
	s, err := Parse("s.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	c := s.Collections["users"]
	if got := strings.Join(c.Order, ","); got != "id,bio,avatar" {
		t.Errorf("order %s", got)
	}
	bio := c.Fields["bio"]
	want := Field{Name: "bio", Type: custos.TypeString, Class: custos.ClassPublic, Required: true, Max: 100,
		Description: "what the user says of themselves"}
	if *bio != want {
		t.Errorf("bio = %+v, want %+v", *bio, want)
	}
	if id := c.Fields["id"]; !id.Required || id.Max != DefaultMax {
		t.Errorf("id = %+v, want required with default max", *id)
	}
	if _, err := s.Collection("nope"); custos.ErrorCode(err) != custos.CodeUnknownCollection {
		t.Errorf("Collection(nope) = %v, want %s", err, custos.CodeUnknownCollection)
	}
	if _, err := c.Field("nope"); custos.ErrorCode(err) != custos.CodeUnknownField {
		t.Errorf("Field(nope) = %v, want %s", err, custos.CodeUnknownField)
	}
	s2, _ := Parse("other", []byte(good+"\n"))
	if s2.Digest == s.Digest {
		t.Error("digest does not depend on the file")
	}
}

// users builds a schema with one collection users whose fields are the
// given YAML lines, indented under fields.
func users(fields ...string) string {
	return "version: 1\ncollections:\n  users:\n    subject: id\n    fields:\n      " + strings.Join(fields, "\n      ") + "\n"
}

func TestParseBad(t *testing.T) {
	id := "id: {type: id, class: protected}"
	tests := []struct {
		name, yaml, want string
	}{
		{"empty", "", "s.yaml: empty schema"},
		{"comments only", "# nothing\n", "s.yaml: empty schema"},
		{"syntax", "version: 1\n  collections: [\n", "s.yaml: yaml: line"},
		{"two documents", good + "---\n" + good, "s.yaml: more than one YAML document"},
		{"not a mapping", "- 1\n", "s.yaml:1:1: (top): want a mapping"},
		{"no version", "collections: {}\n", `s.yaml:1:1: (top): missing key "version"`},
		{"version 2", "version: 2\ncollections: {}\n", "s.yaml:1:10: version: unsupported version 2 (want 1)"},
		{"version string", "version: \"1\"\ncollections: {}\n", "s.yaml:1:10: version: want an integer"},
		{"unknown top key", "version: 1\nowner: me\n", `s.yaml:2:1: (top): unknown key "owner" (want one of version, collections)`},
		{"duplicate top key", "version: 1\nversion: 1\n", `s.yaml:2:1: (top): duplicate key "version"`},
		{"no collections", "version: 1\ncollections: {}\n", "s.yaml:2:14: collections: no collections declared"},
		{"collections null", "version: 1\ncollections:\n", "s.yaml:2:13: collections: want a mapping"},
		{"bad collection name", "version: 1\ncollections:\n  Users: {subject: id, fields: {id: {type: id, class: public}}}\n",
			`s.yaml:3:3: collections: invalid collection name "Users"`},
		{"collection unknown key", "version: 1\ncollections:\n  users:\n    subject: id\n    owner: x\n    fields: {}\n",
			`s.yaml:5:5: collections.users: unknown key "owner" (want one of subject, fields)`},
		{"no subject", "version: 1\ncollections:\n  users:\n    fields: {id: {type: id, class: public}}\n",
			`s.yaml:4:5: collections.users: missing key "subject"`},
		{"subject not a field", strings.Replace(users(id), "subject: id", "subject: who", 1),
			`s.yaml:4:14: collections.users.subject: no field "who" in this collection`},
		{"subject not an id", strings.Replace(users(id, "e: {type: email, class: protected}"), "subject: id", "subject: e", 1),
			`s.yaml:4:14: collections.users.subject: field "e" has type email (want id)`},
		{"unknown class", users(id, "email: {type: email, class: secret}"),
			`s.yaml:7:35: collections.users.fields.email.class: unknown class "secret" (want one of protected, public, business-metric, interop, creator)`},
		{"unknown type", users(id, "n: {type: integer, class: public}"),
			`s.yaml:7:17: collections.users.fields.n.type: unknown type "integer" (want one of id, string,`},
		{"missing class", users(id, "n: {type: int}"),
			`s.yaml:7:10: collections.users.fields.n: missing key "class"`},
		{"unknown field key", users(id, "n: {type: int, class: public, secret: true}"),
			`s.yaml:7:37: collections.users.fields.n: unknown key "secret" (want one of type, class, required, max, description)`},
		{"bad field name", users(id, "Email: {type: email, class: protected}"),
			`s.yaml:7:7: collections.users.fields: invalid field name "Email"`},
		{"long field name", users(id, strings.Repeat("a", 64)+": {type: int, class: public}"),
			`s.yaml:7:7: collections.users.fields: invalid field name "aaaa`},
		{"duplicate field", users(id, id), `s.yaml:7:7: collections.users.fields: duplicate key "id"`},
		{"required yes", users(id, "n: {type: int, class: public, required: yes}"),
			"s.yaml:7:47: collections.users.fields.n.required: want true or false"},
		{"max on int", users(id, "n: {type: int, class: public, max: 8}"),
			"s.yaml:7:42: collections.users.fields.n.max: max applies to string and bytes fields only"},
		{"max zero", users(id, "n: {type: string, class: public, max: 0}"),
			"s.yaml:7:45: collections.users.fields.n.max: max 0 is not between 1 and 1048576"},
		{"max over cap", users(id, "n: {type: bytes, class: public, max: 1048577}"),
			"s.yaml:7:44: collections.users.fields.n.max: max 1048577 is not between 1 and 1048576"},
		{"max huge", users(id, "n: {type: bytes, class: public, max: 99999999999999999999999}"),
			"s.yaml:7:44: collections.users.fields.n.max: want an integer"},
		{"field not a mapping", users(id, "n: int"), "s.yaml:7:10: collections.users.fields.n: want a mapping"},
		{"description not a string", users(id, "n: {type: int, class: public, description: [a]}"),
			"s.yaml:7:50: collections.users.fields.n.description: want a string"},
		{"alias", "version: 1\ncollections:\n  users:\n    subject: id\n    fields:\n      id: &f {type: id, class: public}\n      x: *f\n",
			"s.yaml:7:10: collections.users.fields.x: YAML aliases are not allowed"},
		{"merge key", users(id, "x: {<<: {type: id}, class: public}"),
			`s.yaml:7:11: collections.users.fields.x: unknown key "<<"`},
		{"complex key", users(id, "? [a]\n      : {type: int, class: public}"),
			"s.yaml:7:9: collections.users.fields: want a plain key"},
		{"too large", good + strings.Repeat("#", MaxFileSize), "s.yaml: schema is larger than 1048576 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("s.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatalf("Parse succeeded, want error %q", tt.want)
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error\n  %v\nwant prefix\n  %s", err, tt.want)
			}
		})
	}
}

func TestParseBounds(t *testing.T) {
	var b strings.Builder
	b.WriteString("version: 1\ncollections:\n")
	for i := range MaxCollections + 1 {
		b.WriteString("  c" + strconv.Itoa(i) + ": {subject: id, fields: {id: {type: id, class: public}}}\n")
	}
	if _, err := Parse("s.yaml", []byte(b.String())); err == nil || !strings.Contains(err.Error(), "more than 256 collections") {
		t.Errorf("too many collections: %v", err)
	}
	fields := []string{"id: {type: id, class: public}"}
	for i := range MaxFields {
		fields = append(fields, "f"+strconv.Itoa(i)+": {type: int, class: public}")
	}
	if _, err := Parse("s.yaml", []byte(users(fields...))); err == nil || !strings.Contains(err.Error(), "more than 256 fields") {
		t.Errorf("too many fields: %v", err)
	}
	if _, err := Parse("s.yaml", []byte(users(fields[:MaxFields]...))); err != nil {
		t.Errorf("%d fields: %v", MaxFields, err)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "schema.yaml")
	if err := os.WriteFile(path, []byte("version: 3\ncollections: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if err == nil || !strings.HasPrefix(err.Error(), path+":1:10: version:") {
		t.Errorf("Load: %v, want an error naming the file", err)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Error("Load of a missing file succeeded")
	}
}

func FuzzParse(f *testing.F) {
	starter, err := os.ReadFile(filepath.Join("..", "starter", "schema.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(starter)
	f.Add([]byte(good))
	f.Add([]byte(users("id: {type: id, class: protected}", "x: &a {type: int, class: public}", "y: *a")))
	f.Add([]byte("version: 1\ncollections: {a: {subject: b, fields: {b: {type: id, class: interop, max: 3}}}}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		// parse, not Parse: Parse refuses what check refuses, so only the
		// walk alone can be held to check.
		s, err := parse("f.yaml", data)
		if err != nil {
			if len(err.Error()) > 4096 {
				t.Fatalf("error of %d bytes", len(err.Error()))
			}
			return
		}
		if err := s.check(); err != nil {
			t.Fatalf("parsed schema does not re-validate: %v", err)
		}
	})
}
