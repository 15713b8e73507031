// Package gateway is the HTTP API of custos: thin handlers that
// authenticate the caller, decode and bound the request, call custody and
// encode its answer.
//
// Guarantees: every /v1/ request is authenticated before its parameters,
// headers or body are read and before custody is asked anything (401 and
// nothing else otherwise; only routing, 404 and 405, and overload, 503,
// come first, and they say nothing /openapi.json does not); bodies are
// capped (a bundle submission by its own, larger cap); every error is
// an RFC 9457 problem JSON with a stable code, whose detail comes from a
// *custos.Error (written free of personal data) or is "internal error", the
// cause going to the log; a principal of the operator the monitor
// suspended gets 403 "suspended" on every route but GET /v1/suspension,
// before custody is asked anything else; log lines name routes, never paths, so subject and
// record ids stay out of logs; when more requests are in flight than the
// limit, the answer is 503 with Retry-After.
package gateway

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/custos/custos"
	"github.com/custos/custos/internal/algo"
	"github.com/custos/custos/internal/custody"
	"github.com/custos/custos/internal/identity"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Config is what the gateway needs.
type Config struct {
	Custody  *custody.Service
	Verifier *identity.Verifier
	Logger   *slog.Logger
	// Registry collects the gateway's metrics, served at /metrics.
	Registry *prometheus.Registry
	// MaxBodyBytes caps request bodies; 1 MiB when zero.
	MaxBodyBytes int64
	// MaxBundleBytes caps the body of an algorithm bundle's submission;
	// algo.MaxBundleSize when zero.
	MaxBundleBytes int64
	// MaxInFlight caps the requests served at once; 512 when zero.
	MaxInFlight int
	// RequestTimeout bounds each request; 10s when zero.
	RequestTimeout time.Duration
	// TrainTimeout bounds a training request, which reads every record an
	// algorithm declares; 10m when zero.
	TrainTimeout time.Duration
	// Log, if set, is the transparency log: served read-only at /log/
	// (C2SP tlog-tiles) with inclusion proofs at /v1/audit/proof/{index}.
	Log AuditLog
	// CertPrincipal, if set, turns a client certificate that TLS verified
	// against the custodian's client CA into a principal, for requests that
	// carry no bearer token (mutual TLS).
	CertPrincipal func(*x509.Certificate) (custos.Principal, error)
	// AuthFailureInterval is how often failed authentications are recorded
	// on the audit log, as one entry with their count; 1 minute when zero.
	AuthFailureInterval time.Duration
	// Ready reports whether custos can serve; /healthz answers 503 when it
	// returns an error.
	Ready func(context.Context) error
}

type server struct {
	cfg    Config
	routes []string
	// authFailures counts failed authentications not yet recorded.
	authFailures atomic.Int64
	stop         chan struct{}
	stopped      chan struct{}
	log          *slog.Logger
	inflight     chan struct{}
	requests     *prometheus.CounterVec
	latency      *prometheus.HistogramVec
}

// AuditLog is the transparency log as the gateway serves it. Everything it
// serves is public: entries hold no personal data.
type AuditLog interface {
	// Handler serves the tlog-tiles resources relative to its mount point.
	Handler() http.Handler
	// ServedCheckpoint returns the checkpoint served at /log/checkpoint,
	// with witness cosignatures when there are some, and its tree size.
	ServedCheckpoint(ctx context.Context) ([]byte, uint64, error)
	// Prove returns the inclusion proof of index in the tree of size.
	Prove(ctx context.Context, index, size uint64) ([][]byte, error)
}

// Gateway is the API's handler.
type Gateway struct {
	http.Handler
	srv  *server
	once sync.Once
}

// Close stops the gateway's background work, recording the failed
// authentications counted since the last interval.
func (g *Gateway) Close() {
	g.once.Do(func() {
		close(g.srv.stop)
		<-g.srv.stopped
	})
}

