// Package registry is the custodian's registry of the operator's algorithm
// bundles (see internal/algo): what was submitted, who approved it, what
// may run and what was retired.
//
// A bundle moves from submitted to active to retired, never back. It is
// submitted only if its manifest is signed by one of the configured
// operator keys and its module is the one the manifest names. It becomes
// active only when Required distinct reviewers, among the configured
// reviewer keys, have each signed exactly its manifest text, and the stored
// bundle still verifies at that moment. When a bundle becomes active, the
// active bundle of the same name, if any, is retired: one name has at most
// one active bundle. Active and Approved read the files again before they
// hand out a module, and verify everything again unless the files are byte
// for byte the ones that last verified: a module that differs from the
// approved digest by one bit never runs, whatever the registry's state says.
//
// Every change is first passed to the caller's Record function (which
// makes it an audit entry) and is made durable only if that succeeds, so
// nothing changes unrecorded. Changes are written with internal/safefile:
// a crash leaves each bundle as it was before the change or after it. A
// bundle is written into a temporary directory renamed into place, so a
// crashed submission leaves nothing that Open takes for a bundle.
//
// The registry trusts its directory to hold what it wrote: Open refuses a
// registry whose manifests or states do not parse, and Runnable and
// activation re-verify signatures and digests rather than trust the state.
// It is safe for concurrent use; changes are serialized.
package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/custos/custos"
	"github.com/custos/custos/internal/algo"
	"github.com/custos/custos/internal/safefile"
	"golang.org/x/mod/sumdb/note"
)

// State is where a bundle is in its life.
type State string

// The states of a bundle.
const (
	Submitted State = "submitted" // signed by the operator, waiting for approvals
	Active    State = "active"    // approved: the one bundle of its name that may run
	Retired   State = "retired"   // never runs again
)

// The actions of the events a change is made of, as the audit log names
// them.
const (
	ActionSubmit   = "algo-submit"
	ActionApprove  = "algo-approve"
	ActionActivate = "algo-activate"
	ActionRetire   = "algo-retire"
)

// Entry is what the registry says of one bundle. Its JSON is the API's.
type Entry struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	// Digest is the hex SHA-256 of the manifest text: the bundle's
	// identity, which reviewers sign.
	Digest       string `json:"digest"`
	ModuleSHA256 string `json:"module_sha256"`
	SourceSHA256 string `json:"source_sha256"`
	State        State  `json:"state"`
	// Operator names the operator key that signed the manifest.
	Operator string `json:"operator"`
	// Approvers names the reviewer keys whose approvals verify, sorted.
	Approvers []string `json:"approvers"`
	// Required is the number of approvals the bundle needs to run.
	Required  int       `json:"approvals_required"`
	Submitted time.Time `json:"submitted"`
	Activated time.Time `json:"activated,omitzero"`
	Retired   time.Time `json:"retired,omitzero"`
	// Manifest is the manifest text, set by Get only.
	Manifest string `json:"manifest,omitempty"`
}

// Ref returns the reference that names e exactly: NAME@sha256:DIGEST.
func (e Entry) Ref() string { return e.Name + "@sha256:" + e.Digest }

// Event is one step of a change, passed to Record before the change is
// made durable.
type Event struct {
	Action string // ActionSubmit, ActionApprove, ActionActivate or ActionRetire
	Entry  Entry  // the bundle as the change leaves it
	// Approver names the reviewer key of an approval.
	Approver string
	// Detail says why, for a retirement the registry made itself.
	Detail string
}

// Record makes the events of a change durable, in order, before the change
// is. If it fails, the change is not made and its error is returned.
type Record func([]Event) error

