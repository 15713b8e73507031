package gateway

import (
	"errors"
	"net/http"

	"github.com/custos/custos"
	"github.com/custos/custos/internal/algo"
	"github.com/custos/custos/internal/custody"
	"github.com/custos/custos/internal/registry"
)

// bundlesPath is the path bundles are submitted to, whose bodies have
// their own cap.
const bundlesPath = "/v1/algorithms"

// capBodies caps request bodies: MaxBundleBytes for a bundle submission,
// MaxBodyBytes for every other request.
func capBodies(h http.Handler, body, bundle int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := body
		if r.Method == http.MethodPost && r.URL.Path == bundlesPath {
			n = bundle
		}
		r2 := *r
		r2.Body = http.MaxBytesReader(w, r.Body, n)
		h.ServeHTTP(w, &r2)
	})
}

// algorithmReply is a bundle of the registry with the audit entry that
// records a change to it.
type algorithmReply struct {
	registry.Entry
	AuditIndex uint64 `json:"audit_index"`
}

func (s *server) writeChange(w http.ResponseWriter, status int, c custody.AlgorithmChange) {
	setAuditIndex(w, c.AuditIndex)
	writeJSON(w, status, algorithmReply{c.Entry, c.AuditIndex})
}

// submitAlgorithm takes a bundle file as `custos algo sign` writes it.
func (s *server) submitAlgorithm(w http.ResponseWriter, r *http.Request, req custody.Request) {
	b, err := algo.ReadBundle(r.Body)
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		s.problem(w, r, custos.Errorf(custos.CodeTooLarge, "the bundle is larger than the limit of this deployment"))
		return
	}
	if err != nil {
		s.problem(w, r, custos.Errorf(custos.CodeInvalidRequest, "the body is not a bundle file as custos algo sign writes it: %s", err))
		return
	}
	c, err := s.cfg.Custody.SubmitAlgorithm(r.Context(), req, b)
	if err != nil {
		s.problem(w, r, err)
		return
	}
	s.writeChange(w, createdStatus(c.Created), c)
}

// approveAlgorithm takes a reviewer's signature line over the bundle's
// manifest text, as `custos algo approve` makes it.
func (s *server) approveAlgorithm(w http.ResponseWriter, r *http.Request, req custody.Request) {
	var body struct {
		Signature string `json:"signature"`
	}
	if err := decode(r, &body); err != nil {
		s.problem(w, r, err)
		return
	}
	c, err := s.cfg.Custody.ApproveAlgorithm(r.Context(), req, r.PathValue("ref"), body.Signature)
	if err != nil {
		s.problem(w, r, err)
		return
	}
	s.writeChange(w, http.StatusOK, c)
}

func (s *server) retireAlgorithm(w http.ResponseWriter, r *http.Request, req custody.Request) {
	c, err := s.cfg.Custody.RetireAlgorithm(r.Context(), req, r.PathValue("ref"))
	if err != nil {
		s.problem(w, r, err)
		return
	}
	s.writeChange(w, http.StatusOK, c)
}

func (s *server) listAlgorithms(w http.ResponseWriter, r *http.Request, req custody.Request) {
	es, err := s.cfg.Custody.Algorithms(r.Context(), req)
	if err != nil {
		s.problem(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"algorithms": es})
}

func (s *server) getAlgorithm(w http.ResponseWriter, r *http.Request, req custody.Request) {
	e, err := s.cfg.Custody.Algorithm(r.Context(), req, r.PathValue("ref"))
	if err != nil {
		s.problem(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, e)
}
