package custos

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"
)

// The encoding of an audit entry on the log, version 1:
//
// An entry is one JSON object, UTF-8, no insignificant white space, keys in
// this order, each present only when not empty (zero, false, ""):
//
//	v            1, always present
//	time         RFC 3339 UTC with exactly six fractional digits, always present
//	action       [a-z][a-z0-9-]{0,31}, always present
//	decision     "allow" or "deny", always present
//	code         the error code of a denial
//	principal, org, loc, purpose, collection, record, subject,
//	subjects     array of audit pseudonyms, sorted, without duplicates
//	forms        object of field name → form, keys sorted
//	count, reason, ticket, approver, break_glass, detail
//
// Strings are at most 256 bytes (detail 1024), forms and subjects at most
// 256 entries.
// JSON strings are escaped as Go's encoding/json does without HTML
// escaping. ParseAuditEntry accepts exactly the bytes MarshalAuditEntry
// produces for some entry, so an entry has one encoding and its leaf hash
// pins it.

// AuditEntryVersion is the version of the entry encoding.
const AuditEntryVersion = 1

// MaxCheckpointSize caps a checkpoint of the audit log, cosignatures
// included: the log refuses to serve a larger one and verifiers to read it.
const MaxCheckpointSize = 16 << 10

// MaxAuditEntrySize caps an encoded entry.
const MaxAuditEntrySize = 16 << 10

const (
	maxEntryString = 256
	maxEntryDetail = 1024
	maxEntryForms  = 256
)

var entryActionRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

// wireEntry is the encoding's field order: v and time, then the fields of
// AuditEntry in its order, under its tags. Its Time, encoded as a string,
// hides AuditEntry's.
type wireEntry struct {
	V    int    `json:"v"`
	Time string `json:"time"`
	AuditEntry
}

const entryTimeLayout = "2006-01-02T15:04:05.000000Z07:00"

// MarshalAuditEntry returns the canonical encoding of e. Its time is taken
// in UTC to the microsecond.
func MarshalAuditEntry(e AuditEntry) ([]byte, error) {
	w := wireEntry{V: AuditEntryVersion, Time: e.Time.UTC().Format(entryTimeLayout), AuditEntry: e}
	if err := w.validate(); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(w); err != nil {
		return nil, fmt.Errorf("couldn't encode audit entry: %w", err)
	}
	out := bytes.TrimSuffix(b.Bytes(), []byte("\n"))
	if len(out) > MaxAuditEntrySize {
		return nil, errors.New("audit entry larger than 16 KiB")
	}
	return out, nil
}

// ParseAuditEntry decodes an entry, refusing anything but the canonical
// encoding of a valid entry of a known version.
func ParseAuditEntry(data []byte) (AuditEntry, error) {
	if len(data) > MaxAuditEntrySize {
		return AuditEntry{}, errors.New("audit entry larger than 16 KiB")
	}
	var w wireEntry
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return AuditEntry{}, fmt.Errorf("malformed audit entry: %w", err)
	}
	if w.V != AuditEntryVersion {
		return AuditEntry{}, fmt.Errorf("audit entry version %d, want %d", w.V, AuditEntryVersion)
	}
	t, err := time.Parse(entryTimeLayout, w.Time)
	if err != nil {
		return AuditEntry{}, errors.New("audit entry time is not RFC 3339 with six fractional digits")
	}
	e := w.AuditEntry
	e.Time = t
	canon, err := MarshalAuditEntry(e)
	if err != nil {
		return AuditEntry{}, err
	}
	if !bytes.Equal(canon, data) {
		return AuditEntry{}, errors.New("audit entry is not in canonical encoding")
	}
	return e, nil
}

func (w *wireEntry) validate() error {
	if !entryActionRE.MatchString(w.Action) {
		return errors.New("audit entry action must match [a-z][a-z0-9-]{0,31}")
	}
	if w.Decision != "allow" && w.Decision != "deny" {
		return errors.New("audit entry decision must be allow or deny")
	}
	if w.Count < 0 {
		return errors.New("audit entry count is negative")
	}
	for _, s := range []string{w.Code, w.Principal, w.Org, w.Loc, w.Purpose, w.Collection, w.Record, w.Subject, w.Reason, w.Ticket, w.Approver} {
		if len(s) > maxEntryString {
			return errors.New("audit entry string longer than 256 bytes")
		}
	}
	if len(w.Detail) > maxEntryDetail {
		return errors.New("audit entry detail longer than 1024 bytes")
	}
	if len(w.Subjects) > maxEntryForms {
		return errors.New("audit entry names more than 256 subjects")
	}
	for i, p := range w.Subjects {
		if len(p) > maxEntryString || (i > 0 && p <= w.Subjects[i-1]) {
			return errors.New("audit entry subjects must be sorted, unique and at most 256 bytes each")
		}
	}
	if len(w.Forms) > maxEntryForms {
		return errors.New("audit entry names more than 256 fields")
	}
	for k, v := range w.Forms {
		if len(k) > maxEntryString || len(v) > maxEntryString {
			return errors.New("audit entry form longer than 256 bytes")
		}
	}
	return nil
}
