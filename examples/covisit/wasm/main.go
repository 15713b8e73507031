//go:build wasip1

// Command wasm is the covisit recommender as a custos algorithm module.
// Build it with
//
//	GOOS=wasip1 GOARCH=wasm go build -trimpath -buildmode=c-shared -o covisit.wasm ./examples/covisit/wasm
//
// All of it is in packages covisit and guest: this package only registers
// the one with the other.
package main

import (
	"github.com/custos/custos/algo/guest"
	"github.com/custos/custos/examples/covisit"
)

// init, not main, registers: a c-shared module's _initialize runs the init
// functions but never main.
func init() { guest.Register(covisit.Algorithm{}) }

func main() {}
