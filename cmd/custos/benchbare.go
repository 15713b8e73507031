package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/custos/custos"
	"github.com/custos/custos/algo/guest"
	"github.com/custos/custos/examples/covisit"
	"github.com/custos/custos/internal/store/sqlite"
)

// bareServer is the baseline of custos bench: plain net/http handlers on a
// loopback port doing the same work as custos without custody: no
// authentication, no policy, no vault, no audit log.
//
//   - GET /records/{collection}/{id} reads the row from the deployment's
//     own store (custos.Store.Record on the same SQLite file) and writes it
//     as JSON: its clear fields and its sealed part as it is stored.
//   - POST /records/users takes the body custos takes and writes a row of
//     the same size into a store of the same type (SQLite, in a file of
//     its own so as not to touch custody's rows): the clear fields as
//     JSON, and in place of the sealed ones a blob as long as custody's
//     sealed part. No token refs: they exist for detokenization only.
//   - GET /export?after=ID walks the same store's users in pages, as
//     NDJSON of their clear fields: no opening, no tokens, no samples.
//   - POST /aggregate runs the aggregate scenario's query as one SQL
//     query on the deployment's SQLite file (read-only): no policy, no
//     size controls, no ledger of queries, no audit.
//   - POST /recommend runs the sample recommender compiled natively, with
//     a model trained natively on the same training input custody gives
//     the module, on the input custody would build for the subject, made
//     in advance: no input gathering, no sandbox, no output check, no
//     sealing of the input.
type bareServer struct {
	url   string
	srv   *http.Server
	read  custos.Store // the deployment's store
	write *sqlite.Store
	sql   *sql.DB // the deployment's SQLite file, read-only
	k     int     // k of aggregates
	// sealed are the users fields custody seals, and sealedSize the
	// length of the sealed part of a users record as custody stores it.
	sealed     map[string]bool
	sealedSize int

	mu sync.RWMutex
	// model and inputs are the sample recommender's, once set.
	model  []byte
	inputs map[string][]byte // recommend input by subject
}

func newBareServer(d *deployment) (*bareServer, error) {
	ws, err := sqlite.Open(filepath.Join(d.cfg.Dir, "bare.db"), "bare")
	if err != nil {
		return nil, err
	}
	// The aggregate baseline queries the deployment's SQLite file itself,
	// read-only.
	db, err := sql.Open("sqlite", "file:"+d.cfg.Path(d.cfg.Store.Path)+"?mode=ro&_pragma=query_only(1)&_pragma=busy_timeout(10000)")
	if err != nil {
		ws.Close()
		return nil, err
	}
	s := &bareServer{read: d.store, write: ws, sql: db, k: d.cfg.Aggregates.MinSubjects["default"], sealed: map[string]bool{}}
	users, err := d.schema.Collection("users")
	if err != nil {
		ws.Close()
		return nil, err
	}
	for name, f := range users.Fields {
		s.sealed[name] = f.Class.Sealed()
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /records/{collection}/{id}", s.getRecord)
	mux.HandleFunc("POST /records/users", s.postUser)
	mux.HandleFunc("GET /export", s.export)
	mux.HandleFunc("POST /recommend", s.recommend)
	mux.HandleFunc("POST /aggregate", s.aggregate)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		ws.Close()
		return nil, fmt.Errorf("couldn't listen on loopback: %w", err)
	}
	s.url = "http://" + ln.Addr().String()
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go s.srv.Serve(ln)
	return s, nil
}

func (s *bareServer) Close() error {
	return errors.Join(s.srv.Close(), s.write.Close(), s.sql.Close())
}

// aggregate answers the aggregate scenario's query with one SQL query on
// the deployment's SQLite file: watch events counted by the country of
// their subject's users record, groups of fewer than k subjects left
// out. No policy, no audit, no ledger of queries.
func (s *bareServer) aggregate(w http.ResponseWriter, r *http.Request) {
	rows, err := s.sql.QueryContext(r.Context(), `
		SELECT json_extract(u.clear, '$.country') AS country, COUNT(*), COUNT(DISTINCT w.subject)
		FROM records w JOIN records u ON u.collection = 'users' AND u.id = w.subject
		WHERE w.collection = 'watch_events'
		GROUP BY country`)
	if err != nil {
		bareError(w, err)
		return
	}
	defer rows.Close()
	type group struct {
		Key   []string `json:"key"`
		Value float64  `json:"value"`
	}
	var groups []group
	suppressed := 0
	for rows.Next() {
		var country string
		var n, subjects int
		if err := rows.Scan(&country, &n, &subjects); err != nil {
			bareError(w, err)
			return
		}
		if subjects < s.k {
			suppressed++
			continue
		}
		groups = append(groups, group{[]string{country}, float64(n)})
	}
	if err := rows.Err(); err != nil {
		bareError(w, err)
		return
	}
	bareJSON(w, http.StatusOK, map[string]any{"groups": groups, "suppressed": suppressed})
}

