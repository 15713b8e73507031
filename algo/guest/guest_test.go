package guest

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestDecodeTrainInput(t *testing.T) {
	in, err := DecodeTrainInput([]byte(`{"abi":1,"seed":"18446744073709551615","collections":{"watch_events":[{"user":"tk_a","video":12345678901234567890,"liked":true}],"videos":[]}}`))
	if err != nil {
		t.Fatal(err)
	}
	r := in.Collections["watch_events"][0]
	if r["user"] != "tk_a" || r["video"] != json.Number("12345678901234567890") || r["liked"] != true {
		t.Errorf("record decoded as %#v", r)
	}
	if in.Seed != "18446744073709551615" || in.Collections["videos"] == nil {
		t.Errorf("decoded as %+v", in)
	}
}

// secret stands for input data, which must never appear in an error.
const secret = "tk_SECRET"

func TestDecodeInputErrors(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"abi 2", `{"abi":2,"seed":"1","k":1}`, "abi is 2, not 1"},
		{"no abi", `{"seed":"1","k":1}`, "abi is 0"},
		{"seed not decimal", `{"abi":1,"seed":"0x1","k":1}`, "seed is not a decimal uint64"},
		{"seed too large", `{"abi":1,"seed":"18446744073709551616","k":1}`, "seed is not"},
		{"seed a number", `{"abi":1,"seed":1,"k":1}`, `"seed" is a JSON number, want Go type string`},
		{"k 0", `{"abi":1,"seed":"1","k":0}`, "k is 0, not in 1..100"},
		{"k 101", `{"abi":1,"seed":"1","k":101}`, "k is 101"},
		{"k huge", `{"abi":1,"seed":"1","k":1e400}`, `"k" is a JSON number, want Go type int`},
		{"subject a number", `{"abi":1,"seed":"1","k":1,"subject":12}`, `"subject" is a JSON number`},
		{"history a list", `{"abi":1,"seed":"1","k":1,"history":["` + secret + `"]}`, `"history" is a JSON array`},
		{"trailing data", `{"abi":1,"seed":"1","k":1} {"` + secret + `":1}`, "data after the JSON value"},
		{"truncated", `{"abi":1,"seed":"` + secret, "truncated JSON"},
		{"syntax", `{"abi":1,"seed":"1","k":1,"history":{` + secret + `}}`, "malformed JSON at byte"},
		{"empty", ``, "truncated JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeRecommendInput([]byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "SECRET") {
				t.Errorf("error %q quotes the input", err)
			}
		})
	}
}

func TestEncodeRecommendOutput(t *testing.T) {
	for _, tc := range []struct {
		name  string
		items []string
		k     int
		want  string // the encoding, or part of the error
	}{
		{"items", []string{"b", "a"}, 2, `{"items":["b","a"]}`},
		{"none", nil, 1, `{"items":[]}`},
		{"too many", []string{"a", "b"}, 1, "2 items, more than k = 1"},
		{"duplicate", []string{secret, "b", secret}, 3, "repeats an item at position 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := EncodeRecommendOutput(tc.items, tc.k)
			got := string(b)
			if err != nil {
				got = err.Error()
				if strings.Contains(got, secret) {
					t.Errorf("error %q quotes the output", got)
				}
			}
			if !strings.Contains(got, tc.want) {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

// fake is an Algorithm that echoes: its model is the number of records of
// collection "c", its recommendation the model's text repeated k times.
type fake struct{ err error }

func (f fake) Train(in TrainInput) ([]byte, error) {
	return []byte(strings.Repeat("x", len(in.Collections["c"]))), f.err
}

func (f fake) Recommend(model []byte, in RecommendInput) ([]string, error) {
	items := make([]string, in.K)
	for i := range items {
		items[i] = string(model) + strings.Repeat("!", i)
	}
	return items, f.err
}

func TestEntries(t *testing.T) {
	model, err := train(fake{}, []byte(`{"abi":1,"seed":"7","collections":{"c":[{},{}]}}`))
	if err != nil || string(model) != "xx" {
		t.Fatalf("train: %q, %v", model, err)
	}
	out, err := recommend(fake{}, model, []byte(`{"abi":1,"seed":"7","subject":"tk_s","k":2,"history":{}}`))
	if err != nil || string(out) != `{"items":["xx","xx!"]}` {
		t.Fatalf("recommend: %s, %v", out, err)
	}

	if _, err := train(nil, nil); !errors.Is(err, errNotRegistered) {
		t.Errorf("train with no algorithm: %v", err)
	}
	if _, err := recommend(nil, nil, nil); !errors.Is(err, errNotRegistered) {
		t.Errorf("recommend with no algorithm: %v", err)
	}
	if _, err := train(fake{}, []byte(`{"abi":3,"seed":"7"}`)); err == nil {
		t.Error("train accepted abi 3")
	}
	boom := errors.New("boom")
	if _, err := train(fake{err: boom}, []byte(`{"abi":1,"seed":"7"}`)); !errors.Is(err, boom) {
		t.Errorf("train hid the algorithm's error: %v", err)
	}
	if _, err := recommend(fake{err: boom}, nil, []byte(`{"abi":1,"seed":"7","k":1}`)); !errors.Is(err, boom) {
		t.Errorf("recommend hid the algorithm's error: %v", err)
	}
}

func TestRegister(t *testing.T) {
	t.Cleanup(func() { registered = nil })
	registered = nil
	mustPanic(t, "nil", func() { Register(nil) })
	Register(fake{})
	mustPanic(t, "twice", func() { Register(fake{}) })
}

func mustPanic(t *testing.T, name string, f func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Errorf("Register %s did not panic", name)
		}
	}()
	f()
}
