// Package witness is a minimal C2SP tlog-witness, which a monitor runs to
// cosign the checkpoints of custos audit logs, and the client that custos
// uses to collect those cosignatures.
//
// For each configured log (an origin and the log's verifier key), the
// witness keeps the latest checkpoint it cosigned. It cosigns a submitted
// checkpoint only if a trusted log key signed it and it extends that stored
// checkpoint: the request names the stored size, and its RFC 6962
// consistency proof leads from the stored root to the new one. A checkpoint
// of the stored size is cosigned again only if its root is the stored root;
// a smaller one never is. So no two checkpoints the witness cosigned for a
// log are inconsistent: a custodian that forks or rolls back its log cannot
// get it cosigned by this witness.
//
// The new checkpoint is durable (written to a temporary file, synced,
// renamed, directory synced) before the cosignature is returned; checking
// and storing happen under one lock per log, so concurrent submissions
// cannot roll the state back. One process owns a state directory at a time
// (New takes a lock on it).
//
// The witness trusts its state directory, its signer and the log verifier
// keys it is configured with. It trusts nothing in a request: bodies are
// capped at MaxRequestSize, parsed strictly, and verified before anything is
// stored. Requests are not authenticated beyond the log's signature, as the
// protocol intends.
package witness

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

// ErrInUse is returned by New when another process holds the state directory.
var ErrInUse = errors.New("witness state directory is in use by another process")

// Log is a log the witness cosigns for.
type Log struct {
	// Origin is the log's checkpoint origin line, without its newline.
	Origin string
	// Verifier checks the log's signature on its checkpoints.
	Verifier note.Verifier
}

// Config is what a Witness needs.
type Config struct {
	// Signer makes the witness's cosignatures. It must be a cosignature/v1
	// signer (see ReadSigner); the witness uses it as is.
	Signer note.Signer
	// Logs are the logs the witness knows; others are refused.
	Logs []Log
	// StateDir holds the latest cosigned checkpoint of each log. It is
	// created if missing.
	StateDir string
	// Logger receives one line per decision. Nil discards them.
	Logger *slog.Logger
}

// Witness is a tlog-witness. It is safe for concurrent use.
type Witness struct {
	signer note.Signer
	dir    string
	logger *slog.Logger
	lockf  *os.File
	logs   map[string]*logState // fixed after New
}

// logState is one log's verifier and latest cosigned checkpoint.
type logState struct {
	origin    string
	verifiers note.Verifiers
	mu        sync.Mutex
	cp        *checkpoint // nil until the first cosignature
}

// New opens the witness state in cfg.StateDir, taking a lock on it, and
// loads the stored checkpoint of every configured log.
func New(cfg Config) (*Witness, error) {
	if cfg.Signer == nil {
		return nil, errors.New("witness needs a signer")
	}
	if cfg.StateDir == "" {
		return nil, errors.New("witness needs a state directory")
	}
	w := &Witness{signer: cfg.Signer, dir: cfg.StateDir, logger: cfg.Logger, logs: make(map[string]*logState)}
	if w.logger == nil {
		w.logger = slog.New(slog.DiscardHandler)
	}
	for _, l := range cfg.Logs {
		if l.Origin == "" || strings.Contains(l.Origin, "\n") || l.Verifier == nil {
			return nil, fmt.Errorf("witness log %q needs a one-line origin and a verifier", l.Origin)
		}
		if w.logs[l.Origin] != nil {
			return nil, fmt.Errorf("witness log %q is configured twice", l.Origin)
		}
		w.logs[l.Origin] = &logState{origin: l.Origin, verifiers: note.VerifierList(l.Verifier)}
	}
	if err := w.open(); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *Witness) open() error {
	if err := os.MkdirAll(w.dir, 0o700); err != nil {
		return fmt.Errorf("couldn't create witness state directory: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(w.dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("couldn't open witness state lock: %w", err)
	}
	if err := lock(f); err != nil {
		f.Close()
		return fmt.Errorf("couldn't lock witness state directory: %w", err)
	}
	for origin, l := range w.logs {
		if l.cp, err = loadState(w.dir, origin); err != nil {
			f.Close()
			return fmt.Errorf("couldn't load witness state of log %q: %w", origin, err)
		}
	}
	w.lockf = f
	return nil
}

// Close releases the state directory.
func (w *Witness) Close() error {
	return w.lockf.Close()
}

// Handler serves the tlog-witness submission API, POST /add-checkpoint,
// relative to the handler's root.
func (w *Witness) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /add-checkpoint", w.serveAddCheckpoint)
	return http.MaxBytesHandler(mux, MaxRequestSize)
}

