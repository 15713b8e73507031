package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"strconv"
	"time"

	"github.com/custos/custos"
	"github.com/custos/custos/internal/aggregate"
	"github.com/custos/custos/internal/custody"
)

func setAuditIndex(w http.ResponseWriter, idx uint64) {
	w.Header().Set("Custos-Audit-Index", strconv.FormatUint(idx, 10))
}

// createdStatus is the status of a write: 201 when it created what it
// names, 200 when it replaced it.
func createdStatus(created bool) int {
	if created {
		return http.StatusCreated
	}
	return http.StatusOK
}

func (s *server) putSubject(w http.ResponseWriter, r *http.Request, req custody.Request) {
	var body struct {
		Residency string `json:"residency"`
	}
	if err := decode(r, &body); err != nil {
		s.problem(w, r, err)
		return
	}
	created, err := s.cfg.Custody.Register(r.Context(), req, custos.Subject{ID: r.PathValue("id"), Residency: body.Residency})
	if err != nil {
		s.problem(w, r, err)
		return
	}
	writeJSON(w, createdStatus(created), map[string]any{"id": r.PathValue("id"), "residency": body.Residency, "created": created})
}

func (s *server) deleteSubject(w http.ResponseWriter, r *http.Request, req custody.Request) {
	e, err := s.cfg.Custody.Erase(r.Context(), req, r.PathValue("id"))
	if err != nil {
		s.problem(w, r, err)
		return
	}
	setAuditIndex(w, e.AuditIndex)
	writeJSON(w, http.StatusOK, map[string]any{"erased": true, "records": e.Records, "receipt": string(e.Receipt), "audit_index": e.AuditIndex})
}

func (s *server) postRecord(w http.ResponseWriter, r *http.Request, req custody.Request) {
	var body struct {
		ID     string                     `json:"id"`
		Fields map[string]json.RawMessage `json:"fields"`
	}
	if err := decode(r, &body); err != nil {
		s.problem(w, r, err)
		return
	}
	if body.Fields == nil {
		s.problem(w, r, custos.Errorf(custos.CodeInvalidRequest, "the body needs an id and a fields object"))
		return
	}
	created, idx, err := s.cfg.Custody.Write(r.Context(), req, r.PathValue("collection"), body.ID, body.Fields)
	if err != nil {
		s.problem(w, r, err)
		return
	}
	setAuditIndex(w, idx)
	writeJSON(w, createdStatus(created), map[string]any{"id": body.ID, "created": created, "audit_index": idx})
}

// orderedFields encodes a read's fields in schema order.
type orderedFields custody.Read

func (o orderedFields) MarshalJSON() ([]byte, error) {
	buf := []byte{'{'}
	for i, name := range o.Order {
		if i > 0 {
			buf = append(buf, ',')
		}
		k, _ := json.Marshal(name)
		v, err := json.Marshal(o.Fields[name])
		if err != nil {
			return nil, err
		}
		buf = append(append(append(buf, k...), ':'), v...)
	}
	return append(buf, '}'), nil
}

func (s *server) getRecord(w http.ResponseWriter, r *http.Request, req custody.Request) {
	rd, err := s.cfg.Custody.Read(r.Context(), req, r.PathValue("collection"), r.PathValue("id"))
	if err != nil {
		s.problem(w, r, err)
		return
	}
	setAuditIndex(w, rd.AuditIndex)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, struct {
		ID         string        `json:"id"`
		Collection string        `json:"collection"`
		Fields     orderedFields `json:"fields"`
		AuditIndex uint64        `json:"audit_index"`
	}{rd.ID, rd.Collection, orderedFields(rd), rd.AuditIndex})
}

func (s *server) detokenize(w http.ResponseWriter, r *http.Request, req custody.Request) {
	var body struct {
		Tokens        []string             `json:"tokens"`
		Justification custos.Justification `json:"justification"`
		Approval      string               `json:"approval,omitempty"` // a grant from POST /v1/approvals
		BreakGlass    bool                 `json:"break_glass,omitempty"`
	}
	if err := decode(r, &body); err != nil {
		s.problem(w, r, err)
		return
	}
	res, err := s.cfg.Custody.Detokenize(r.Context(), req, custody.Detokenization{
		Tokens: body.Tokens, Justification: body.Justification, Approval: body.Approval, BreakGlass: body.BreakGlass,
	})
	if err != nil {
		s.problem(w, r, err)
		return
	}
	setAuditIndex(w, res.AuditIndex)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]any{"values": res.Values, "break_glass": res.BreakGlass, "audit_index": res.AuditIndex})
}

func (s *server) approve(w http.ResponseWriter, r *http.Request, req custody.Request) {
	var body struct {
		Requester     string               `json:"requester"`
		Tokens        []string             `json:"tokens"`
		Justification custos.Justification `json:"justification"`
	}
	if err := decode(r, &body); err != nil {
		s.problem(w, r, err)
		return
	}
	a, err := s.cfg.Custody.Approve(r.Context(), req, custody.ApprovalRequest{Requester: body.Requester, Tokens: body.Tokens, Justification: body.Justification})
	if err != nil {
		s.problem(w, r, err)
		return
	}
	setAuditIndex(w, a.AuditIndex)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, map[string]any{"approval": a.Grant, "expires": a.Expires.UTC().Format(time.RFC3339), "audit_index": a.AuditIndex})
}

