package custos

import (
	"errors"
	"fmt"
)

// Error codes. They are part of the API: clients branch on them, so a code
// once published keeps its meaning. The gateway maps each to an HTTP status.
const (
	CodeInvalidRequest    = "invalid_request"    // malformed body, parameter or header
	CodeTooLarge          = "too_large"          // body or value over its cap
	CodeUnauthenticated   = "unauthenticated"    // no valid credential
	CodeForbidden         = "forbidden"          // the policy denies the action
	CodeNotFound          = "not_found"          // no such subject, record or token
	CodeConflict          = "conflict"           // the request contradicts what is stored
	CodeWrongJurisdiction = "wrong_jurisdiction" // a subject or record of another jurisdiction
	CodeUnknownCollection = "unknown_collection" // the schema has no such collection
	CodeUnknownField      = "unknown_field"      // the collection has no such field
	CodeInvalidField      = "invalid_field"      // a value does not fit its field's type
	CodeJustification     = "justification_required"
	CodeApproval          = "approval_required" // a second approver is needed
	// CodeInvalidSignature refuses an algorithm bundle or an approval whose
	// signature does not verify against the configured keys, or a bundle
	// whose module is not the one its manifest names.
	CodeInvalidSignature = "invalid_signature"
	// CodeSuspended refuses every request of an operator principal the
	// monitor has suspended.
	CodeSuspended = "suspended"
	// CodeRateLimited refuses an export beyond its flow's declared rate;
	// the answer says when to retry.
	CodeRateLimited = "rate_limited"
	// The refusals of an aggregate query that the policy allows: it
	// selects fewer than k subjects, or leaves out fewer than k
	// (CodeQuerySetTooSmall); it differs from an earlier answered query by
	// fewer than k subjects (CodeQueryOverlap); it asks for noise the
	// principal's privacy budget no longer covers (CodeBudgetExhausted).
	CodeQuerySetTooSmall = "query_set_too_small"
	CodeQueryOverlap     = "query_overlap"
	CodeBudgetExhausted  = "budget_exhausted"
	CodeUnavailable      = "unavailable"       // a dependency cannot do its part; retry later
	CodeAuditUnavailable = "audit_unavailable" // the audit log cannot record; nothing was released
	CodeInternal         = "internal"          // anything unexpected; the cause is logged, not shown
)

// Error is an error whose code and detail may be shown to the caller. The
// detail must never hold personal data: name fields, collections and
// positions, never values.
type Error struct {
	Code   string
	Detail string
}

func (e *Error) Error() string { return e.Code + ": " + e.Detail }

// Errorf returns an *Error with the given code and a formatted detail.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Detail: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, or
// CodeInternal when there is none.
func ErrorCode(err error) string {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Code
	}
	return CodeInternal
}

// ErrorDetail returns the detail of the first *Error in err's chain, or
// "internal error" when there is none: causes that were not written for the
// caller are never shown to them.
func ErrorDetail(err error) string {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Detail
	}
	return "internal error"
}

// ErrNotFound is returned by a Store when the subject, record or token asked
// for does not exist.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned by a Store when a write contradicts what is stored,
// such as a record id already used by another subject.
var ErrConflict = errors.New("conflict")

// ErrKeyDestroyed is returned by a Keyring asked to unwrap a key sealed under
// a KEK it no longer holds: the data under it is shredded.
var ErrKeyDestroyed = errors.New("key-encryption key destroyed")