// Config is a registry's configuration.
type Config struct {
	// Dir is the registry's directory, created if missing.
	Dir string
	// Operators verify bundles' manifests; Reviewers verify approvals. Both
	// are note verifier keys (the text of a NAME.vkey file). No key may be
	// listed twice, under one name or two, and no two keys may share a
	// name: one key counts once, and the operator never approves its own
	// bundles.
	Operators []string
	Reviewers []string
	// Required is the number of distinct reviewers' approvals a bundle
	// needs: between 1 and len(Reviewers) when there are reviewers.
	Required int
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Registry is the registry of bundles. Make one with Open.
type Registry struct {
	cfg       Config
	operators note.Verifiers
	reviewers note.Verifiers
	mu        sync.Mutex
	bundles   map[string]*bundle // by digest
}

// bundle is a bundle as the registry holds it in memory: its module stays
// on disk.
type bundle struct {
	entry     Entry
	text      []byte   // the manifest text
	approvals []string // reviewers' signature lines, as posted
	// ok is the last copy of the bundle's files that verified, kept while
	// the bundle is active (so one per name at most), or nil: files equal
	// to it byte for byte need not be verified again.
	ok *verified
}

// verified is a copy of a bundle's files that verified, and its manifest.
// It is never changed.
type verified struct {
	note, module []byte
	manifest     *algo.Manifest
}

// state is a bundle's state.json.
type state struct {
	State     State     `json:"state"`
	Operator  string    `json:"operator"`
	Approvals []string  `json:"approvals,omitempty"`
	Submitted time.Time `json:"submitted"`
	Activated time.Time `json:"activated,omitzero"`
	Retired   time.Time `json:"retired,omitzero"`
}

// The files of a bundle's directory.
const (
	noteFile   = "manifest.note"
	moduleFile = "module.wasm"
	stateFile  = "state.json"
	maxState   = 64 << 10
	maxNote    = algo.MaxManifestSize + 16<<10
)

var digestRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Open checks cfg and loads the registry in cfg.Dir.
func Open(cfg Config) (*Registry, error) {
	operators, reviewers, err := verifiers(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("couldn't make the algorithm registry: %w", err)
	}
	r := &Registry{
		cfg:       cfg,
		operators: note.VerifierList(operators...),
		reviewers: note.VerifierList(reviewers...),
		bundles:   map[string]*bundle{},
	}
	if err := r.load(); err != nil {
		return nil, err
	}
	return r, nil
}

// verifiers parses cfg's keys, refusing sets that would let one key count
// twice or the operator approve its own bundles.
func verifiers(cfg Config) (operators, reviewers []note.Verifier, err error) {
	if len(cfg.Reviewers) > 0 && (cfg.Required < 1 || cfg.Required > len(cfg.Reviewers)) {
		return nil, nil, fmt.Errorf("algorithm approvals must be between 1 and the number of reviewers (%d), not %d", len(cfg.Reviewers), cfg.Required)
	}
	if len(cfg.Operators) > 0 && len(cfg.Reviewers) == 0 {
		return nil, nil, errors.New("algorithm operators are listed but no reviewers: no bundle could ever be approved")
	}
	names, keys := map[string]bool{}, map[string]bool{}
	parse := func(texts []string, set string) ([]note.Verifier, error) {
		var vs []note.Verifier
		for i, t := range texts {
			v, err := note.NewVerifier(t)
			if err != nil {
				return nil, fmt.Errorf("algorithm %s key %d is not a note verifier key: %w", set, i+1, err)
			}
			// The text is name+hash+key, where only key may hold a +.
			key := strings.SplitN(t, "+", 3)[2]
			switch {
			case keys[key]:
				return nil, fmt.Errorf("algorithm key %s is listed twice (under another name, or as both an operator's and a reviewer's): one key counts once, and the operator must not approve its own bundles", v.Name())
			case names[v.Name()]:
				return nil, fmt.Errorf("two algorithm keys are named %s: each key needs its own name", v.Name())
			}
			keys[key], names[v.Name()] = true, true
			vs = append(vs, v)
		}
		return vs, nil
	}
	if operators, err = parse(cfg.Operators, "operator"); err != nil {
		return nil, nil, err
	}
	if reviewers, err = parse(cfg.Reviewers, "reviewer"); err != nil {
		return nil, nil, err
	}
	return operators, reviewers, nil
}

// CheckReviewers reports whether SetReviewers would accept reviewers and
// required.
func (r *Registry) CheckReviewers(reviewers []string, required int) error {
	cfg := r.cfg
	cfg.Reviewers, cfg.Required = reviewers, required
	_, _, err := verifiers(cfg)
	return err
}

// SetReviewers replaces the reviewers' keys and the number of approvals a
// bundle needs, as a signed change of governance does. Approvals are
// counted again against the new set: a key taken out of it no longer
// counts, and a bundle active under the old set runs only if its
// approvals still reach required (Active and Approved check). It refuses
// sets Open refuses.
func (r *Registry) SetReviewers(reviewers []string, required int) error {
	cfg := r.cfg
	cfg.Reviewers, cfg.Required = reviewers, required
	_, vs, err := verifiers(cfg)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cfg.Reviewers, r.cfg.Required, r.reviewers = reviewers, required, note.VerifierList(vs...)
	for _, b := range r.bundles {
		names, err := algo.Approvals(b.text, b.approvals, r.reviewers)
		if err != nil || names == nil {
			names = []string{}
		}
		b.entry.Approvers, b.entry.Required = names, required
	}
	return nil
}

// load reads every bundle directory, drops what a crashed submission left
// and retires all but the latest active bundle of each name, which a crash
// between two writes of an activation can leave.
func (r *Registry) load() error {
	des, err := os.ReadDir(r.cfg.Dir)
	if err != nil {
		return fmt.Errorf("couldn't read the algorithm registry: %w", err)
	}
	for _, de := range des {
		name := de.Name()
		if strings.HasPrefix(name, tmpPrefix) {
			if err := os.RemoveAll(filepath.Join(r.cfg.Dir, name)); err != nil {
				return fmt.Errorf("couldn't remove an interrupted submission: %w", err)
			}
			continue
		}
		if strings.HasPrefix(name, ".") {
			continue
		}
		if !de.IsDir() || !digestRE.MatchString(name) {
			return fmt.Errorf("algorithm registry %s holds %s, which is not a bundle: move it away", r.cfg.Dir, name)
		}
		b, err := r.read(name)
		if err != nil {
			return fmt.Errorf("algorithm registry bundle %s: %w", name, err)
		}
		r.bundles[name] = b
	}
	return r.supersede()
}

// read loads the bundle in directory digest.
func (r *Registry) read(digest string) (*bundle, error) {
	dir := filepath.Join(r.cfg.Dir, digest)
	n, err := safefile.ReadCapped(filepath.Join(dir, noteFile), maxNote)
	if err != nil {
		return nil, err
	}
	text, err := (&algo.Bundle{Note: n}).Text()
	if err != nil {
		return nil, err
	}
	if algo.Digest(text) != digest {
		return nil, errors.New("the manifest is not the one its directory names")
	}
	m, err := algo.ParseManifest(text)
	if err != nil {
		return nil, err
	}
	raw, err := safefile.ReadCapped(filepath.Join(dir, stateFile), maxState)
	if err != nil {
		return nil, err
	}
	var st state
	if err := json.Unmarshal(raw, &st); err != nil {
		return nil, fmt.Errorf("malformed %s: %w", stateFile, err)
	}
	if !slices.Contains([]State{Submitted, Active, Retired}, st.State) {
		return nil, fmt.Errorf("%s: unknown state %q", stateFile, st.State)
	}
	b := &bundle{text: text, approvals: st.Approvals, entry: Entry{
		Name: m.Name, Version: m.Version, Digest: digest,
		ModuleSHA256: m.ModuleSHA256, SourceSHA256: m.SourceSHA256,
		State: st.State, Operator: st.Operator, Required: r.cfg.Required,
		Submitted: st.Submitted, Activated: st.Activated, Retired: st.Retired,
	}}
	// Approvals are counted against the reviewers configured now: a key
	// taken out of the set no longer counts.
	if b.entry.Approvers, err = algo.Approvals(text, st.Approvals, r.reviewers); err != nil {
		return nil, err
	}
	if b.entry.Approvers == nil {
		b.entry.Approvers = []string{}
	}
	return b, nil
}

// supersede retires every active bundle but the latest activated of each
// name.
func (r *Registry) supersede() error {
	latest := map[string]*bundle{}
	for _, b := range r.bundles {
		if b.entry.State != Active {
			continue
		}
		l := latest[b.entry.Name]
		if l == nil || b.entry.Activated.After(l.entry.Activated) {
			latest[b.entry.Name] = b
		}
	}
	for _, b := range r.bundles {
		if l := latest[b.entry.Name]; b.entry.State == Active && b != l {
			b.entry.State, b.entry.Retired = Retired, l.entry.Activated
			if err := r.writeState(b); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeState makes b's state durable.
func (r *Registry) writeState(b *bundle) error {
	return writeState(filepath.Join(r.cfg.Dir, b.entry.Digest), b)
}

// writeState makes b's state durable in dir.
func writeState(dir string, b *bundle) error {
	st := state{
		State: b.entry.State, Operator: b.entry.Operator, Approvals: b.approvals,
		Submitted: b.entry.Submitted, Activated: b.entry.Activated, Retired: b.entry.Retired,
	}
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := safefile.Replace(filepath.Join(dir, stateFile), append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("couldn't write bundle state: %w", err)
	}
	return nil
}

// errNoOperators refuses every submission of a registry without keys.
var errNoOperators = custos.Errorf(custos.CodeForbidden,
	"this deployment lists no operator keys (algorithms.operators in custos.yaml), so no algorithm can be submitted; the custodian adds the operator's and the reviewers' verifier keys there and restarts custos")

// Submit adds a bundle the operator signed, and reports whether it is new:
// submitting a bundle the registry has returns it unchanged (and records
// that it was submitted again). A bundle that
// does not verify is refused with CodeInvalidSignature, one whose name and
// version the registry holds with another manifest with CodeConflict.
func (r *Registry) Submit(bu *algo.Bundle, rec Record) (Entry, bool, error) {
	if len(r.cfg.Operators) == 0 {
		return Entry{}, false, errNoOperators
	}
	m, err := bu.Verify(r.operators)
	if err != nil {
		return Entry{}, false, custos.Errorf(custos.CodeInvalidSignature, "%s", err)
	}
	text, err := m.Marshal()
	if err != nil {
		return Entry{}, false, err
	}
	n, err := note.Open(bu.Note, r.operators)
	if err != nil {
		return Entry{}, false, err
	}
	digest := algo.Digest(text)
	r.mu.Lock()
	defer r.mu.Unlock()
	if b, ok := r.bundles[digest]; ok {
		// Nothing changes, but the decision is recorded all the same.
		if err := rec([]Event{{Action: ActionSubmit, Entry: b.entry, Detail: "already in the registry"}}); err != nil {
			return Entry{}, false, err
		}
		return b.entry, false, nil
	}
	for _, b := range r.bundles {
		if b.entry.Name == m.Name && b.entry.Version == m.Version {
			return Entry{}, false, custos.Errorf(custos.CodeConflict,
				"%s %s is in the registry with another manifest (sha256 %s): give the new bundle another version", m.Name, m.Version, b.entry.Digest)
		}
	}
	b := &bundle{text: text, entry: Entry{
		Name: m.Name, Version: m.Version, Digest: digest,
		ModuleSHA256: m.ModuleSHA256, SourceSHA256: m.SourceSHA256,
		State: Submitted, Operator: n.Sigs[0].Name, Approvers: []string{}, Required: r.cfg.Required,
		Submitted: r.cfg.Now().UTC(),
	}}
	if err := rec([]Event{{Action: ActionSubmit, Entry: b.entry}}); err != nil {
		return Entry{}, false, err
	}
	if err := r.writeBundle(b, bu); err != nil {
		return Entry{}, false, err
	}
	r.bundles[digest] = b
	return b.entry, true, nil
}

// tmpPrefix starts the name of a bundle's directory being written.
const tmpPrefix = ".submit-"

// writeBundle writes a new bundle's files, its state last, into a
// temporary directory and renames it into place: the bundle appears whole
// or not at all.
func (r *Registry) writeBundle(b *bundle, bu *algo.Bundle) error {
	tmp, err := os.MkdirTemp(r.cfg.Dir, tmpPrefix)
	if err != nil {
		return fmt.Errorf("couldn't write bundle: %w", err)
	}
	defer os.RemoveAll(tmp)
	err = safefile.Create(filepath.Join(tmp, noteFile), bu.Note, 0o600)
	if err == nil {
		err = safefile.Create(filepath.Join(tmp, moduleFile), bu.Module, 0o600)
	}
	if err == nil {
		err = writeState(tmp, b)
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(r.cfg.Dir, b.entry.Digest))
	}
	if err == nil {
		err = safefile.SyncDir(r.cfg.Dir)
	}
	if err != nil {
		return fmt.Errorf("couldn't write bundle: %w", err)
	}
	return nil
}

// Approve adds a reviewer's approval, one signed-note signature line over
// the manifest text of the bundle ref names. With Required distinct
// approvals the bundle becomes active, if the stored bundle still verifies,
// and the active bundle of its name is retired. An approval that is not a
// configured reviewer's signature over exactly that text is refused with
// CodeInvalidSignature; a reviewer who already approved, or a retired
// bundle, with CodeConflict.
func (r *Registry) Approve(ref, line string, rec Record) (Entry, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, err := r.resolve(ref)
	if err != nil {
		return Entry{}, err
	}
	if b.entry.State == Retired {
		return Entry{}, custos.Errorf(custos.CodeConflict, "%s %s is retired: approvals no longer count; submit a new version", b.entry.Name, b.entry.Version)
	}
	name, err := r.approver(b, line)
	if err != nil {
		return Entry{}, err
	}
	if err := r.verify(b); err != nil {
		return Entry{}, err
	}
	next := *b
	next.approvals = append(slices.Clone(b.approvals), line)
	if next.entry.Approvers, err = algo.Approvals(b.text, next.approvals, r.reviewers); err != nil {
		return Entry{}, err
	}
	events := []Event{{Action: ActionApprove, Entry: next.entry, Approver: name}}
	var old *bundle
	if next.entry.State == Submitted && len(next.entry.Approvers) >= r.cfg.Required {
		var more []Event
		more, old = r.activate(&next)
		events = append(events, more...)
	}
	if err := rec(events); err != nil {
		return Entry{}, err
	}
	// The new active bundle is written first: a crash before the old one is
	// retired leaves two active, and Open retires the older.
	if err := r.writeState(&next); err != nil {
		return Entry{}, err
	}
	*b = next
	if old != nil {
		if err := r.writeState(old); err != nil {
			return Entry{}, err
		}
		*r.bundles[old.entry.Digest] = *old
	}
	return b.entry, nil
}

// approver returns the name of the reviewer whose approval of b line is,
// refusing a line that is not a new reviewer's signature over b's text.
func (r *Registry) approver(b *bundle, line string) (string, error) {
	names, err := algo.Approvals(b.text, []string{line}, r.reviewers)
	if err != nil {
		return "", custos.Errorf(custos.CodeInvalidSignature, "%s: sign the manifest text of %s with custos algo approve", err, b.entry.Ref())
	}
	if len(names) != 1 {
		return "", custos.Errorf(custos.CodeInvalidSignature, "the approval is not signed by a reviewer key of this deployment (algorithms.reviewers in custos.yaml)")
	}
	if slices.Contains(b.entry.Approvers, names[0]) {
		return "", custos.Errorf(custos.CodeConflict, "%s has already approved %s %s: a reviewer's approvals count once", names[0], b.entry.Name, b.entry.Version)
	}
	return names[0], nil
}

// activate makes next active and returns the events of the change and the
// active bundle of its name, retired, if there is one.
func (r *Registry) activate(next *bundle) ([]Event, *bundle) {
	now := r.cfg.Now().UTC()
	next.entry.State, next.entry.Activated = Active, now
	events := []Event{{Action: ActionActivate, Entry: next.entry}}
	cur := r.active(next.entry.Name)
	if cur == nil {
		return events, nil
	}
	old := *cur
	old.entry.State, old.entry.Retired, old.ok = Retired, now, nil
	return append(events, Event{Action: ActionRetire, Entry: old.entry, Detail: "superseded by " + next.entry.Version}), &old
}

// Retire retires the bundle ref names: it never runs again. A retired
// bundle is refused with CodeConflict.
func (r *Registry) Retire(ref string, rec Record) (Entry, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, err := r.resolve(ref)
	if err != nil {
		return Entry{}, err
	}
	if b.entry.State == Retired {
		return Entry{}, custos.Errorf(custos.CodeConflict, "%s %s is already retired", b.entry.Name, b.entry.Version)
	}
	next := *b
	next.entry.State, next.entry.Retired, next.ok = Retired, r.cfg.Now().UTC(), nil
	if err := rec([]Event{{Action: ActionRetire, Entry: next.entry}}); err != nil {
		return Entry{}, err
	}
	if err := r.writeState(&next); err != nil {
		return Entry{}, err
	}
	*b = next
	return b.entry, nil
}

// Get returns the bundle ref names, with its manifest text.
func (r *Registry) Get(ref string) (Entry, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, err := r.resolve(ref)
	if err != nil {
		return Entry{}, err
	}
	e := b.entry
	e.Manifest = string(b.text)
	return e, nil
}

// List returns every bundle, by name, then by submission time.
func (r *Registry) List() []Entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Entry, 0, len(r.bundles))
	for _, b := range r.bundles {
		out = append(out, b.entry)
	}
	slices.SortFunc(out, func(a, b Entry) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return a.Submitted.Compare(b.Submitted)
	})
	return out
}

