package custody

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/custos/custos"
)

// A model an algorithm learns is custodial data: it was computed from the
// subjects' data and may encode it. It is sealed in the vault under a data
// key of the algorithm's own, that of the pseudo-subject "algorithm/NAME"
// (no client can register or erase it: subject ids have no "/"), which key
// rotation re-wraps like any other. Each training stores a new version,
// record "vNNNNNNNNNN" of collection "algorithm/models" (no schema collection
// has a "/" either). Nothing returns a model to a caller: OpenModel is for
// the sandbox path only.

const modelCollection = "algorithm/models"

// Model describes a stored model version.
type Model struct {
	Algorithm string    `json:"algorithm"`
	Version   int       `json:"version"`
	Bundle    string    `json:"bundle"` // hex SHA-256 of the module that learned it
	Size      int       `json:"size"`
	Created   time.Time `json:"created"`
}

func modelSubject(name string) string { return "algorithm/" + name }

func modelID(version int) string { return fmt.Sprintf("v%010d", version) }

// SealModel stores model as the next version of a's model, learned by the
// module of digest bundle, and returns its description.
func (s *Service) SealModel(ctx context.Context, a Algorithm, bundle string, model []byte) (Model, error) {
	s.models.Lock()
	defer s.models.Unlock()
	latest, err := s.LatestModel(ctx, a.Name)
	if err != nil && custos.ErrorCode(err) != custos.CodeNotFound {
		return Model{}, err
	}
	m := Model{Algorithm: a.Name, Version: latest.Version + 1, Bundle: bundle, Size: len(model), Created: s.cfg.Now().UTC()}
	subj, _, err := s.cfg.Vault.Register(ctx, s.cfg.Store, custos.Subject{ID: modelSubject(a.Name), Residency: s.cfg.Jurisdiction})
	if err != nil {
		return Model{}, internal("register the algorithm's key", err)
	}
	clear, err := json.Marshal(m)
	if err != nil {
		return Model{}, internal("encode model", err)
	}
	if err := s.putSealed(ctx, subj, modelReason(a.Name), modelCollection, modelID(m.Version), clear, model, m.Created); err != nil {
		return Model{}, err
	}
	return m, nil
}

// LatestModel describes the newest version of the model of the algorithm
// name, or returns CodeNotFound when it has none.
func (s *Service) LatestModel(ctx context.Context, name string) (Model, error) {
	var last *custos.SealedRecord
	for after := ""; ; {
		page, err := s.cfg.Store.SubjectRecords(ctx, modelCollection, modelSubject(name), after, recordsPage)
		if err != nil {
			return Model{}, internal("list models", err)
		}
		if len(page) > 0 {
			last = &page[len(page)-1]
			after = last.ID
		}
		if len(page) < recordsPage {
			break
		}
	}
	if last == nil {
		return Model{}, custos.Errorf(custos.CodeNotFound, "the algorithm has no trained model: train it first")
	}
	return describeModel(*last)
}

// OpenModel returns the given version of the model of algorithm name, and
// its description. It is for running the algorithm and nothing else.
func (s *Service) OpenModel(ctx context.Context, name string, version int) (Model, []byte, error) {
	rec, err := s.cfg.Store.Record(ctx, modelCollection, modelID(version))
	if errors.Is(err, custos.ErrNotFound) || err == nil && rec.Subject != modelSubject(name) {
		return Model{}, nil, custos.Errorf(custos.CodeNotFound, "no such model version")
	}
	if err != nil {
		return Model{}, nil, internal("read model", err)
	}
	m, err := describeModel(rec)
	if err != nil {
		return Model{}, nil, err
	}
	model, err := s.openSealed(ctx, rec, modelReason(name))
	if err != nil {
		return Model{}, nil, err
	}
	return m, model, nil
}

func modelReason(name string) custos.KeyReason {
	return custos.KeyReason{Principal: "algorithm:" + name, Purpose: PurposeAlgorithm}
}

// putSealed stores data as the record id of collection, sealed under the
// data key of subj, with clear as the record's unsealed part: the custodial
// data of algorithms (models, inputs kept for replay) is kept like any
// record, and erased and rotated with its subject.
func (s *Service) putSealed(ctx context.Context, subj custos.StoredSubject, reason custos.KeyReason, collection, id string, clear, data []byte, at time.Time) error {
	reason.Subject = subj.ID
	key, err := s.key(ctx, subj, reason)
	if err != nil {
		return err
	}
	sealed, err := key.Seal(collection, id, data)
	if err != nil {
		return internal("seal "+collection, err)
	}
	rec := custos.SealedRecord{Collection: collection, ID: id, Subject: subj.ID, Clear: clear, Sealed: sealed, UpdatedAt: at}
	if _, err := s.cfg.Store.PutRecord(ctx, rec, nil); err != nil {
		return internal("store "+collection, err)
	}
	return nil
}

// openSealed returns the sealed part of rec, which putSealed stored.
func (s *Service) openSealed(ctx context.Context, rec custos.SealedRecord, reason custos.KeyReason) ([]byte, error) {
	subj, err := s.subject(ctx, rec.Subject)
	if err != nil {
		return nil, err
	}
	reason.Subject = subj.ID
	key, err := s.key(ctx, subj, reason)
	if err != nil {
		return nil, err
	}
	data, err := key.Open(rec.Collection, rec.ID, rec.Sealed)
	if err != nil {
		return nil, internal("open "+rec.Collection, err)
	}
	return data, nil
}

func describeModel(rec custos.SealedRecord) (Model, error) {
	var m Model
	if err := json.Unmarshal(rec.Clear, &m); err != nil {
		return Model{}, internal("decode model", err)
	}
	v, err := strconv.Atoi(strings.TrimPrefix(rec.ID, "v"))
	if err != nil || v != m.Version {
		return Model{}, internal("decode model", fmt.Errorf("record %s holds version %d", rec.ID, m.Version))
	}
	return m, nil
}
