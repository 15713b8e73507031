package flow

import (
	"bytes"
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/custos/custos/internal/schema"
)

const testSchema = `version: 1
collections:
  users:
    subject: id
    fields:
      id:      {type: id, class: protected}
      handle:  {type: string, class: public}
      email:   {type: email, class: protected}
      country: {type: string, class: business-metric}
`

const goodFlows = `version: 1
flows:
  - name: users-abroad
    recipient: operator
    jurisdiction: SG
    collection: users
    fields: {handle: clear, email: token, country: aggregate}
    rate: 100
    sample_rate: 0.5
`

func testSchemaT(t testing.TB) *schema.Schema {
	t.Helper()
	sc, err := schema.Parse("schema.yaml", []byte(testSchema))
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

func TestParse(t *testing.T) {
	s, err := Parse("flows.yaml", []byte(goodFlows))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Check(testSchemaT(t)); err != nil {
		t.Fatal(err)
	}
	f, ok := s.Flow("users-abroad")
	if !ok || f.Recipient != "operator" || f.Jurisdiction != "SG" || *f.SampleRate != 0.5 {
		t.Fatalf("flow %+v", f)
	}
	if got := strings.Join(f.Exported(), ","); got != "email,handle" {
		t.Errorf("exported %s, want email,handle", got)
	}
	empty, err := Parse("flows.yaml", nil)
	if err != nil || len(empty.All()) != 0 {
		t.Errorf("empty file: %v, %d flows", err, len(empty.All()))
	}
}

func TestParseRefuses(t *testing.T) {
	base := "version: 1\nflows:\n  - name: f\n    recipient: operator\n    jurisdiction: SG\n    collection: users\n    rate: 10\n"
	for _, tc := range []struct{ name, text, want string }{
		{"unknown key", base + "    fields: {handle: clear}\n    colour: red\n", "colour"},
		{"bad form", base + "    fields: {handle: plain}\n", "form must be"},
		{"no fields", base, "fields must list"},
		{"bad name", strings.Replace(base, "name: f", "name: F!", 1) + "    fields: {handle: clear}\n", "name must be"},
		{"bad jurisdiction", strings.Replace(base, "SG", "Singapore", 1) + "    fields: {handle: clear}\n", "jurisdiction"},
		{"zero rate", strings.Replace(base, "rate: 10", "rate: 0", 1) + "    fields: {handle: clear}\n", "rate must be"},
		{"sample rate", base + "    fields: {handle: clear}\n    sample_rate: 2\n", "sample_rate"},
		{"twice", base + "    fields: {handle: clear}\n" + strings.TrimPrefix(base, "version: 1\nflows:\n") + "    fields: {handle: clear}\n", "declared twice"},
		{"version", "version: 2\n", "version 2"},
		{"too large", strings.Repeat("#", MaxFileSize+1), "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("flows.yaml", []byte(tc.text))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestCheckRefuses(t *testing.T) {
	sc := testSchemaT(t)
	for _, tc := range []struct{ name, fields, coll, want string }{
		{"protected in clear", "{email: clear}", "users", "protected and cannot leave in clear"},
		{"unknown field", "{shoe_size: clear}", "users", "no field"},
		{"unknown collection", "{handle: clear}", "videos", "no collection"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := "flows:\n  - {name: f, recipient: operator, jurisdiction: SG, collection: " + tc.coll + ", rate: 1, fields: " + tc.fields + "}\n"
			s, err := Parse("flows.yaml", []byte(text))
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Check(sc); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func testKeys(t testing.TB, b byte) *Keys {
	t.Helper()
	k, err := NewKeys(bytes.Repeat([]byte{b}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestCursor(t *testing.T) {
	k := testKeys(t, 1)
	c := k.Cursor("f", "u17")
	if strings.Contains(c, "u17") {
		t.Fatal("cursor shows the record id")
	}
	if last, err := k.OpenCursor("f", c); err != nil || last != "u17" {
		t.Fatalf("OpenCursor = %q, %v", last, err)
	}
	// Flip a bit of the tag: replacing the last characters with fixed
	// ones would leave one cursor in 256 as it was.
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)-1] ^= 1
	altered := base64.RawURLEncoding.EncodeToString(raw)
	for name, bad := range map[string]func() (string, error){
		"other flow": func() (string, error) { return k.OpenCursor("g", c) },
		"other key":  func() (string, error) { return testKeys(t, 2).OpenCursor("f", c) },
		"altered":    func() (string, error) { return k.OpenCursor("f", altered) },
		"not base64": func() (string, error) { return k.OpenCursor("f", "!!") },
		"too long":   func() (string, error) { return k.OpenCursor("f", strings.Repeat("A", MaxCursor+1)) },
		"short":      func() (string, error) { return k.OpenCursor("f", "AAAA") },
	} {
		if _, err := bad(); err != ErrCursor {
			t.Errorf("%s: error %v, want ErrCursor", name, err)
		}
	}
}

func TestSampled(t *testing.T) {
	k := testKeys(t, 1)
	n := 0
	for i := range 10000 {
		id := "r" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + time.Duration(i).String()
		s := k.Sampled("f", id, 0.1)
		if s != k.Sampled("f", id, 0.1) {
			t.Fatal("sampling is not deterministic")
		}
		if s {
			n++
		}
	}
	if n < 800 || n > 1200 {
		t.Errorf("sampled %d of 10000 at rate 0.1", n)
	}
	if k.Sampled("f", "x", 0) || !k.Sampled("f", "x", 1) {
		t.Error("rates 0 and 1 are never and always")
	}
}

func TestLimiter(t *testing.T) {
	l := NewLimiter()
	t0 := time.Unix(1000, 0)
	if n, _ := l.Take("f", 10, 100, t0); n != 10 {
		t.Fatalf("first take %d, want the burst of 10", n)
	}
	n, wait := l.Take("f", 10, 5, t0)
	if n != 0 || wait != 100*time.Millisecond {
		t.Fatalf("empty bucket: %d, wait %v", n, wait)
	}
	if n, _ := l.Take("f", 10, 5, t0.Add(300*time.Millisecond)); n != 3 {
		t.Fatalf("after 300ms: %d, want 3", n)
	}
	l.Return("f", 10, 2)
	if n, _ := l.Take("f", 10, 5, t0.Add(300*time.Millisecond)); n != 2 {
		t.Fatalf("after return: %d, want 2", n)
	}
}

func TestFileSamples(t *testing.T) {
	s, err := NewFileSamples(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := uint64(1); i <= 3; i++ {
		if err := s.Add(ctx, "f", []Sample{{Flow: "f", AuditIndex: i, Record: []byte(`{"id":"x"}`)}}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.List(ctx, "f", 1, 10)
	if err != nil || len(got) != 2 || got[0].AuditIndex != 2 {
		t.Fatalf("List = %+v, %v", got, err)
	}
	if got, err := s.List(ctx, "g", 0, 10); err != nil || len(got) != 0 {
		t.Fatalf("List of a flow without samples = %+v, %v", got, err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(goodFlows))
	f.Add([]byte("flows:\n  - {name: f, recipient: operator, jurisdiction: SG, collection: users, rate: 1, fields: {email: clear}}\n"))
	f.Add([]byte("a: &a [*a, *a]\n"))
	sc := testSchemaT(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse("flows.yaml", data)
		if err != nil {
			return
		}
		if s.Check(sc) != nil {
			return
		}
		// A checked set never lets a protected field leave in clear.
		for _, fl := range s.All() {
			coll, _ := sc.Collection(fl.Collection)
			for n, form := range fl.Fields {
				if form == "clear" && coll.Fields[n].Class == "protected" {
					t.Fatalf("flow %s: protected field %s in clear", fl.Name, n)
				}
			}
		}
	})
}

func FuzzCursor(f *testing.F) {
	k := testKeys(f, 1)
	f.Add("u1", k.Cursor("g", "u1"))
	f.Add("", "")
	f.Add("x", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Fuzz(func(t *testing.T, id, c string) {
		if len(id) <= 128 { // the longest record id
			if last, err := k.OpenCursor("f", k.Cursor("f", id)); err != nil || last != id {
				t.Fatalf("round trip of %q: %q, %v", id, last, err)
			}
		}
		// No cursor but one Cursor made for this flow opens: the fuzzer
		// cannot forge one, and the seeds were made for another flow.
		if _, err := k.OpenCursor("f", c); err == nil && c != "" {
			t.Fatalf("cursor %q opened", c)
		}
	})
}