// Runnable is a bundle that may run: its manifest and its module, verified
// from the registry's files when they were read. They are shared with other
// callers and must not be changed.
type Runnable struct {
	Manifest *algo.Manifest
	Module   []byte
}

// Active returns the active bundle named name, after verifying again, from
// the files, the operator's signature, the module's digest and the
// approvals. No active bundle is CodeNotFound; a bundle that fails is
// refused with CodeInvalidSignature and must not run.
func (r *Registry) Active(ctx context.Context, name string) (Runnable, error) {
	return r.runnable(func(b *bundle) bool { return b.entry.Name == name && b.entry.State == Active },
		"no active algorithm is named %s", name)
}

// Approved returns the bundle whose module has the hex SHA-256 digest if it
// was ever active, retired ones included (so that their runs can be
// replayed), verified as Active verifies. Of several such bundles (one
// module under several manifests) it returns the last activated.
func (r *Registry) Approved(ctx context.Context, digest string) (Runnable, error) {
	return r.runnable(func(b *bundle) bool { return b.entry.ModuleSHA256 == digest && !b.entry.Activated.IsZero() },
		"no algorithm that was ever active has module sha256 %s", digest)
}

// runnable returns the last activated bundle match picks, verified, or
// CodeNotFound with the detail format and arg.
func (r *Registry) runnable(match func(*bundle) bool, format, arg string) (Runnable, error) {
	var cp *bundle
	r.mu.Lock()
	reviewers, required := r.reviewers, r.cfg.Required
	for _, b := range r.bundles {
		if match(b) && (cp == nil || b.entry.Activated.After(cp.entry.Activated)) {
			c := *b
			cp = &c
		}
	}
	r.mu.Unlock()
	if cp == nil {
		return Runnable{}, custos.Errorf(custos.CodeNotFound, format, arg)
	}
	v, err := r.open(cp)
	if err != nil {
		return Runnable{}, err
	}
	r.mu.Lock()
	if b := r.bundles[cp.entry.Digest]; b != nil && b.entry.State == Active {
		b.ok = v
	}
	r.mu.Unlock()
	approvers, err := algo.Approvals(cp.text, cp.approvals, reviewers)
	if err != nil || len(approvers) < required {
		return Runnable{}, custos.Errorf(custos.CodeInvalidSignature, "%s %s lacks the %d approvals it needs: it must not run", cp.entry.Name, cp.entry.Version, required)
	}
	return Runnable{Manifest: v.manifest, Module: v.module}, nil
}

