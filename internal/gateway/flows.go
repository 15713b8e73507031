package gateway

import (
	"bufio"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"

	"github.com/custos/custos"
	"github.com/custos/custos/internal/custody"
	"github.com/custos/custos/internal/flow"
)

// NDJSON is the media type of an export: one JSON object per line.
const ndjson = "application/x-ndjson"

// queryInt returns the query parameter name as a non-negative integer, 0
// when absent.
func queryInt(r *http.Request, name string) (uint64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 10, 63)
	if err != nil {
		return 0, custos.Errorf(custos.CodeInvalidRequest, "%s must be a non-negative integer", name)
	}
	return n, nil
}

func (s *server) listFlows(w http.ResponseWriter, r *http.Request, req custody.Request) {
	flows, err := s.cfg.Custody.Flows(r.Context(), req)
	if err != nil {
		s.problem(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"flows": append([]*flow.Flow{}, flows...)})
}

// exportEnd is the last line of an export page.
type exportEnd struct {
	Cursor     string `json:"cursor"`
	End        bool   `json:"end"`
	Count      int    `json:"count"`
	AuditIndex uint64 `json:"audit_index,omitempty"`
}

// export streams a page of a flow as NDJSON: one {"id","fields"} object
// per record, then one {"cursor","end","count","audit_index"} line. The
// cursor is also in the Custos-Cursor header.
func (s *server) export(w http.ResponseWriter, r *http.Request, req custody.Request) {
	limit, err := queryInt(r, "limit")
	if err != nil {
		s.problem(w, r, err)
		return
	}
	cursor := r.URL.Query().Get("cursor")
	if len(cursor) > flow.MaxCursor {
		s.problem(w, r, custos.Errorf(custos.CodeInvalidRequest, "the cursor is not one this flow's export returned"))
		return
	}
	page, err := s.cfg.Custody.Export(r.Context(), req, r.PathValue("name"), cursor, int(min(limit, custody.MaxExportPage)))
	if rl, ok := errors.AsType[*custody.RateLimitedError](err); ok {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(rl.RetryAfter.Seconds()))))
	}
	if err != nil {
		s.problem(w, r, err)
		return
	}
	w.Header().Set("Content-Type", ndjson)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Custos-Cursor", page.Cursor)
	if page.AuditIndex > 0 {
		setAuditIndex(w, page.AuditIndex)
	}
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for _, rec := range page.Records {
		if err := enc.Encode(rec); err != nil {
			s.log.Warn("export interrupted", "route", r.Pattern, "err", err)
			return
		}
	}
	enc.Encode(exportEnd{Cursor: page.Cursor, End: page.End, Count: len(page.Records), AuditIndex: page.AuditIndex})
	bw.Flush()
}

func (s *server) flowSamples(w http.ResponseWriter, r *http.Request, req custody.Request) {
	after, err := queryInt(r, "after")
	if err != nil {
		s.problem(w, r, err)
		return
	}
	limit, err := queryInt(r, "limit")
	if err != nil {
		s.problem(w, r, err)
		return
	}
	samples, idx, err := s.cfg.Custody.FlowSamples(r.Context(), req, r.PathValue("name"), after, int(min(limit, flow.MaxSamples)))
	if err != nil {
		s.problem(w, r, err)
		return
	}
	setAuditIndex(w, idx)
	writeJSON(w, http.StatusOK, map[string]any{"flow": r.PathValue("name"), "samples": append([]flow.Sample{}, samples...), "audit_index": idx})
}
