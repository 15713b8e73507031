package gateway

import (
	"net/http"

	"github.com/custos/custos"
	"github.com/custos/custos/internal/custody"
)

// Problem is an RFC 9457 problem document with custos' stable code.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Code   string `json:"code"`
}

// statuses maps each error code to its HTTP status.
var statuses = map[string]int{
	custos.CodeInvalidRequest:    http.StatusBadRequest,
	custos.CodeTooLarge:          http.StatusRequestEntityTooLarge,
	custos.CodeUnauthenticated:   http.StatusUnauthorized,
	custos.CodeForbidden:         http.StatusForbidden,
	custos.CodeNotFound:          http.StatusNotFound,
	custos.CodeConflict:          http.StatusConflict,
	custos.CodeWrongJurisdiction: http.StatusConflict,
	custos.CodeUnknownCollection: http.StatusNotFound,
	custos.CodeUnknownField:      http.StatusUnprocessableEntity,
	custos.CodeInvalidField:      http.StatusUnprocessableEntity,
	custos.CodeJustification:     http.StatusBadRequest,
	custos.CodeApproval:          http.StatusForbidden,
	custos.CodeInvalidSignature:  http.StatusUnprocessableEntity,
	custos.CodeSuspended:         http.StatusForbidden,
	custos.CodeRateLimited:       http.StatusTooManyRequests,
	custos.CodeQuerySetTooSmall:  http.StatusForbidden,
	custos.CodeQueryOverlap:      http.StatusForbidden,
	custos.CodeBudgetExhausted:   http.StatusForbidden,
	custos.CodeUnavailable:       http.StatusServiceUnavailable,
	custos.CodeAuditUnavailable:  http.StatusServiceUnavailable,
	custos.CodeInternal:          http.StatusInternalServerError,
	custody.CodeAlgorithmFailed:  http.StatusBadGateway,
}

// Status returns the HTTP status of an error code.
func Status(code string) int {
	if s, ok := statuses[code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

func (s *server) problem(w http.ResponseWriter, r *http.Request, err error) {
	s.problemStatus(w, r, Status(custos.ErrorCode(err)), err)
}

// problemStatus writes err as a problem. Errors that are not *custos.Error
// are logged with their cause and shown as "internal error".
func (s *server) problemStatus(w http.ResponseWriter, r *http.Request, status int, err error) {
	code := custos.ErrorCode(err)
	if code == custos.CodeInternal {
		s.log.Error("internal error", "route", r.Pattern, "err", err)
	}
	if status == http.StatusServiceUnavailable && w.Header().Get("Retry-After") == "" {
		w.Header().Set("Retry-After", "5")
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	writeJSONBody(w, status, Problem{
		Type:   "urn:custos:problem:" + code,
		Title:  http.StatusText(status),
		Status: status,
		Detail: custos.ErrorDetail(err),
		Code:   code,
	})
}
