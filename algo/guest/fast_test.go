package guest

import (
	"reflect"
	"testing"
)

// fastSeeds are inputs of the kinds a custodian sends, and near misses.
var fastSeeds = []string{
	`{"abi":1,"seed":"18446744073709551615","collections":{"watch_events":[{"user":"tk_a","video":12345678901234567890,"liked":true,"gone":null}],"videos":[]}}`,
	`{"abi":1,"seed":"7","subject":"tk_\u00e9\n","k":10,"history":{"watch_events":[{"user":"tk_a","video":"v-1"},{}]}}`,
	` { "abi" : 1 , "seed" : "1" , "k" : -0 , "history" : { } } `,
	`{"abi":1,"seed":"1","k":1e1}`,
	`{"ABI":1,"seed":"1","k":1}`,
	`{"abi":1,"abi":2}`,
	`{"abi":1,"seed":"\ud83d\ude00","k":1}`,
	`{"abi":1,"history":{"c":[{"f":[1]}]},"k":1}`,
	`{"abi":1,"history":{"c":null},"k":1}`,
	`{"abi":1.5}`,
	`{"abi":01}`,
	`{"seed":"\x"}`,
	`{"abi":1} x`,
	"{\"seed\":\"\xff\"}",
	`null`,
}

// TestFastDecode checks that the usual inputs take the fast path.
func TestFastDecode(t *testing.T) {
	if _, ok := fastTrain([]byte(fastSeeds[0])); !ok {
		t.Error("a train input did not take the fast path")
	}
	for _, s := range fastSeeds[1:3] {
		if _, ok := fastRecommend([]byte(s)); !ok {
			t.Errorf("%s did not take the fast path", s)
		}
	}
	for _, s := range fastSeeds[3:] {
		_, okT := fastTrain([]byte(s))
		_, okR := fastRecommend([]byte(s))
		if okT || okR {
			t.Errorf("%s took the fast path", s)
		}
	}
}

// FuzzFastDecode checks that where the fast path decodes an input, it
// gives what encoding/json gives.
func FuzzFastDecode(f *testing.F) {
	for _, s := range fastSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, ok := fastTrain(b); ok {
			var want TrainInput
			if err := decode(b, &want); err != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("train: fast %#v, encoding/json %#v, %v", got, want, err)
			}
		}
		if got, ok := fastRecommend(b); ok {
			var want RecommendInput
			if err := decode(b, &want); err != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("recommend: fast %#v, encoding/json %#v, %v", got, want, err)
			}
		}
	})
}
