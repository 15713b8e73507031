package custody

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzAppendFields checks the record decoder of aggregates against
// encoding/json on every valid JSON object: same fields, same values.
func FuzzAppendFields(f *testing.F) {
	f.Add([]byte(`{"at":"2026-11-21T10:00:00Z","user":"u1","watched_ms":15000}`))
	f.Add([]byte(` { "a\"b" : "x\"y" , "n" : -1.5e3, "t": true, "z": null } `))
	f.Add([]byte(`{"a":{"b":1},"c":[1,2]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, obj []byte) {
		var want map[string]json.RawMessage
		if json.Unmarshal(obj, &want) != nil || want == nil {
			return
		}
		got, err := appendFields([]field{{name: []byte("before"), value: json.RawMessage("1")}}, obj)
		if err != nil {
			t.Fatalf("appendFields(%q): %v", obj, err)
		}
		if string(got[0].name) != "before" {
			t.Fatalf("appendFields(%q) lost the fields before", obj)
		}
		for name, v := range want {
			if name == "before" {
				continue
			}
			var a, b bytes.Buffer
			json.Compact(&a, v)
			json.Compact(&b, lookup(got[1:], name))
			if a.String() != b.String() {
				t.Errorf("appendFields(%q): %q is %q, want %q", obj, name, b.String(), a.String())
			}
		}
		if n := len(got) - 1; n < len(want) {
			t.Errorf("appendFields(%q): %d fields, want %d", obj, n, len(want))
		}
	})
}
