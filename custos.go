// Package custos holds the domain of a trusted data custodian: the data
// classes, subjects, records, principals and decisions, and the small
// interfaces between the components that implement them (Store, Keyring).
//
// The package does no I/O. Implementations live in their own packages under
// internal/ and are wired together by cmd/custos. The guarantees custos makes
// as a whole are stated where they are enforced: sealing in internal/vault,
// field-by-field decisions in internal/policy, the order "decide, act, record,
// respond" in internal/custody.
package custos

import (
	"slices"
	"strconv"
)

// Class is the data class of a field, declared in the schema. The taxonomy
// decides what may leave the custodian and in which form.
type Class string

// The data classes.
const (
	// ClassProtected is personal and behavioural data. It is sealed at rest
	// and never leaves the custodian in clear but to principals the policy
	// names.
	ClassProtected Class = "protected"
	// ClassPublic is what the subject made public.
	ClassPublic Class = "public"
	// ClassBusinessMetric is an aggregate figure the operator needs.
	ClassBusinessMetric Class = "business-metric"
	// ClassInterop is what global features need.
	ClassInterop Class = "interop"
	// ClassCreator is data of creators in paid programmes.
	ClassCreator Class = "creator"
)

// Classes lists every class, in a stable order.
var Classes = []Class{ClassProtected, ClassPublic, ClassBusinessMetric, ClassInterop, ClassCreator}

// Valid reports whether c is one of the declared classes.
func (c Class) Valid() bool { return slices.Contains(Classes, c) }

// Sealed reports whether fields of class c are sealed at rest by the vault.
func (c Class) Sealed() bool { return c == ClassProtected }

// FieldType is the type of a field's values, declared in the schema.
type FieldType string

// The field types. Values of every type but int, float, bool and bytes are
// JSON strings; bytes are base64 (standard encoding) in JSON.
const (
	TypeID        FieldType = "id"        // an opaque identifier: 1–128 bytes of [A-Za-z0-9._:@-]
	TypeString    FieldType = "string"    // UTF-8 text
	TypeEmail     FieldType = "email"     // an addr-spec, local@domain
	TypePhone     FieldType = "phone"     // E.164-like: optional +, digits, spaces, dashes, dots, parentheses
	TypeDate      FieldType = "date"      // YYYY-MM-DD
	TypeTimestamp FieldType = "timestamp" // RFC 3339
	TypeIP        FieldType = "ip"        // IPv4 or IPv6 address
	TypeInt       FieldType = "int"       // a JSON integer that fits int64
	TypeFloat     FieldType = "float"     // a finite JSON number
	TypeBool      FieldType = "bool"      // true or false
	TypeBytes     FieldType = "bytes"     // base64-encoded bytes
)

// FieldTypes lists every field type, in a stable order.
var FieldTypes = []FieldType{TypeID, TypeString, TypeEmail, TypePhone, TypeDate, TypeTimestamp, TypeIP, TypeInt, TypeFloat, TypeBool, TypeBytes}

// Valid reports whether t is one of the declared field types.
func (t FieldType) Valid() bool { return slices.Contains(FieldTypes, t) }

// Form is the form in which a field is released to a principal.
type Form string

// The forms, best first. A read releases each field in the best form the
// policy allows.
const (
	FormClear    Form = "clear"    // the value itself
	FormToken    Form = "token"    // a deterministic pseudonym for the principal's audience
	FormMasked   Form = "masked"   // a lossy rendering (last digits, domain, year)
	FormWithheld Form = "withheld" // nothing
)

// Action is what a principal asks to do. Actions are Cedar entities of type
// Custos::Action in the policies.
type Action string

