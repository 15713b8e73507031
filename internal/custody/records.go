package custody

import (
	"context"
	"encoding/json"
	"errors"
	"slices"

	"github.com/custos/custos"
	"github.com/custos/custos/internal/policy"
	"github.com/custos/custos/internal/schema"
	"github.com/custos/custos/internal/token"
	"github.com/custos/custos/internal/vault"
)

// tokenized reports whether tokens of a class are indexed for
// detokenization: the classes whose values are not released in clear to
// everyone who reads them.
func tokenized(c custos.Class) bool {
	return c == custos.ClassProtected || c == custos.ClassCreator
}

// Write stores a record of collection with the given id and raw field
// values, sealing protected fields under the subject's data key, and reports
// whether the record is new. The subject is the value of the collection's
// subject field and must be registered.
func (s *Service) Write(ctx context.Context, r Request, collection, id string, raw map[string]json.RawMessage) (created bool, index uint64, err error) {
	e := r.entry("write")
	sc := s.Schema()
	coll, err := sc.Collection(collection)
	if err != nil {
		return false, 0, err
	}
	e.Collection = coll.Name
	if err := validRecordID(id); err != nil {
		return false, 0, err
	}
	values, err := coll.Decode(raw)
	if err != nil {
		return false, 0, err
	}
	subjectID, _ := values[coll.Subject].(string)
	e.Subject, e.Record = s.pseudonym(subjectID), s.pseudonym(coll.Name+"/"+id)
	// A write replaces the whole record, so it needs the write action on
	// every field of the collection, sent or not: a field it may not write
	// is not to be erased by leaving it out.
	pctx := policy.Context{Purpose: r.Purpose}
	for _, f := range fieldsOf(coll) {
		if !s.cfg.Policy.Allowed(r.Principal, custos.ActionWrite, f, pctx) {
			return false, 0, s.deny(ctx, e, custos.Errorf(custos.CodeForbidden, "policy does not allow this principal to write %s.%s", coll.Name, f.Name))
		}
	}
	subj, err := s.subject(ctx, subjectID)
	if err != nil {
		return false, 0, err
	}
	rec, refs, key, err := s.seal(ctx, r, coll, id, subj, values)
	if err != nil {
		return false, 0, err
	}
	e.Count = len(values)
	if index, err = s.record(ctx, e); err != nil {
		return false, 0, err
	}
	created, err = s.cfg.Store.PutRecord(ctx, rec, refs)
	switch {
	case errors.Is(err, custos.ErrConflict):
		return false, 0, custos.Errorf(custos.CodeConflict, "the record id is used in %s by another subject's record", coll.Name)
	case errors.Is(err, custos.ErrNotFound):
		return false, 0, custos.Errorf(custos.CodeNotFound, "the record's subject was erased meanwhile")
	case err != nil:
		return false, 0, internal("store record", err)
	}
	// A rotation in another process may have destroyed the KEK the refs
	// were indexed under while this write was on its way: index them again
	// under the current one. The record is stored; refs this misses are
	// indexed again by the next rotation, so a failure is only logged.
	if len(refs) > 0 {
		if err := s.cfg.Vault.RefreshTokenRefs(ctx, s.cfg.Store, key, refs); err != nil {
			s.log.Warn("token refs not refreshed after a write; the next key rotation indexes them", "collection", coll.Name, "err", err)
		}
	}
	return created, index, nil
}

func validRecordID(id string) error {
	if err := validSubjectID(id); err != nil {
		return custos.Errorf(custos.CodeInvalidRequest, "record id must be 1-128 bytes of letters, digits and ._:@-")
	}
	return nil
}

// subject returns the registered subject id of this jurisdiction.
func (s *Service) subject(ctx context.Context, id string) (custos.StoredSubject, error) {
	subj, err := s.cfg.Store.Subject(ctx, id)
	if errors.Is(err, custos.ErrNotFound) {
		return subj, custos.Errorf(custos.CodeNotFound, "the record's subject is not registered: register it with PUT /v1/subjects/{id} first")
	}
	if err != nil {
		return subj, internal("read subject", err)
	}
	if subj.Residency != s.cfg.Jurisdiction {
		return subj, custos.Errorf(custos.CodeWrongJurisdiction, "the record's subject resides outside jurisdiction %s", s.cfg.Jurisdiction)
	}
	return subj, nil
}

