package custody

import (
	"bytes"
	"context"
	"slices"
	"time"

	"github.com/custos/custos"
	"github.com/custos/custos/internal/policy"
)

// HistoryReader reads the audit log back, to answer a subject's access
// request.
type HistoryReader interface {
	// Size returns the number of entries on the log.
	Size() uint64
	// Entries calls yield with each encoded entry of index in [from, to).
	Entries(ctx context.Context, from, to uint64, yield func(index uint64, entry []byte) bool) error
}

// MaxHistory caps the entries one history lists: the most recent ones.
const MaxHistory = 10000

// Access is one audit entry about a subject, with its index on the log so
// that it can be proven there.
type Access struct {
	Index      uint64            `json:"index"`
	Time       time.Time         `json:"time"`
	Action     string            `json:"action"`
	Decision   string            `json:"decision"`
	Principal  string            `json:"principal,omitempty"`
	Org        string            `json:"org,omitempty"`
	Loc        string            `json:"loc,omitempty"`
	Purpose    string            `json:"purpose,omitempty"`
	Collection string            `json:"collection,omitempty"`
	Forms      map[string]string `json:"forms,omitempty"`
	Reason     string            `json:"reason,omitempty"`
	Approver   string            `json:"approver,omitempty"`
	BreakGlass bool              `json:"break_glass,omitempty"`
}

// History is the outcome of a history request.
type History struct {
	Accesses   []Access
	Truncated  bool // more than MaxHistory entries: the oldest are left out
	AuditIndex uint64
}

// History lists the audit entries about a subject — by its audit pseudonym —
// with their log indexes, the most recent MaxHistory of them. The subject
// need not exist any more: an erased subject's history stays on the log.
// The listing is itself recorded before it is returned.
func (s *Service) History(ctx context.Context, r Request, id string) (History, error) {
	e := r.entry("read-history")
	if err := validSubjectID(id); err != nil {
		return History{}, err
	}
	ps := s.pseudonym(id)
	e.Subject = ps
	if !s.cfg.Policy.AllowedOnSubject(r.Principal, custos.ActionReadHistory, id, s.cfg.Jurisdiction, policy.Context{Purpose: r.Purpose}) {
		return History{}, s.deny(ctx, e, custos.Errorf(custos.CodeForbidden, "policy does not allow this principal to read subjects' access history"))
	}
	if s.cfg.History == nil {
		return History{}, custos.Errorf(custos.CodeUnavailable, "this deployment keeps no readable audit log")
	}
	var out History
	size := s.cfg.History.Size()
	needle := []byte(`"` + ps + `"`)
	err := s.cfg.History.Entries(ctx, 0, size, func(idx uint64, b []byte) bool {
		// Most entries are about someone else: skip them unparsed.
		if !bytes.Contains(b, needle) {
			return true
		}
		en, err := custos.ParseAuditEntry(b)
		if err != nil || (en.Subject != ps && !slices.Contains(en.Subjects, ps)) {
			return true
		}
		if len(out.Accesses) == MaxHistory {
			out.Accesses, out.Truncated = out.Accesses[1:], true
		}
		out.Accesses = append(out.Accesses, Access{
			Index: idx, Time: en.Time, Action: en.Action, Decision: en.Decision, Principal: en.Principal,
			Org: en.Org, Loc: en.Loc, Purpose: en.Purpose, Collection: en.Collection, Forms: en.Forms,
			Reason: en.Reason, Approver: en.Approver, BreakGlass: en.BreakGlass,
		})
		return true
	})
	if err != nil {
		return History{}, internal("read the audit log", err)
	}
	e.Count = len(out.Accesses)
	if out.AuditIndex, err = s.record(ctx, e); err != nil {
		return History{}, err
	}
	return out, nil
}