func bareError(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	if errors.Is(err, custos.ErrNotFound) {
		status = http.StatusNotFound
	}
	http.Error(w, err.Error(), status)
}

func bareJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (s *bareServer) getRecord(w http.ResponseWriter, r *http.Request) {
	rec, err := s.read.Record(r.Context(), r.PathValue("collection"), r.PathValue("id"))
	if err != nil {
		bareError(w, err)
		return
	}
	bareJSON(w, http.StatusOK, struct {
		ID         string          `json:"id"`
		Collection string          `json:"collection"`
		Fields     json.RawMessage `json:"fields"`
		Sealed     []byte          `json:"sealed"`
	}{rec.ID, rec.Collection, rec.Clear, rec.Sealed})
}

// prepareWrites learns the size of custody's sealed part from user 0's
// record, and registers users 0..n-1 in the bare store and writes their
// rows, so that the writes measured replace rows, as custody's do.
func (s *bareServer) prepareWrites(ctx context.Context, n int) error {
	rec, err := s.read.Record(ctx, "users", benchUser(0))
	if err != nil {
		return err
	}
	s.sealedSize = len(rec.Sealed)
	key := custos.WrappedKey{KEKID: "bare", Ciphertext: make([]byte, 60)}
	return parallel(ctx, 0, n, 4, func(ctx context.Context, i int) error {
		id := benchUser(i)
		if _, err := s.write.CreateSubject(ctx, custos.StoredSubject{Subject: custos.Subject{ID: id, Residency: "US"}, Key: key, CreatedAt: time.Now().UTC()}); err != nil {
			return err
		}
		fields := map[string]json.RawMessage{}
		for k, v := range userFields(i, 0) {
			fields[k], _ = json.Marshal(v)
		}
		rec, err := s.row(id, fields)
		if err == nil {
			_, err = s.write.PutRecord(ctx, rec, nil)
		}
		return err
	})
}

// row returns the users row of id with fields as the bare server stores
// it: the clear fields as JSON, and a blob as long as custody's sealed
// part in place of the others.
func (s *bareServer) row(id string, fields map[string]json.RawMessage) (custos.SealedRecord, error) {
	clear := map[string]json.RawMessage{}
	for k, v := range fields {
		if !s.sealed[k] {
			clear[k] = v
		}
	}
	c, err := json.Marshal(clear)
	if err != nil {
		return custos.SealedRecord{}, err
	}
	sealed := make([]byte, s.sealedSize)
	rand.Read(sealed)
	return custos.SealedRecord{Collection: "users", ID: id, Subject: id, Clear: c, Sealed: sealed, UpdatedAt: time.Now().UTC()}, nil
}

func (s *bareServer) postUser(w http.ResponseWriter, r *http.Request) {
	var body struct {
		ID     string                     `json:"id"`
		Fields map[string]json.RawMessage `json:"fields"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rec, err := s.row(body.ID, body.Fields)
	if err != nil {
		bareError(w, err)
		return
	}
	created, err := s.write.PutRecord(r.Context(), rec, nil)
	if err != nil {
		bareError(w, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	bareJSON(w, status, map[string]any{"id": body.ID, "created": created})
}

func (s *bareServer) export(w http.ResponseWriter, r *http.Request) {
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	recs, err := s.read.Records(r.Context(), "users", r.URL.Query().Get("after"), limit)
	if err != nil {
		bareError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w)
	for _, rec := range recs {
		enc.Encode(struct {
			ID     string          `json:"id"`
			Fields json.RawMessage `json:"fields"`
		}{rec.ID, rec.Clear})
	}
	last := r.URL.Query().Get("after")
	if len(recs) > 0 {
		last = recs[len(recs)-1].ID
	}
	enc.Encode(map[string]any{"cursor": last, "end": len(recs) < limit, "count": len(recs)})
}

// setRecommender gives the bare server the natively trained model and the
// inputs of the subjects it will be asked about.
func (s *bareServer) setRecommender(model []byte, inputs map[string][]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.model, s.inputs = model, inputs
}

func (s *bareServer) recommend(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Subject string `json:"subject"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.RLock()
	model, input, ok := s.model, s.inputs[body.Subject], s.inputs != nil
	s.mu.RUnlock()
	if !ok || input == nil {
		http.Error(w, "no input for this subject", http.StatusNotFound)
		return
	}
	in, err := guest.DecodeRecommendInput(input)
	if err != nil {
		bareError(w, err)
		return
	}
	items, err := covisit.Algorithm{}.Recommend(model, in)
	if err != nil {
		bareError(w, err)
		return
	}
	bareJSON(w, http.StatusOK, map[string]any{"items": items})
}
