package gateway

import (
	"net/http"

	"github.com/custos/custos"
	"github.com/custos/custos/internal/custody"
	"github.com/custos/custos/internal/governance"
)

// suspensionPath serves the suspension state, which a suspended principal
// may still read.
const suspensionPath = "/v1/suspension"

// proposalReply is a proposal with the audit entry that records a change
// to it.
type proposalReply struct {
	governance.View
	AuditIndex uint64 `json:"audit_index"`
}

func (s *server) writeProposal(w http.ResponseWriter, status int, c custody.ProposalChange) {
	setAuditIndex(w, c.AuditIndex)
	writeJSON(w, status, proposalReply{c.Proposal, c.AuditIndex})
}

// propose takes the kind and the proposed files, by name.
func (s *server) propose(w http.ResponseWriter, r *http.Request, req custody.Request) {
	var body struct {
		Kind  governance.Kind   `json:"kind"`
		Files map[string]string `json:"files"`
	}
	if err := decode(r, &body); err != nil {
		s.problem(w, r, err)
		return
	}
	pc, err := s.cfg.Custody.Propose(r.Context(), req, body.Kind, governance.ContentOf(body.Files))
	if err != nil {
		s.problem(w, r, err)
		return
	}
	s.writeProposal(w, createdStatus(pc.Created), pc)
}

// signProposal takes a signer's signature line over the proposal's text,
// as `custos approve` makes it.
func (s *server) signProposal(w http.ResponseWriter, r *http.Request, req custody.Request) {
	var body struct {
		Signature string `json:"signature"`
	}
	if err := decode(r, &body); err != nil {
		s.problem(w, r, err)
		return
	}
	pc, err := s.cfg.Custody.SignProposal(r.Context(), req, r.PathValue("id"), body.Signature)
	if err != nil {
		s.problem(w, r, err)
		return
	}
	s.writeProposal(w, http.StatusOK, pc)
}

func (s *server) listProposals(w http.ResponseWriter, r *http.Request, req custody.Request) {
	ps, err := s.cfg.Custody.Proposals(r.Context(), req)
	if err != nil {
		s.problem(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"proposals": ps})
}

func (s *server) getProposal(w http.ResponseWriter, r *http.Request, req custody.Request) {
	p, err := s.cfg.Custody.Proposal(r.Context(), req, r.PathValue("id"))
	if err != nil {
		s.problem(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

// suspend takes the monitor's signed statement, as `custos suspend` and
// `custos lift` make it.
func (s *server) suspend(w http.ResponseWriter, r *http.Request, req custody.Request) {
	var body struct {
		Statement string `json:"statement"`
	}
	if err := decode(r, &body); err != nil {
		s.problem(w, r, err)
		return
	}
	if body.Statement == "" {
		s.problem(w, r, custos.Errorf(custos.CodeInvalidRequest, "the body names no statement"))
		return
	}
	sc, err := s.cfg.Custody.Suspend(r.Context(), req, []byte(body.Statement))
	if err != nil {
		s.problem(w, r, err)
		return
	}
	setAuditIndex(w, sc.AuditIndex)
	writeJSON(w, http.StatusOK, suspensionReply{sc.State, sc.AuditIndex})
}

// suspensionReply is the suspension state with the audit entry of the
// statement that made it.
type suspensionReply struct {
	governance.SuspensionState
	AuditIndex uint64 `json:"audit_index,omitempty"`
}

func (s *server) suspension(w http.ResponseWriter, r *http.Request, req custody.Request) {
	st, err := s.cfg.Custody.Suspension(r.Context(), req)
	if err != nil {
		s.problem(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, suspensionReply{SuspensionState: st})
}