// seal splits values into clear and sealed parts and computes the token
// refs of tokenized fields for every indexed audience. It returns the data
// key it unwrapped, nil when it needed none.
func (s *Service) seal(ctx context.Context, r Request, coll *schema.Collection, id string, subj custos.StoredSubject, values map[string]any) (custos.SealedRecord, []custos.TokenRef, *vault.DataKey, error) {
	clear, sealed := map[string]json.RawMessage{}, map[string]json.RawMessage{}
	var refs []custos.TokenRef
	// The data key seals the sealed fields and the tokens of tokenized ones;
	// it is unwrapped once, if either is present.
	var key *vault.DataKey
	dataKey := func() (*vault.DataKey, error) {
		var err error
		if key == nil {
			key, err = s.key(ctx, subj, custos.KeyReason{Action: custos.ActionWrite, Principal: r.Principal.ID, Purpose: r.Purpose, Subject: subj.ID})
		}
		return key, err
	}
	for name, v := range values {
		f := coll.Fields[name]
		enc, err := schema.EncodeValue(f.Type, v)
		if err != nil {
			return custos.SealedRecord{}, nil, nil, internal("encode value", err)
		}
		if f.Class.Sealed() {
			sealed[name] = enc
		} else {
			clear[name] = enc
		}
		if !tokenized(f.Class) {
			continue
		}
		for _, aud := range s.cfg.Audiences {
			tok, err := s.cfg.Tokens.Token(aud, f.Type, v)
			if err != nil {
				return custos.SealedRecord{}, nil, nil, internal("derive token", err)
			}
			ref, err := s.tokenRef(ctx, dataKey, custos.TokenRef{Audience: aud, Subject: subj.ID, Collection: coll.Name, Record: id, Field: name}, tok)
			if err != nil {
				return custos.SealedRecord{}, nil, nil, err
			}
			refs = append(refs, ref)
		}
	}
	rec := custos.SealedRecord{Collection: coll.Name, ID: id, Subject: subj.ID, UpdatedAt: s.cfg.Now().UTC()}
	var err error
	if rec.Clear, err = json.Marshal(clear); err != nil {
		return rec, nil, nil, internal("encode record", err)
	}
	if len(sealed) == 0 {
		return rec, refs, key, nil
	}
	plain, err := json.Marshal(sealed)
	if err != nil {
		return rec, nil, nil, internal("encode record", err)
	}
	if _, err := dataKey(); err != nil {
		return rec, nil, nil, err
	}
	if rec.Sealed, err = key.Seal(coll.Name, id, plain); err != nil {
		return rec, nil, nil, internal("seal record", err)
	}
	return rec, refs, key, nil
}

// tokenRef completes ref with the index of tok under the current KEK and
// tok sealed under the subject's data key: a ref holds no token in clear.
func (s *Service) tokenRef(ctx context.Context, dataKey func() (*vault.DataKey, error), ref custos.TokenRef, tok string) (custos.TokenRef, error) {
	key, err := dataKey()
	if err != nil {
		return ref, err
	}
	if ref.KEKID, ref.Index, err = s.cfg.Vault.IndexToken(ctx, tok); err != nil {
		return ref, internal("index token", err)
	}
	if ref.Sealed, err = key.SealTokenRef(ref, tok); err != nil {
		return ref, internal("seal token ref", err)
	}
	return ref, nil
}

// Field is one field of a read: the form it is released in and its value
// (absent when withheld).
type Field struct {
	Form  custos.Form     `json:"form"`
	Value json.RawMessage `json:"value,omitempty"`
}

// Read is the outcome of a read.
type Read struct {
	Collection string
	ID         string
	Fields     map[string]Field
	Order      []string // field names in schema order
	AuditIndex uint64
}