// verify checks that the stored bundle b still verifies.
func (r *Registry) verify(b *bundle) error {
	_, err := r.open(b)
	return err
}

// open reads b's files and verifies them: the operator's signature, the
// manifest text the registry holds, and the module's digest. Files equal
// byte for byte to b.ok, the copy that last verified, are not verified
// again: comparing is cheaper than hashing and checking a signature, and
// files changed by one bit still fail. It returns the files that verified.
func (r *Registry) open(b *bundle) (*verified, error) {
	dir := filepath.Join(r.cfg.Dir, b.entry.Digest)
	n, err := safefile.ReadCapped(filepath.Join(dir, noteFile), maxNote)
	if err != nil {
		return nil, err
	}
	mod, err := safefile.ReadCapped(filepath.Join(dir, moduleFile), algo.MaxModuleSize)
	if err != nil {
		return nil, err
	}
	if ok := b.ok; ok != nil && bytes.Equal(ok.note, n) && bytes.Equal(ok.module, mod) {
		return ok, nil
	}
	m, err := (&algo.Bundle{Note: n, Module: mod}).Verify(r.operators)
	if err == nil {
		var text []byte
		if text, err = m.Marshal(); err == nil && !bytes.Equal(text, b.text) {
			err = errors.New("the stored manifest is not the one submitted")
		}
	}
	if err != nil {
		return nil, custos.Errorf(custos.CodeInvalidSignature, "the stored bundle %s %s no longer verifies (%s): it cannot become active or run; retire it and submit it again", b.entry.Name, b.entry.Version, err)
	}
	return &verified{note: n, module: mod, manifest: m}, nil
}