// Routes lists "METHOD /pattern" of every API route, sorted.
func (g *Gateway) Routes() []string { return slices.Clone(g.srv.routes) }

// New returns the gateway.
func New(cfg Config) *Gateway {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	if cfg.MaxBundleBytes <= 0 {
		cfg.MaxBundleBytes = algo.MaxBundleSize
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 512
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 10 * time.Second
	}
	if cfg.TrainTimeout <= 0 {
		cfg.TrainTimeout = 10 * time.Minute
	}
	if cfg.AuthFailureInterval <= 0 {
		cfg.AuthFailureInterval = time.Minute
	}
	s := &server{cfg: cfg, log: cfg.Logger, inflight: make(chan struct{}, cfg.MaxInFlight), stop: make(chan struct{}), stopped: make(chan struct{})}
	s.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "custos_http_requests_total", Help: "HTTP requests by route and status code.",
	}, []string{"route", "code"})
	s.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "custos_http_request_duration_seconds", Help: "HTTP request latency by route.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	}, []string{"route"})
	cfg.Registry.MustRegister(s.requests, s.latency)

	mux := http.NewServeMux()
	s.route(mux, "/healthz", methods{"GET": s.health})
	// /metrics is outside the in-flight limit: an overloaded gateway can
	// still be observed.
	mux.Handle("/metrics", s.dispatch("/metrics", methods{"GET": promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{}).ServeHTTP}))
	s.route(mux, "/openapi.json", methods{"GET": serveOpenAPI})
	s.route(mux, "/v1/subjects/{id}", methods{"PUT": s.auth(s.putSubject), "DELETE": s.auth(s.deleteSubject)})
	s.route(mux, "/v1/subjects/{id}/accesses", methods{"GET": s.auth(s.accesses)})
	s.route(mux, "/v1/records/{collection}", methods{"POST": s.auth(s.postRecord)})
	s.route(mux, "/v1/records/{collection}/{id}", methods{"GET": s.auth(s.getRecord)})
	s.route(mux, "/v1/detokenize", methods{"POST": s.auth(s.detokenize)})
	s.route(mux, "/v1/approvals", methods{"POST": s.auth(s.approve)})
	s.route(mux, "/v1/algorithms/{name}/train", methods{"POST": s.auth(s.train)})
	s.route(mux, "/v1/algorithms/{name}/recommend", methods{"POST": s.auth(s.recommend)})
	s.route(mux, "/v1/audit/replay", methods{"POST": s.auth(s.replay)})
	s.route(mux, "/v1/aggregate", methods{"POST": s.auth(s.aggregate)})
	s.route(mux, bundlesPath, methods{"GET": s.auth(s.listAlgorithms), "POST": s.auth(s.submitAlgorithm)})
	s.route(mux, "/v1/algorithms/{ref}", methods{"GET": s.auth(s.getAlgorithm)})
	s.route(mux, "/v1/algorithms/{ref}/approvals", methods{"POST": s.auth(s.approveAlgorithm)})
	s.route(mux, "/v1/algorithms/{ref}/retire", methods{"POST": s.auth(s.retireAlgorithm)})
	s.route(mux, "/v1/proposals", methods{"GET": s.auth(s.listProposals), "POST": s.auth(s.propose)})
	s.route(mux, "/v1/proposals/{id}", methods{"GET": s.auth(s.getProposal)})
	s.route(mux, "/v1/proposals/{id}/signatures", methods{"POST": s.auth(s.signProposal)})
	s.route(mux, suspensionPath, methods{"GET": s.auth(s.suspension), "POST": s.auth(s.suspend)})
	s.route(mux, "/v1/flows", methods{"GET": s.auth(s.listFlows)})
	s.route(mux, "/v1/flows/{name}/export", methods{"GET": s.auth(s.export)})
	s.route(mux, "/v1/flows/{name}/samples", methods{"GET": s.auth(s.flowSamples)})
	if cfg.Log != nil {
		tiles := http.StripPrefix("/log", cfg.Log.Handler()).ServeHTTP
		s.route(mux, "/log/checkpoint", methods{"GET": tiles, "HEAD": tiles})
		s.route(mux, "/log/tile/{tile...}", methods{"GET": tiles, "HEAD": tiles})
		s.route(mux, "/v1/audit/proof/{index}", methods{"GET": s.proof})
	}
	mux.Handle("/", s.observe("unmatched", func(w http.ResponseWriter, r *http.Request) {
		s.problem(w, r, custos.Errorf(custos.CodeNotFound, "no such endpoint; see /openapi.json"))
	}))
	slices.Sort(s.routes)
	go s.recordAuthFailures()
	return &Gateway{Handler: capBodies(mux, cfg.MaxBodyBytes, cfg.MaxBundleBytes), srv: s}
}