// The actions.
const (
	ActionReadClear  Action = "read-clear"
	ActionReadToken  Action = "read-token"
	ActionReadMasked Action = "read-masked"
	ActionWrite      Action = "write"
	ActionRegister   Action = "register" // register a subject
	ActionDetokenize Action = "detokenize"
	ActionApprove    Action = "approve" // approve another principal's detokenization
	ActionErase      Action = "erase"
	// ActionReadHistory lists the audit entries about a subject, to answer
	// its access request.
	ActionReadHistory Action = "read-history"
	// ActionTrain runs an approved algorithm's training over its declared
	// inputs; the model stays in custody.
	ActionTrain Action = "train"
	// ActionRecommend runs an approved algorithm's recommendation for a
	// subject and releases the content ids it returns.
	ActionRecommend Action = "recommend"
	// ActionReplay re-runs a logged recommendation from its sealed inputs
	// and checks the output against the log.
	ActionReplay Action = "replay"
	// The actions on the registry of algorithm bundles: the operator
	// submits a bundle, custodian staff post a reviewer's approval of it
	// or retire it, and the parties list the registry.
	ActionAlgoSubmit  Action = "algo-submit"
	ActionAlgoApprove Action = "algo-approve"
	ActionAlgoRetire  Action = "algo-retire"
	ActionAlgoRead    Action = "algo-read"
	// The actions of governance: custodian staff propose changes to the
	// policies and the schema, signers post their signatures of proposals
	// (which count only if a configured governance key made them), the
	// parties read the proposals, the monitor posts signed suspensions of
	// the operator and their lifting, and the parties read the suspension
	// state.
	ActionGovPropose     Action = "gov-propose"
	ActionGovApprove     Action = "gov-approve"
	ActionGovRead        Action = "gov-read"
	ActionSuspend        Action = "suspend"
	ActionSuspensionRead Action = "suspension-read"
	// The actions on declared outbound flows: the recipient exports a
	// flow's records in the declared shape; the parties read the
	// declarations and the samples kept for the monitor.
	ActionFlowExport Action = "flow-export"
	ActionFlowRead   Action = "flow-read"
	// ActionAggregate uses a field in aggregates (POST /v1/aggregate)
	// without reading it: measured, or grouped and filtered by day, month
	// or year when it is a date or a timestamp. Only groups of at least k
	// distinct subjects are released. A field the principal may read in
	// clear can be used in aggregates in every way without it.
	ActionAggregate Action = "aggregate"
)

// ReadActions are the read actions in the order of the forms they release,
// best first.
var ReadActions = []Action{ActionReadClear, ActionReadToken, ActionReadMasked}

// FormOf returns the form a read action releases.
func FormOf(a Action) Form {
	switch a {
	case ActionReadClear:
		return FormClear
	case ActionReadToken:
		return FormToken
	case ActionReadMasked:
		return FormMasked
	}
	return FormWithheld
}

// Principal is an authenticated caller. It is built from a verified token
// or client certificate and never from anything the caller merely claims.
type Principal struct {
	ID     string   // the token's sub
	Issuer string   // the token's iss
	Org    string   // custodian, operator, monitor, or an org the config names
	Loc    string   // ISO 3166-1 alpha-2 country where the principal is located
	Roles  []string // sorted, without duplicates
	Vetted bool     // personnel screening passed
}

// HasRole reports whether p holds role r.
func (p Principal) HasRole(r string) bool { return slices.Contains(p.Roles, r) }

// Key returns a string that identifies p with all its attributes, for
// caching decisions. Two principals with the same key get the same
// decisions, and two principals differing in any attribute have different
// keys: every part is length-prefixed, so no choice of ids or roles can make
// two principals collide.
func (p Principal) Key() string {
	b := make([]byte, 0, 64)
	add := func(s string) {
		b = strconv.AppendInt(b, int64(len(s)), 10)
		b = append(b, ':')
		b = append(b, s...)
	}
	add(p.Issuer)
	add(p.ID)
	add(p.Org)
	add(p.Loc)
	b = strconv.AppendInt(b, int64(len(p.Roles)), 10)
	for _, r := range p.Roles {
		add(r)
	}
	if p.Vetted {
		b = append(b, 'v')
	}
	return string(b)
}

// The organisations custos knows by name. A config may name others.
const (
	OrgCustodian = "custodian"
	OrgOperator  = "operator"
	OrgMonitor   = "monitor"
	// OrgAlgorithm is the org of an approved algorithm reading its inputs
	// inside custos. No issuer's token may claim it.
	OrgAlgorithm = "algorithm"
)

// Subject is a person the data is about, with the jurisdiction their data
// must reside in.
type Subject struct {
	ID        string
	Residency string // ISO 3166-1 alpha-2
}

// Record is a record as clients see it: typed field values keyed by field
// name. Values are string, int64, float64, bool or []byte, as the schema's
// field type says (see FieldType).
type Record struct {
	Collection string
	ID         string
	Subject    string
	Fields     map[string]any
}

// Purpose is why a principal asks, stated in the Custos-Purpose header.
type Purpose string

// Justification is why a principal asks to detokenize or to unwrap a key
// outside the ordinary path. It is recorded with the action.
type Justification struct {
	Reason string `json:"reason"` // a short code: support, legal, fraud, ...
	Text   string `json:"text"`   // free text, recorded, never shown to others
	Ticket string `json:"ticket"` // a reference in the custodian's ticket system
}
