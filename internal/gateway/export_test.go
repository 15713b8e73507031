package gateway

import (
	"maps"
	"slices"
)

// StatusCodes returns the error codes the gateway maps to a status, sorted,
// so that tests can hold the OpenAPI document to them.
func StatusCodes() []string { return slices.Sorted(maps.Keys(statuses)) }
