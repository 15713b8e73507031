package keys

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"
)

func jsonMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzParse checks that no keyring file makes parse panic, and that what it
// accepts it writes back unchanged in meaning.
func FuzzParse(f *testing.F) {
	dir := f.TempDir()
	if err := Create(dir+"/k", "US"); err != nil {
		f.Fatal(err)
	}
	good, err := os.ReadFile(dir + "/k")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`{"version":2}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := parse(data)
		if err != nil {
			return
		}
		out, err := r.marshal()
		if err != nil {
			t.Fatal(err)
		}
		r2, err := parse(out)
		if err != nil {
			t.Fatalf("re-parse of marshalled keyring: %v", err)
		}
		if r2.current != r.current || len(r2.keks) != len(r.keks) || !bytes.Equal(r2.tokenKey, r.tokenKey) {
			t.Fatal("keyring changed through a round trip")
		}
	})
}