// Read returns the record of collection with the given id, each field in the
// best form the policy allows the principal for the purpose. A principal
// allowed no field at all gets CodeForbidden without the store being asked,
// so a refusal says nothing of whether the record exists.
func (s *Service) Read(ctx context.Context, r Request, collection, id string) (Read, error) {
	e := r.entry("read")
	sc := s.Schema()
	coll, err := sc.Collection(collection)
	if err != nil {
		return Read{}, err
	}
	e.Collection = coll.Name
	if err := validRecordID(id); err != nil {
		return Read{}, err
	}
	e.Record = s.pseudonym(coll.Name + "/" + id)
	fields := fieldsOf(coll)
	forms := s.cfg.Policy.Forms(r.Principal, policy.Context{Purpose: r.Purpose}, fields)
	if !slices.ContainsFunc(forms, func(f custos.Form) bool { return f != custos.FormWithheld }) {
		return Read{}, s.deny(ctx, e, custos.Errorf(custos.CodeForbidden, "policy allows this principal no field of %s", coll.Name))
	}
	rec, err := s.cfg.Store.Record(ctx, coll.Name, id)
	if errors.Is(err, custos.ErrNotFound) {
		return Read{}, custos.Errorf(custos.CodeNotFound, "no such record in %s", coll.Name)
	}
	if err != nil {
		return Read{}, internal("read record", err)
	}
	e.Subject = s.pseudonym(rec.Subject)
	values, err := s.open(ctx, r, unwrapReason(fields, forms), coll, rec, fields, forms)
	if err != nil {
		return Read{}, err
	}
	out := Read{Collection: coll.Name, ID: id, Fields: make(map[string]Field, len(fields))}
	e.Forms = make(map[string]string, len(fields))
	for i, f := range fields {
		v, ok := values[f.Name]
		// A withheld field is listed as withheld whether or not the record
		// holds it: what is withheld says nothing of what is stored.
		if !ok && forms[i] != custos.FormWithheld {
			continue
		}
		field, err := s.shape(r.Principal.Org, coll.Fields[f.Name], forms[i], v)
		if err != nil {
			return Read{}, err
		}
		out.Fields[f.Name] = field
		out.Order = append(out.Order, f.Name)
		e.Forms[f.Name] = string(field.Form)
	}
	if out.AuditIndex, err = s.record(ctx, e); err != nil {
		return Read{}, err
	}
	return out, nil
}

// unwrapReason returns the read action a data key is unwrapped for: the
// best form any sealed field is released in.
func unwrapReason(fields []policy.Field, forms []custos.Form) custos.Action {
	best := custos.ActionReadMasked
	for i, f := range fields {
		if !f.Class.Sealed() {
			continue
		}
		switch forms[i] {
		case custos.FormClear:
			return custos.ActionReadClear
		case custos.FormToken:
			best = custos.ActionReadToken
		}
	}
	return best
}

// open returns the stored JSON of rec's fields, opening the sealed part only
// when some sealed field is released in a form other than withheld. Values
// are as EncodeValue wrote them: canonical, ready to release in clear.
func (s *Service) open(ctx context.Context, r Request, action custos.Action, coll *schema.Collection, rec custos.SealedRecord, fields []policy.Field, forms []custos.Form) (map[string]json.RawMessage, error) {
	raw := map[string]json.RawMessage{}
	if err := json.Unmarshal(rec.Clear, &raw); err != nil {
		return nil, internal("decode record", err)
	}
	needSealed := false
	for i, f := range fields {
		if f.Class.Sealed() && forms[i] != custos.FormWithheld {
			needSealed = true
		}
	}
	if needSealed && rec.Sealed != nil {
		subj, err := s.subject(ctx, rec.Subject)
		if err != nil {
			return nil, err
		}
		key, err := s.key(ctx, subj, custos.KeyReason{Action: action, Principal: r.Principal.ID, Purpose: r.Purpose, Subject: subj.ID})
		if err != nil {
			return nil, err
		}
		plain, err := key.Open(coll.Name, rec.ID, rec.Sealed)
		if err != nil {
			return nil, internal("open record", err)
		}
		if err := json.Unmarshal(plain, &raw); err != nil {
			return nil, internal("decode sealed fields", err)
		}
	}
	for name := range raw {
		// A field since removed from the schema is not released.
		if _, ok := coll.Fields[name]; !ok {
			delete(raw, name)
		}
	}
	return raw, nil
}

// shape renders the stored value enc in form for a principal of org.
func (s *Service) shape(org string, f *schema.Field, form custos.Form, enc json.RawMessage) (Field, error) {
	if form == custos.FormWithheld {
		return Field{Form: form}, nil
	}
	if form == custos.FormClear {
		return Field{Form: form, Value: enc}, nil
	}
	v, err := schema.DecodeValue(f.Type, schema.MaxValue, enc)
	if err != nil {
		return Field{}, internal("decode stored value", err)
	}
	switch form {
	case custos.FormToken:
		t, err := s.cfg.Tokens.Token(org, f.Type, v)
		if err != nil {
			return Field{}, internal("derive token", err)
		}
		return Field{Form: form, Value: jsonString(t)}, nil
	case custos.FormMasked:
		m, err := token.Mask(f.Type, v)
		if err != nil {
			return Field{}, internal("mask value", err)
		}
		return Field{Form: form, Value: jsonString(m)}, nil
	}
	return Field{Form: custos.FormWithheld}, nil
}

func jsonString(s string) json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}
