package custody

import (
	"context"
	"errors"
	"regexp"

	"github.com/custos/custos"
	"github.com/custos/custos/internal/policy"
	"github.com/custos/custos/internal/schema"
	"github.com/custos/custos/internal/vault"
)

var countryRE = regexp.MustCompile(`^[A-Z]{2}$`)

func validSubjectID(id string) error {
	if !schema.ValidID(id) {
		return custos.Errorf(custos.CodeInvalidRequest, "subject id must be 1-128 bytes of letters, digits and ._:@-")
	}
	return nil
}

// Register registers a subject residing in residency and reports whether it
// is new. A subject of another jurisdiction is refused with
// CodeWrongJurisdiction; an existing subject with another residency with
// CodeConflict.
func (s *Service) Register(ctx context.Context, r Request, subj custos.Subject) (created bool, err error) {
	e := r.entry("register")
	if err := validSubjectID(subj.ID); err != nil {
		return false, err
	}
	if !countryRE.MatchString(subj.Residency) {
		return false, custos.Errorf(custos.CodeInvalidRequest, "residency must be an ISO 3166-1 alpha-2 code such as US")
	}
	e.Subject = s.pseudonym(subj.ID)
	// The policy is asked first, about a subject of this jurisdiction: a
	// principal who may register no one learns nothing more.
	if !s.cfg.Policy.AllowedOnSubject(r.Principal, custos.ActionRegister, subj.ID, s.cfg.Jurisdiction, policy.Context{Purpose: r.Purpose}) {
		return false, s.deny(ctx, e, custos.Errorf(custos.CodeForbidden, "policy does not allow this principal to register subjects"))
	}
	if subj.Residency != s.cfg.Jurisdiction {
		return false, s.deny(ctx, e, custos.Errorf(custos.CodeWrongJurisdiction,
			"this instance serves jurisdiction %s and refuses subjects residing in %s", s.cfg.Jurisdiction, subj.Residency))
	}
	existing, err := s.cfg.Store.Subject(ctx, subj.ID)
	switch {
	case err == nil:
		if existing.Residency != subj.Residency {
			return false, custos.Errorf(custos.CodeConflict, "the subject is registered with another residency")
		}
		return false, nil
	case !errors.Is(err, custos.ErrNotFound):
		return false, internal("read subject", err)
	}
	// The entry is recorded first: a subject never exists unrecorded.
	if _, err := s.record(ctx, e); err != nil {
		return false, err
	}
	_, created, err = s.cfg.Vault.Register(ctx, s.cfg.Store, subj)
	if err != nil {
		return false, internal("register subject", err)
	}
	return created, nil
}

// Erasure is the outcome of an erasure: the signed receipt and the index of
// the audit entry that records it.
type Erasure struct {
	Receipt    []byte
	Records    int
	AuditIndex uint64
}

// Erase destroys a subject's data key and deletes its records and token
// refs. The live store can no longer open the subject's data at once; copies
// taken before stay sealed under a wrapped key whose KEK the next rotation
// destroys (OnErase schedules it, before the deletion).
func (s *Service) Erase(ctx context.Context, r Request, id string) (Erasure, error) {
	e := r.entry("erase")
	if err := validSubjectID(id); err != nil {
		return Erasure{}, err
	}
	e.Subject = s.pseudonym(id)
	subj, err := s.cfg.Store.Subject(ctx, id)
	residency := s.cfg.Jurisdiction
	switch {
	case err == nil:
		residency = subj.Residency
	case !errors.Is(err, custos.ErrNotFound):
		return Erasure{}, internal("read subject", err)
	}
	if !s.cfg.Policy.AllowedOnSubject(r.Principal, custos.ActionErase, id, residency, policy.Context{Purpose: r.Purpose}) {
		return Erasure{}, s.deny(ctx, e, custos.Errorf(custos.CodeForbidden, "policy does not allow this principal to erase subjects"))
	}
	if err != nil {
		return Erasure{}, custos.Errorf(custos.CodeNotFound, "no such subject")
	}
	// Recorded before the deletion: an erasure never happens unrecorded.
	e.Detail = "kek " + s.cfg.KEK()
	idx, err := s.record(ctx, e)
	if err != nil {
		return Erasure{}, err
	}
	// The rotation that makes the erasure final on old copies is scheduled
	// before the deletion, so a crash between the two cannot leave an
	// erasure without one; a rotation with nothing erased costs only time.
	if s.cfg.OnErase != nil {
		if err := s.cfg.OnErase(); err != nil {
			s.log.Error("couldn't schedule the key rotation of an erasure", "err", err)
			return Erasure{}, custos.Errorf(custos.CodeUnavailable, "couldn't schedule the key rotation that makes the erasure final; nothing was erased")
		}
	}
	n, err := s.cfg.Store.DeleteSubject(ctx, id)
	if errors.Is(err, custos.ErrNotFound) {
		return Erasure{}, custos.Errorf(custos.CodeNotFound, "no such subject")
	}
	if err != nil {
		return Erasure{}, internal("delete subject", err)
	}
	rc := vault.Receipt{Jurisdiction: s.cfg.Jurisdiction, Subject: id, Records: n, ErasedAt: s.cfg.Now().UTC(), KEK: s.cfg.KEK()}
	signed, err := vault.SignReceipt(s.cfg.Receipts, rc)
	if err != nil {
		return Erasure{}, internal("sign receipt", err)
	}
	return Erasure{Receipt: signed, Records: n, AuditIndex: idx}, nil
}