// recordAuthFailures records the failed authentications of each interval,
// until Close. A count that cannot be recorded is kept for the next try.
func (s *server) recordAuthFailures() {
	defer close(s.stopped)
	t := time.NewTicker(s.cfg.AuthFailureInterval)
	defer t.Stop()
	flush := func() {
		n := s.authFailures.Swap(0)
		if n == 0 || s.cfg.Custody == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.cfg.Custody.RecordAuthFailures(ctx, int(n), s.cfg.AuthFailureInterval); err != nil {
			s.authFailures.Add(n)
			s.log.Error("failed authentications not recorded; kept for the next interval", "count", n, "err", err)
		}
	}
	for {
		select {
		case <-t.C:
			flush()
		case <-s.stop:
			flush()
			return
		}
	}
}

// methods maps HTTP methods to handlers of one path; other methods get a
// 405 problem with an Allow header.
type methods map[string]http.HandlerFunc

// route mounts m at pattern, bounded and observed.
func (s *server) route(mux *http.ServeMux, pattern string, m methods) {
	mux.Handle(pattern, s.observe(pattern, s.dispatch(pattern, m)))
}

// dispatch calls the handler of the request's method, or answers 405 with
// the Allow header.
func (s *server) dispatch(pattern string, m methods) http.HandlerFunc {
	allowed := slices.Sorted(maps.Keys(m))
	for _, method := range allowed {
		s.routes = append(s.routes, method+" "+pattern)
	}
	allow := strings.Join(allowed, ", ")
	return func(w http.ResponseWriter, r *http.Request) {
		h, ok := m[r.Method]
		if !ok {
			w.Header().Set("Allow", allow)
			s.problemStatus(w, r, http.StatusMethodNotAllowed, custos.Errorf(custos.CodeInvalidRequest, "this method is not allowed here; see the Allow header"))
			return
		}
		h(w, r)
	}
}

