package custos

import (
	"context"
	"time"
)

// AuditEntry is one decision of custos, as it is recorded before any data it
// covers is released. It holds no personal data in clear: subjects and
// record ids appear as audit pseudonyms (keyed HMAC, audience "audit"),
// justifications by their reason code and ticket, never their free text.
// Its JSON tags are its fields' names on the log (MarshalAuditEntry).
type AuditEntry struct {
	Time       time.Time         `json:"time"`
	Action     string            `json:"action"`   // read, write, register, erase, detokenize, rotate, policy-load, algo-submit, ...
	Decision   string            `json:"decision"` // allow or deny
	Code       string            `json:"code,omitempty"`
	Principal  string            `json:"principal,omitempty"`
	Org        string            `json:"org,omitempty"`
	Loc        string            `json:"loc,omitempty"`
	Purpose    string            `json:"purpose,omitempty"`
	Collection string            `json:"collection,omitempty"`
	Record     string            `json:"record,omitempty"`   // audit pseudonym of the record id
	Subject    string            `json:"subject,omitempty"`  // audit pseudonym of the subject
	Subjects   []string          `json:"subjects,omitempty"` // audit pseudonyms, sorted, when several subjects are concerned
	Forms      map[string]string `json:"forms,omitempty"`    // field → form released
	Count      int               `json:"count,omitempty"`
	Reason     string            `json:"reason,omitempty"`
	Ticket     string            `json:"ticket,omitempty"`
	Approver   string            `json:"approver,omitempty"`
	BreakGlass bool              `json:"break_glass,omitempty"`
	Detail     string            `json:"detail,omitempty"` // non-personal facts: policy version, KEK ids
}

// Auditor makes audit entries durable.
//
// Record returns only once e is durably stored and returns its index in the
// log. Any error means e may not be stored: the caller must not release the
// data e covers. Implementations are safe for concurrent use.
type Auditor interface {
	Record(ctx context.Context, e AuditEntry) (index uint64, err error)
}