// proof answers the inclusion proof of an audit index in the latest
// checkpoint, for a client to check that its release is on the log. The
// client must verify the checkpoint's signature and the proof itself:
// nothing here is to be trusted on its own.
func (s *server) proof(w http.ResponseWriter, r *http.Request) {
	idx, err := strconv.ParseUint(r.PathValue("index"), 10, 64)
	if err != nil {
		s.problem(w, r, custos.Errorf(custos.CodeInvalidRequest, "the index must be a non-negative integer"))
		return
	}
	cp, size, err := s.cfg.Log.ServedCheckpoint(r.Context())
	if errors.Is(err, fs.ErrNotExist) {
		w.Header().Set("Retry-After", "1")
		s.problem(w, r, custos.Errorf(custos.CodeUnavailable, "the log has no checkpoint yet; retry shortly"))
		return
	}
	if err != nil {
		s.problem(w, r, fmt.Errorf("couldn't read checkpoint: %w", err))
		return
	}
	if idx >= size {
		w.Header().Set("Retry-After", "1")
		s.problem(w, r, custos.Errorf(custos.CodeNotFound, "entry %d is not in the latest checkpoint (size %d) yet; retry shortly", idx, size))
		return
	}
	hashes, err := s.cfg.Log.Prove(r.Context(), idx, size)
	if err != nil {
		s.problem(w, r, fmt.Errorf("couldn't prove: %w", err))
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Index      uint64   `json:"index"`
		Size       uint64   `json:"size"`
		Proof      [][]byte `json:"proof"`
		Checkpoint string   `json:"checkpoint"`
	}{idx, size, hashes, string(cp)})
}

// accesses lists the audit entries about a subject, with their indexes, to
// answer the subject's access request with proofs.
func (s *server) accesses(w http.ResponseWriter, r *http.Request, req custody.Request) {
	h, err := s.cfg.Custody.History(r.Context(), req, r.PathValue("id"))
	if err != nil {
		s.problem(w, r, err)
		return
	}
	if h.Accesses == nil {
		h.Accesses = []custody.Access{}
	}
	setAuditIndex(w, h.AuditIndex)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, struct {
		Subject    string           `json:"subject"`
		Accesses   []custody.Access `json:"accesses"`
		Truncated  bool             `json:"truncated,omitempty"`
		AuditIndex uint64           `json:"audit_index"`
	}{r.PathValue("id"), h.Accesses, h.Truncated, h.AuditIndex})
}

func (s *server) train(w http.ResponseWriter, r *http.Request, req custody.Request) {
	if err := emptyBody(r); err != nil {
		s.problem(w, r, err)
		return
	}
	t, err := s.cfg.Custody.Train(r.Context(), req, r.PathValue("name"))
	if err != nil {
		s.problem(w, r, err)
		return
	}
	setAuditIndex(w, t.AuditIndex)
	writeJSON(w, http.StatusOK, t)
}

func (s *server) recommend(w http.ResponseWriter, r *http.Request, req custody.Request) {
	var body struct {
		Subject string `json:"subject"`
		K       int    `json:"k"`
	}
	if err := decode(r, &body); err != nil {
		s.problem(w, r, err)
		return
	}
	rec, err := s.cfg.Custody.Recommend(r.Context(), req, r.PathValue("name"), body.Subject, body.K)
	if err != nil {
		s.problem(w, r, err)
		return
	}
	setAuditIndex(w, rec.AuditIndex)
	writeJSON(w, http.StatusOK, rec)
}

func (s *server) replay(w http.ResponseWriter, r *http.Request, req custody.Request) {
	var body struct {
		Index *uint64 `json:"index"`
	}
	if err := decode(r, &body); err != nil {
		s.problem(w, r, err)
		return
	}
	if body.Index == nil {
		s.problem(w, r, custos.Errorf(custos.CodeInvalidRequest, "the body needs the index of a recommendation's audit entry"))
		return
	}
	rp, err := s.cfg.Custody.Replay(r.Context(), req, *body.Index)
	if err != nil {
		s.problem(w, r, err)
		return
	}
	setAuditIndex(w, rp.AuditIndex)
	writeJSON(w, http.StatusOK, rp)
}

// aggregate answers POST /v1/aggregate: figures over many subjects'
// records, released only for groups of at least k subjects.
func (s *server) aggregate(w http.ResponseWriter, r *http.Request, req custody.Request) {
	var q aggregate.Query
	if err := decode(r, &q); err != nil {
		s.problem(w, r, err)
		return
	}
	res, err := s.cfg.Custody.Aggregate(r.Context(), req, q)
	if err != nil {
		s.problem(w, r, err)
		return
	}
	setAuditIndex(w, res.AuditIndex)
	writeJSON(w, http.StatusOK, res)
}