// observe bounds concurrency and time, and counts and logs each request.
func (s *server) observe(route string, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		select {
		case s.inflight <- struct{}{}:
			defer func() { <-s.inflight }()
			timeout := s.cfg.RequestTimeout
			if route == "/v1/algorithms/{name}/train" {
				timeout = s.cfg.TrainTimeout
			}
			ctx, cancel := context.WithTimeout(r.Context(), timeout)
			defer cancel()
			h(sw, r.WithContext(ctx))
		default:
			sw.Header().Set("Retry-After", "1")
			s.problem(sw, r, custos.Errorf(custos.CodeUnavailable, "too many requests in flight; retry later"))
		}
		elapsed := time.Since(start)
		s.requests.WithLabelValues(route, strconv.Itoa(sw.status)).Inc()
		s.latency.WithLabelValues(route).Observe(elapsed.Seconds())
		s.log.Info("request", "method", r.Method, "route", route, "status", sw.status, "ms", float64(elapsed.Microseconds())/1000)
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// auth verifies the bearer token and the purpose header before h runs.
func (s *server) auth(h func(http.ResponseWriter, *http.Request, custody.Request)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := s.principal(r)
		if err != nil {
			s.authFailures.Add(1)
			s.log.Info("authentication failed", "route", r.Pattern, "why", err)
			w.Header().Set("WWW-Authenticate", `Bearer realm="custos"`)
			s.problem(w, r, custos.Errorf(custos.CodeUnauthenticated, "a valid bearer token is required"))
			return
		}
		purpose := r.Header.Get("Custos-Purpose")
		if purpose != "" && !purposeRE.MatchString(purpose) {
			s.problem(w, r, custos.Errorf(custos.CodeInvalidRequest, "Custos-Purpose must be a lower-case code of at most 64 letters, digits, _ and -"))
			return
		}
		req := custody.Request{Principal: p, Purpose: custos.Purpose(purpose)}
		// A suspended principal of the operator may read its suspension
		// and nothing else.
		if !(r.Method == http.MethodGet && r.Pattern == suspensionPath) {
			if err := s.cfg.Custody.CheckSuspended(r.Context(), req, r.Method+" "+r.Pattern); err != nil {
				s.problem(w, r, err)
				return
			}
		}
		h(w, r, req)
	}
}

var (
	purposeRE      = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,63}$`)
	unknownFieldRE = regexp.MustCompile(`^json: unknown field "[A-Za-z0-9_]+"$`)
)

func (s *server) principal(r *http.Request) (custos.Principal, error) {
	if _, bearer := r.Header["Authorization"]; !bearer && s.cfg.CertPrincipal != nil &&
		r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.VerifiedChains[0]) > 0 {
		return s.cfg.CertPrincipal(r.TLS.VerifiedChains[0][0])
	}
	tok, err := identity.BearerToken(r.Header)
	if err != nil {
		return custos.Principal{}, err
	}
	return s.cfg.Verifier.Verify(tok)
}

func (s *server) health(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Ready != nil {
		if err := s.cfg.Ready(r.Context()); err != nil {
			s.log.Error("not ready", "err", err)
			s.problem(w, r, custos.Errorf(custos.CodeUnavailable, "not ready"))
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "policy": s.cfg.Custody.Policy().Version()})
}

// decode reads one JSON object into v, refusing unknown fields, trailing
// data and bodies over the cap.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return custos.Errorf(custos.CodeTooLarge, "the body is larger than the limit of this deployment")
		}
		return custos.Errorf(custos.CodeInvalidRequest, "the body is not valid JSON of the expected shape: %s", jsonProblem(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return custos.Errorf(custos.CodeInvalidRequest, "the body holds data after its JSON object")
	}
	return nil
}

// emptyBody refuses a body other than none or an empty JSON object.
func emptyBody(r *http.Request) error {
	b, err := io.ReadAll(r.Body)
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return custos.Errorf(custos.CodeTooLarge, "the body is larger than the limit of this deployment")
	} else if err != nil {
		return custos.Errorf(custos.CodeInvalidRequest, "the body could not be read")
	}
	if t := bytes.TrimSpace(b); len(t) != 0 && !bytes.Equal(t, []byte("{}")) {
		return custos.Errorf(custos.CodeInvalidRequest, "the body must be empty or {}")
	}
	return nil
}

// jsonProblem describes a decoding error without quoting the input.
func jsonProblem(err error) string {
	if e, ok := errors.AsType[*json.SyntaxError](err); ok {
		return "syntax error at byte " + strconv.FormatInt(e.Offset, 10)
	}
	if e, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		return "wrong type for " + e.Field
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "unexpected end of body"
	}
	if msg := err.Error(); len(msg) < 80 && unknownFieldRE.MatchString(msg) {
		return msg[len("json: "):]
	}
	return "malformed"
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	writeJSONBody(w, status, v)
}

func writeJSONBody(w http.ResponseWriter, status int, v any) {
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}