func (w *Witness) serveAddCheckpoint(rw http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			http.Error(rw, "request body too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(rw, "couldn't read request body", http.StatusBadRequest)
		return
	}
	sigs, err := w.addCheckpoint(body)
	if err == nil {
		rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
		rw.Write(sigs)
		return
	}
	if c, ok := errors.AsType[*sizeConflict](err); ok {
		// "The response body MUST consist of the tree size of the latest
		// cosigned checkpoint in decimal, followed by a newline (U+000A). The
		// response MUST have a Content-Type of text/x.tlog.size."
		rw.Header().Set("Content-Type", "text/x.tlog.size")
		rw.WriteHeader(http.StatusConflict)
		io.WriteString(rw, strconv.FormatUint(c.size, 10)+"\n")
		return
	}
	if rf, ok := errors.AsType[*refusal](err); ok {
		http.Error(rw, rf.msg, rf.status)
		return
	}
	w.logger.Error("witness failed", "err", err)
	http.Error(rw, "internal error", http.StatusInternalServerError)
}

// refusal is a request the witness turns down, with the status
// tlog-witness gives it and a public message.
type refusal struct {
	status int
	msg    string
	cause  error
}

func (e *refusal) Error() string {
	if e.cause == nil {
		return e.msg
	}
	return e.msg + ": " + e.cause.Error()
}

func (e *refusal) Unwrap() error { return e.cause }

func refuse(status int, msg string, cause error) error {
	return &refusal{status: status, msg: msg, cause: cause}
}

// sizeConflict is a request whose old size is not the stored size.
type sizeConflict struct{ size uint64 }

func (e *sizeConflict) Error() string {
	return fmt.Sprintf("old size does not match the witness's size %d", e.size)
}

// addCheckpoint handles one add-checkpoint body and returns the cosignature
// lines. The checks follow tlog-witness in order.
func (w *Witness) addCheckpoint(body []byte) ([]byte, error) {
	req, err := parseRequest(body)
	if err != nil {
		return nil, refuse(http.StatusBadRequest, "malformed request", err)
	}
	origin, ok := noteOrigin(req.checkpoint)
	if !ok {
		return nil, refuse(http.StatusBadRequest, "malformed checkpoint", nil)
	}
	l := w.logs[origin]
	if l == nil {
		// "If the checkpoint origin is unknown, the witness MUST respond with
		// a "404 Not Found" HTTP status code."
		return nil, refuse(http.StatusNotFound, "unknown log", nil)
	}
	n, cp, err := l.open(req.checkpoint)
	if err != nil {
		return nil, err
	}
	// "The old size MUST be equal to or lower than the checkpoint size.
	// Otherwise, the witness MUST respond with a "400 Bad Request" HTTP
	// status code."
	if req.oldSize > cp.size {
		return nil, refuse(http.StatusBadRequest, "old size is larger than the checkpoint size", nil)
	}
	return w.advance(l, req, n, cp)
}

