//go:build wasip1

// Command unregistered links package guest but registers no Algorithm.
package main

import _ "github.com/custos/custos/algo/guest"

func main() {}
