//go:build wasip1

// Command probe is a module that misbehaves on request, to test how package
// guest reports failures. Field "what" of its collection "do" says how in
// training; the model says how in recommending.
package main

import (
	"errors"

	"github.com/custos/custos/algo/guest"
)

type probe struct{}

func (probe) Train(in guest.TrainInput) ([]byte, error) {
	do := ""
	if rs := in.Collections["do"]; len(rs) > 0 {
		do, _ = rs[0]["what"].(string)
	}
	switch do {
	case "index":
		var s []int
		_ = s[len(in.Collections)]
	case "panic":
		panic(do + " " + in.Seed) // a value holding input data
	case "error":
		return nil, errors.New("probe failed")
	case "empty":
		return nil, nil
	}
	return []byte(do), nil
}

func (probe) Recommend(model []byte, in guest.RecommendInput) ([]string, error) {
	switch string(model) {
	case "many":
		return make([]string, in.K+1), nil
	case "twice":
		return []string{"a", "a"}, nil
	}
	return []string{string(model)}, nil
}

func init() { guest.Register(probe{}) }

func main() {}
