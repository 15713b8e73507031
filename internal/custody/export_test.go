package custody

import (
	"context"
	"encoding/json"

	"github.com/custos/custos"
	"github.com/custos/custos/internal/schema"
)

// PutForBench stores a record of a registered subject as a write would
// seal it, but without its token refs and its audit entry: for filling a
// store with millions of records in benchmarks of reads that do not
// detokenize.
func (s *Service) PutForBench(ctx context.Context, collection, id string, raw map[string]json.RawMessage) error {
	coll, err := s.Schema().Collection(collection)
	if err != nil {
		return err
	}
	values, err := coll.Decode(raw)
	if err != nil {
		return err
	}
	subj, err := s.subject(ctx, values[coll.Subject].(string))
	if err != nil {
		return err
	}
	clearPart, sealed := map[string]json.RawMessage{}, map[string]json.RawMessage{}
	for name, v := range values {
		enc, err := schema.EncodeValue(coll.Fields[name].Type, v)
		if err != nil {
			return err
		}
		if coll.Fields[name].Class.Sealed() {
			sealed[name] = enc
		} else {
			clearPart[name] = enc
		}
	}
	rec := custos.SealedRecord{Collection: coll.Name, ID: id, Subject: subj.ID, UpdatedAt: s.cfg.Now()}
	rec.Clear, _ = json.Marshal(clearPart)
	if len(sealed) > 0 {
		key, err := s.key(ctx, subj, custos.KeyReason{Action: custos.ActionWrite, Subject: subj.ID})
		if err != nil {
			return err
		}
		plain, _ := json.Marshal(sealed)
		if rec.Sealed, err = key.Seal(coll.Name, id, plain); err != nil {
			return err
		}
	}
	_, err = s.cfg.Store.PutRecord(ctx, rec, nil)
	return err
}