// active returns the active bundle named name, or nil.
func (r *Registry) active(name string) *bundle {
	for _, b := range r.bundles {
		if b.entry.Name == name && b.entry.State == Active {
			return b
		}
	}
	return nil
}

// resolve returns the bundle ref names (see ParseRef). A bare name names
// the one bundle of that name that is not retired, or the only bundle of
// that name.
func (r *Registry) resolve(ref string) (*bundle, error) {
	name, version, digest, err := ParseRef(ref)
	if err != nil {
		return nil, err
	}
	var all, live []*bundle
	for _, b := range r.bundles {
		e := b.entry
		switch {
		case e.Name != name:
		case digest != "" && e.Digest == digest, version != "" && e.Version == version:
			return b, nil
		case digest == "" && version == "":
			all = append(all, b)
			if e.State != Retired {
				live = append(live, b)
			}
		}
	}
	switch {
	case len(live) == 1:
		return live[0], nil
	case len(live) > 1:
		return nil, custos.Errorf(custos.CodeConflict, "%d bundles named %s are submitted or active: name one as %s@VERSION", len(live), name, name)
	case len(all) == 1:
		return all[0], nil
	case len(all) > 1:
		return nil, custos.Errorf(custos.CodeConflict, "every bundle named %s is retired: name one as %s@VERSION", name, name)
	}
	return nil, custos.Errorf(custos.CodeNotFound, "no algorithm bundle is %s", ref)
}

var refRE = regexp.MustCompile(`^([a-z0-9][a-z0-9-]{0,63})(?:@(?:sha256:([0-9a-f]{64})|([0-9A-Za-z.+-]{1,64})))?$`)

// ParseRef splits a reference to a bundle: NAME, NAME@VERSION or
// NAME@sha256:DIGEST, DIGEST being the hex SHA-256 of the manifest text.
// A malformed reference is refused with CodeInvalidRequest.
func ParseRef(ref string) (name, version, digest string, err error) {
	m := refRE.FindStringSubmatch(ref)
	if m == nil {
		return "", "", "", custos.Errorf(custos.CodeInvalidRequest, "an algorithm is named NAME, NAME@VERSION or NAME@sha256:DIGEST")
	}
	return m[1], m[3], m[2], nil
}