// open verifies the log's signature on a submitted checkpoint and parses it.
// "The witness MUST verify the checkpoint signature against the public
// key(s) it trusts for the checkpoint origin, and it MUST ignore signatures
// from unknown keys. [...] If none of the signatures verify against a
// trusted public key, the witness MUST respond with a "403 Forbidden" HTTP
// status code."
func (l *logState) open(msg []byte) (*note.Note, *checkpoint, error) {
	n, err := note.Open(msg, l.verifiers)
	if _, ok := errors.AsType[*note.UnverifiedNoteError](err); ok {
		return nil, nil, refuse(http.StatusForbidden, "no valid log signature", err)
	}
	if _, ok := errors.AsType[*note.InvalidSignatureError](err); ok {
		return nil, nil, refuse(http.StatusForbidden, "no valid log signature", err)
	}
	if err != nil {
		return nil, nil, refuse(http.StatusBadRequest, "malformed checkpoint", err)
	}
	cp, err := parseCheckpoint(n.Text)
	if err != nil {
		return nil, nil, refuse(http.StatusBadRequest, "malformed checkpoint", err)
	}
	return n, cp, nil
}

// advance checks cp against the stored checkpoint of l and, if it extends
// it, stores it and cosigns it. Checking and storing happen under l.mu, as
// the spec requires: "checking the old size against the latest checkpoint
// and persisting the new checkpoint must be performed atomically".
func (w *Witness) advance(l *logState, req *request, n *note.Note, cp *checkpoint) ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	size, root := uint64(0), rfc6962.DefaultHasher.EmptyRoot()
	if l.cp != nil {
		size, root = l.cp.size, l.cp.root
	}
	// "The witness MUST check that the old size matches the size of the
	// latest checkpoint it cosigned for the checkpoint's origin (or zero if
	// it never cosigned a checkpoint for that origin). If it doesn't match,
	// the witness MUST respond with a "409 Conflict" HTTP status code."
	// A rollback (a checkpoint smaller than the stored one) always lands
	// here, since old size <= checkpoint size < stored size.
	if req.oldSize != size {
		return nil, &sizeConflict{size: size}
	}
	// "If the old size matches the checkpoint size, the witness MUST check
	// that the root hashes are also identical. If they don't match, the
	// witness MUST respond with a "409 Conflict" HTTP status code."
	if cp.size == size && !bytes.Equal(cp.root, root) {
		w.logger.Warn("witness refused a fork", "origin", l.origin, "size", cp.size, "checkpoint", n.Text)
		return nil, refuse(http.StatusConflict, "checkpoint has the witness's size but another root hash", nil)
	}
	// "If the Merkle Consistency Proof doesn't verify, the witness MUST
	// respond with a "422 Unprocessable Entity" HTTP status code."
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, size, cp.size, req.proof, root, cp.root); err != nil {
		w.logger.Warn("witness refused an inconsistent checkpoint", "origin", l.origin, "old", size, "size", cp.size, "err", err, "checkpoint", n.Text)
		return nil, refuse(http.StatusUnprocessableEntity, "consistency proof does not verify", err)
	}
	// "The witness MUST persist the new checkpoint before responding."
	if l.cp == nil || cp.size > l.cp.size {
		if err := storeState(w.dir, l.origin, verifiedNote(n)); err != nil {
			return nil, fmt.Errorf("couldn't store checkpoint of log %q: %w", l.origin, err)
		}
		l.cp = cp
	}
	// Should signing fail now, the state has advanced without a cosignature:
	// the submitter retries from the new size and is cosigned then.
	sigs, err := w.cosign(n.Text)
	if err != nil {
		return nil, err
	}
	w.logger.Info("witness cosigned", "origin", l.origin, "size", cp.size)
	return sigs, nil
}

// cosign returns the witness's signature lines on a note text.
func (w *Witness) cosign(text string) ([]byte, error) {
	signed, err := note.Sign(&note.Note{Text: text}, w.signer)
	if err != nil {
		return nil, fmt.Errorf("couldn't cosign checkpoint: %w", err)
	}
	// note.Sign returns the text, a blank line, then the signature lines.
	return signed[len(text)+1:], nil
}

// verifiedNote re-encodes n with only the signatures that verified.
func verifiedNote(n *note.Note) []byte {
	var b bytes.Buffer
	b.WriteString(n.Text)
	b.WriteByte('\n')
	for _, s := range n.Sigs {
		fmt.Fprintf(&b, "%s%s %s\n", sigPrefix, s.Name, s.Base64)
	}
	return b.Bytes()
}
