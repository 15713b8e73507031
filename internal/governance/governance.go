// Package governance keeps the rules a custos deployment runs under — its
// Cedar policies, its schema, its declared outbound flows, the reviewer set
// of its algorithm registry, the storage locations where its data may
// reside and the set of governance signers itself — and the monitor's
// suspension of the operator, and changes them only with the signatures
// the signed signer set requires.
//
// A change is a proposal: a signed-note text (see Proposal) naming the kind
// of rules, the digest of the content in force, the digest of the content
// proposed and the diff between them. Signers post signature lines over
// exactly that text, each with their own note key; a key counts for the
// role the configuration lists it under, and once every required role has
// a signature the proposal is applied: the proposed content becomes the
// signed state in force (kept in the governance directory), the files the
// server loads are rewritten from it, and Config.Install puts it in force
// in memory. A proposal made against content that is no longer in force
// is stale and never applies. The reviewer set, the signer set and the
// permitted locations have no files of their own: the signed sets are the
// ones in force, and the ones the configuration file lists are compared
// with them as the files are.
//
// Nothing unsigned is ever put in force: Open and Reload compare the files
// on disk with the signed state, and content that differs is refused and
// reported (the signed state stays in force); Open serves the signed
// state, never the files. The one exception is trust on first use: Open on
// a directory without a signed state takes the files as they are (as
// custos init wrote them) as the first signed state, and the first
// non-empty reviewer and signer sets configured likewise, and says so in
// the events it records; so does a kind a newer custos governs (flows,
// locations) on a signed state an older one wrote, which has no content of
// that kind.
//
// Every step — proposal, signature, application, refusal, suspension,
// lift, and the digest of the rules in force at start and at each
// application — is first passed to the caller's Record function (which
// makes it an audit entry) and is made durable only if that succeeds.
// State is written with internal/safefile, the signed state last-but-one
// and the files the server loads last, so a crash leaves the signed state
// whole and Open refuses files left half-written.
//
// A suspension statement (see Suspension) is a signed note by a key of the
// suspender role naming the suspension state it changes, so that a
// statement applies once and cannot be replayed. The state survives
// restarts. It is safe for concurrent use; changes are serialized.
package governance

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/custos/custos"
	"github.com/custos/custos/internal/notekey"
	"github.com/custos/custos/internal/safefile"
	"golang.org/x/mod/sumdb/note"
)

// The actions of the events of governance, as the audit log names them.
const (
	ActionInit     = "gov-init"     // trust on first use of the files on disk
	ActionPropose  = "gov-propose"  // a proposal is made
	ActionSign     = "gov-sign"     // a signer signs a proposal
	ActionApply    = "gov-apply"    // a proposal's content is put in force
	ActionUnsigned = "gov-unsigned" // files on disk differ from the signed state: refused
	ActionRules    = "rules-in-force"
	ActionSuspend  = "suspend"
	ActionLift     = "lift"
)

// The states of a proposal.
const (
	StateOpen    = "open"    // waiting for signatures
	StateApplied = "applied" // in force, or was
	StateStale   = "stale"   // the rules it changes changed first: never applies
)

// Event is one step of a change, passed to Record before the change is
// made durable.
type Event struct {
	Action string
	Deny   bool // a refusal
	Kind   Kind
	// Proposal is the proposal's id; Current and Proposed its digests.
	Proposal, Current, Proposed string
	// Signer and Role name the key of a signature.
	Signer, Role string
	// Rules is the digest of the rules in force (ActionRules), and Digests
	// each kind's.
	Rules   string
	Digests map[Kind]string
	// Suspension is the state a suspension or lift leaves, and Reason its
	// reason.
	Suspension *SuspensionState
	Reason     string
	Detail     string
}

// Record makes the events of a change durable, in order, before the change
// is. If it fails, the change is not made and its error is returned.
type Record func([]Event) error

// Config is the configuration of a Board.
type Config struct {
	// Dir is the governance directory, created if missing.
	Dir string
	// Deployment is the deployment's name, which statements must name.
	Deployment string
	// PolicyDir and SchemaPath are the files the server loads: the policy
	// directory (its *.cedar files) and the schema file.
	PolicyDir, SchemaPath string
	// FlowsPath is the flows file the server loads; "" when the
	// configuration names none, which stands for an empty file.
	FlowsPath string
	// Algorithms is the reviewer set as the configuration file lists it,
	// which stands for the files on disk of KindAlgorithms; none when nil.
	// The signed set is the one in force: the configuration's is compared
	// with it, and refused when it differs, as files on disk are.
	Algorithms func() (Algorithms, error)
	// Locations is the set of permitted storage locations as the
	// configuration file lists it, which stands for the files on disk of
	// KindLocations. It must not be nil. The signed set is the one in
	// force: the configuration's is compared with it, and refused when it
	// differs, as files on disk are.
	Locations func() (Locations, error)
	// Signers lists the note verifier keys (NAME.vkey text) of each role,
	// Require the roles a proposal needs one signature of each, and
	// Suspender the role whose keys sign suspensions, as the configuration
	// file lists them: they stand for the files on disk of KindSigners. No
	// key may be listed twice, no two keys may share a name, and each
	// required role and the suspender must have keys unless Signers is
	// empty: then no proposal or suspension can ever be signed. The signed
	// set is the one in force; the first non-empty set configured is
	// trusted on first use.
	Signers   map[string][]string
	Require   []string
	Suspender string
	// Check checks that proposed content of any kind loads where it is
	// used (the board itself checks the form of every kind, and the sets'
	// keys), when it is proposed and again when its last signature would
	// apply it, since what it is checked against (the schema in force, the
	// store in use) may have changed between. Install puts applied content
	// in force in memory. Install must not fail for content Check
	// accepted.
	Check   func(Kind, Content) error
	Install func(Kind, Content) error
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Board holds the signed rules and the suspension state. Make one with
// Open.
type Board struct {
	cfg        Config
	signers    Signers // in force
	verifiers  note.Verifiers
	suspenders note.Verifiers
	roles      map[string]string // key name → role
	mu         sync.Mutex
	inForce    map[Kind]*signed
	proposals  map[string]*proposal
	suspension atomic.Pointer[SuspensionState]
}

// signed is the content of one kind in force.
type signed struct {
	Digest   string            `json:"digest"`
	Files    map[string]string `json:"files"`
	Proposal string            `json:"proposal,omitempty"` // "" for trust on first use
	Since    time.Time         `json:"since"`
}

func (s *signed) content() Content { return ContentOf(s.Files) }

func newSigned(c Content, id string, now time.Time) *signed {
	return &signed{Digest: Digest(c), Files: c.Files(), Proposal: id, Since: now}
}

// proposal is a proposal as the board keeps it, in proposals/ID.json.
type proposal struct {
	Text       string            `json:"text"`
	Files      map[string]string `json:"files"`
	Signatures []string          `json:"signatures,omitempty"`
	State      string            `json:"state"`
	Submitted  time.Time         `json:"submitted"`
	Applied    time.Time         `json:"applied,omitzero"`
	parsed     *Proposal
}

// Files of the governance directory.
const (
	inForceFile    = "in-force.json"
	suspensionFile = "suspension.json"
	proposalsDir   = "proposals"
	maxStateFile   = 2*MaxContent + 1<<20
)

var idRE = regexp.MustCompile(`^[0-9a-f]{16}$`)

// Open checks cfg, loads the board in cfg.Dir and compares the files on
// disk with the signed state, recording what it finds and the digest of
// the rules in force. Without a signed state it takes the files on disk as
// the first one (trust on first use).
func Open(cfg Config, rec Record) (*Board, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	b := &Board{cfg: cfg, inForce: map[Kind]*signed{}, proposals: map[string]*proposal{}}
	if cfg.Locations == nil {
		return nil, errors.New("the governance configuration lists no permitted locations")
	}
	if _, _, _, err := b.configured().keys(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(cfg.Dir, proposalsDir), 0o700); err != nil {
		return nil, fmt.Errorf("couldn't make the governance directory: %w", err)
	}
	if err := b.loadSuspension(); err != nil {
		return nil, err
	}
	if err := b.loadProposals(); err != nil {
		return nil, err
	}
	raw, err := safefile.ReadCapped(filepath.Join(cfg.Dir, inForceFile), maxStateFile)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := b.trustOnFirstUse(rec); err != nil {
			return nil, err
		}
		return b.used()
	case err != nil:
		return nil, fmt.Errorf("couldn't read the signed rules: %w", err)
	}
	if err := json.Unmarshal(raw, &b.inForce); err != nil {
		return nil, fmt.Errorf("malformed %s: %w", inForceFile, err)
	}
	added, err := b.addedKinds()
	if err != nil {
		return nil, err
	}
	for _, k := range Kinds {
		s := b.inForce[k]
		if s == nil || Digest(s.content()) != s.Digest {
			return nil, fmt.Errorf("%s: the signed %s does not match its digest: restore the governance directory from a backup", inForceFile, k)
		}
	}
	b.settle()
	events, err := b.firstUse()
	if err != nil {
		return nil, err
	}
	events = append(added, events...)
	events = append(events, b.compare()...)
	events = append(events, b.rulesEvent("at start"))
	if err := rec(events); err != nil {
		return nil, err
	}
	if len(events) > 0 && events[0].Action == ActionInit {
		if err := b.writeInForce(); err != nil {
			return nil, err
		}
	}
	return b.used()
}

// used returns b with its signed signer set in force.
func (b *Board) used() (*Board, error) {
	if err := b.useSigners(); err != nil {
		return nil, err
	}
	return b, nil
}

// configured returns the signer set the configuration lists.
func (b *Board) configured() Signers {
	return Signers{Roles: b.cfg.Signers, Require: b.cfg.Require, Suspender: b.cfg.Suspender}
}

// useSigners puts the signed signer set in force.
func (b *Board) useSigners() error {
	s, err := ParseSigners([]byte(b.inForce[KindSigners].Files[SignersFile]))
	if err != nil {
		return fmt.Errorf("the signed signer set: %w", err)
	}
	roles, all, sus, err := s.keys()
	if err != nil {
		return err
	}
	b.signers, b.roles, b.verifiers, b.suspenders = s, roles, note.VerifierList(all...), note.VerifierList(sus...)
	return nil
}

// addedKinds takes the files on disk of each kind the signed state does
// not name, as at the first start: kinds a newer custos governs (flows,
// locations) in a deployment whose signed state an older one wrote. Only a
// kind with no signed content at all is taken; one whose content is
// damaged is not.
func (b *Board) addedKinds() ([]Event, error) {
	var events []Event
	for _, k := range Kinds {
		if _, ok := b.inForce[k]; ok {
			continue
		}
		c, err := b.checkedDisk(k)
		if err != nil {
			return nil, fmt.Errorf("couldn't take the %s on disk as the first signed ones: %w", k, err)
		}
		b.inForce[k] = newSigned(c, "", b.cfg.Now().UTC())
		events = append(events, Event{Action: ActionInit, Kind: k, Proposed: b.inForce[k].Digest,
			Detail: "trust on first use: a kind governed since an upgrade; the files on disk become the signed " + string(k)})
	}
	return events, nil
}

// firstUse takes the reviewer set and the signer set the configuration
// lists as the signed ones while the signed ones are empty.
func (b *Board) firstUse() ([]Event, error) {
	var events []Event
	for _, k := range []Kind{KindAlgorithms, KindSigners} {
		ev, err := b.firstSet(k)
		if err != nil {
			return nil, err
		}
		events = append(events, ev...)
	}
	return events, nil
}

// firstSet takes the set of kind k (reviewers or signers) the
// configuration lists as the signed one while the signed set is empty: an
// empty reviewer set admits no algorithm and an empty signer set signs
// nothing, and the first set configured is trusted on first use as the
// files are at the first start. From then on the set changes only by
// signed proposals.
func (b *Board) firstSet(k Kind) ([]Event, error) {
	empty := func(c Content) (bool, error) {
		if k == KindAlgorithms {
			a, err := ParseAlgorithms(c[AlgorithmsFile])
			return len(a.Reviewers) == 0, err
		}
		s, err := ParseSigners(c[SignersFile])
		return s.Empty(), err
	}
	if e, err := empty(b.inForce[k].content()); err != nil || !e {
		return nil, err
	}
	c, err := b.disk(k)
	if err != nil {
		return nil, err
	}
	if e, err := empty(c); err != nil || e {
		return nil, err
	}
	if b.cfg.Check != nil {
		if err := b.cfg.Check(k, c); err != nil {
			return nil, fmt.Errorf("couldn't take the configured %s as the first signed ones: %w", k, err)
		}
	}
	b.inForce[k] = newSigned(c, "", b.cfg.Now().UTC())
	return []Event{{Action: ActionInit, Kind: k, Proposed: b.inForce[k].Digest,
		Detail: "trust on first use: the first " + string(k) + " configured become the signed ones"}}, nil
}

// disk reads the content of kind k from the files the server loads.
func (b *Board) disk(k Kind) (Content, error) {
	c := Content{}
	switch k {
	case KindSigners:
		c[SignersFile] = b.configured().Marshal()
	case KindAlgorithms:
		var a Algorithms
		if b.cfg.Algorithms != nil {
			var err error
			if a, err = b.cfg.Algorithms(); err != nil {
				return nil, err
			}
		}
		c[AlgorithmsFile] = a.Marshal()
	case KindLocations:
		l, err := b.cfg.Locations()
		if err != nil {
			return nil, err
		}
		c[LocationsFile] = l.Marshal()
	case KindSchema:
		data, err := safefile.ReadCapped(b.cfg.SchemaPath, MaxContent)
		if err != nil {
			return nil, err
		}
		c[SchemaFile] = data
	case KindFlows:
		c[FlowsFile] = nil
		if b.cfg.FlowsPath != "" {
			data, err := safefile.ReadCapped(b.cfg.FlowsPath, MaxContent)
			if err != nil {
				return nil, err
			}
			c[FlowsFile] = data
		}
	case KindPolicy:
		return ReadPolicyDir(b.cfg.PolicyDir)
	}
	return c, nil
}

// ReadPolicyDir reads the content of a policy set: the *.cedar files of
// dir, each of at most MaxContent bytes.
func ReadPolicyDir(dir string) (Content, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("couldn't read the policy directory: %w", err)
	}
	c := Content{}
	for _, de := range des {
		if de.IsDir() || !strings.HasSuffix(de.Name(), ".cedar") {
			continue
		}
		data, err := safefile.ReadCapped(filepath.Join(dir, de.Name()), MaxContent)
		if err != nil {
			return nil, err
		}
		c[de.Name()] = data
	}
	return c, nil
}

// checkedDisk reads the content of kind k from the files the server loads
// and checks it as a proposal of it is checked.
func (b *Board) checkedDisk(k Kind) (Content, error) {
	c, err := b.disk(k)
	if err == nil {
		err = k.Check(c)
	}
	if err == nil && b.cfg.Check != nil {
		err = b.cfg.Check(k, c)
	}
	return c, err
}

// trustOnFirstUse takes the files on disk as the first signed state.
func (b *Board) trustOnFirstUse(rec Record) error {
	now := b.cfg.Now().UTC()
	var events []Event
	for _, k := range Kinds {
		c, err := b.checkedDisk(k)
		if err != nil {
			return fmt.Errorf("couldn't take the %s on disk as the first signed rules: %w", k, err)
		}
		b.inForce[k] = newSigned(c, "", now)
		events = append(events, Event{Action: ActionInit, Kind: k, Proposed: b.inForce[k].Digest,
			Detail: "trust on first use: the files on disk become the signed rules"})
	}
	events = append(events, b.rulesEvent("at first start"))
	if err := rec(events); err != nil {
		return err
	}
	return b.writeInForce()
}

// compare returns a refusal for each kind whose files on disk differ from
// the signed state.
func (b *Board) compare() []Event {
	var events []Event
	for _, k := range Kinds {
		s := b.inForce[k]
		c, err := b.disk(k)
		switch {
		case err != nil:
			events = append(events, Event{Action: ActionUnsigned, Deny: true, Kind: k, Current: s.Digest,
				Detail: "the files on disk cannot be read; the signed " + string(k) + " stays in force"})
		case Digest(c) != s.Digest:
			events = append(events, Event{Action: ActionUnsigned, Deny: true, Kind: k, Current: s.Digest, Proposed: Digest(c),
				Detail: "the files on disk are not the signed ones; refused, the signed " + string(k) + " stays in force"})
		}
	}
	return events
}

// Reload compares the files on disk with the signed state, as at a
// SIGHUP: files that differ are refused (and recorded); nothing changes.
// It returns an error naming what was refused, if anything was.
func (b *Board) Reload(rec Record) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	events := b.compare()
	if len(events) == 0 {
		return nil
	}
	if err := rec(events); err != nil {
		return err
	}
	var kinds []string
	for _, e := range events {
		kinds = append(kinds, string(e.Kind))
	}
	return fmt.Errorf("the %s on disk differ from the signed rules and were not loaded: propose the change with custos propose", strings.Join(kinds, " and "))
}

// rulesEvent returns the event that records the rules in force.
func (b *Board) rulesEvent(detail string) Event {
	d := b.digests()
	return Event{Action: ActionRules, Rules: RulesDigest(d), Digests: d, Detail: detail}
}

func (b *Board) digests() map[Kind]string {
	d := map[Kind]string{}
	for _, k := range Kinds {
		d[k] = b.inForce[k].Digest
	}
	return d
}

// Rules returns the digest of the rules in force and each kind's.
func (b *Board) Rules() (string, map[Kind]string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	d := b.digests()
	return RulesDigest(d), d
}

// InForce returns the signed content of kind k.
func (b *Board) InForce(k Kind) Content {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.inForce[k].content()
}

func (b *Board) writeInForce() error {
	data, err := json.MarshalIndent(b.inForce, "", "  ")
	if err != nil {
		return err
	}
	if err := safefile.Replace(filepath.Join(b.cfg.Dir, inForceFile), append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("couldn't write the signed rules: %w", err)
	}
	return nil
}

// loadProposals reads every proposal.
func (b *Board) loadProposals() error {
	dir := filepath.Join(b.cfg.Dir, proposalsDir)
	des, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("couldn't read the proposals: %w", err)
	}
	for _, de := range des {
		id, ok := strings.CutSuffix(de.Name(), ".json")
		if strings.HasPrefix(de.Name(), ".") {
			continue
		}
		if !ok || !idRE.MatchString(id) {
			return fmt.Errorf("%s holds %s, which is not a proposal: move it away", dir, de.Name())
		}
		raw, err := safefile.ReadCapped(filepath.Join(dir, de.Name()), maxStateFile)
		if err != nil {
			return err
		}
		var p proposal
		if err := json.Unmarshal(raw, &p); err != nil {
			return fmt.Errorf("malformed proposal %s: %w", id, err)
		}
		if p.parsed, err = ParseProposal([]byte(p.Text)); err != nil || TextID([]byte(p.Text)) != id {
			return fmt.Errorf("proposal %s does not parse or is not the one its file names", id)
		}
		if p.parsed.Deployment != b.cfg.Deployment || Digest(p.content()) != p.parsed.Proposed {
			return fmt.Errorf("proposal %s is not this deployment's, or its files are not the ones its text names: move it away", id)
		}
		b.proposals[id] = &p
	}
	return nil
}

// settle marks applied a proposal whose application a crash interrupted
// after the signed state was written.
func (b *Board) settle() {
	for id, p := range b.proposals {
		if s := b.inForce[p.parsed.Kind]; p.State == StateOpen && s.Proposal == id {
			p.State, p.Applied = StateApplied, s.Since
			_ = b.writeProposal(id, p)
		}
	}
}

func (b *Board) writeProposal(id string, p *proposal) error {
	data, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	if err := safefile.Replace(filepath.Join(b.cfg.Dir, proposalsDir, id+".json"), append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("couldn't write the proposal: %w", err)
	}
	return nil
}

// content returns the proposed content.
func (p *proposal) content() Content { return ContentOf(p.Files) }

// View is a proposal as the API shows it.
type View struct {
	ID         string    `json:"id"`
	Kind       Kind      `json:"kind"`
	State      string    `json:"state"`
	Current    string    `json:"current"`
	Proposed   string    `json:"proposed"`
	Diff       string    `json:"diff"`
	Text       string    `json:"text"`
	Signatures []string  `json:"signatures"`
	Signers    []Signer  `json:"signers"`
	Missing    []string  `json:"missing_roles"`
	Submitted  time.Time `json:"submitted"`
	Applied    time.Time `json:"applied,omitzero"`
	// Files is the proposed content, set by Get only.
	Files map[string]string `json:"files,omitempty"`
}

// Signer is a key whose signature of a proposal verifies, and its role.
type Signer struct {
	Name string `json:"name"`
	Role string `json:"role"`
}

// view returns p as the API shows it.
func (b *Board) view(id string, p *proposal) View {
	v := View{ID: id, Kind: p.parsed.Kind, State: p.State, Current: p.parsed.Current, Proposed: p.parsed.Proposed,
		Diff: p.parsed.Diff, Text: p.Text, Signatures: slices.Clone(p.Signatures), Submitted: p.Submitted, Applied: p.Applied}
	if v.Signatures == nil {
		v.Signatures = []string{}
	}
	if p.State == StateOpen && b.inForce[v.Kind].Digest != v.Current {
		v.State = StateStale // found so at its next signature
	}
	v.Signers, v.Missing = b.tally(p)
	return v
}

// tally returns the signers of p whose keys are configured now, and the
// required roles without a signature.
func (b *Board) tally(p *proposal) ([]Signer, []string) {
	names, _ := notekey.Signers([]byte(p.Text), p.Signatures, b.verifiers)
	signers := []Signer{}
	have := map[string]bool{}
	for _, n := range names {
		signers = append(signers, Signer{Name: n, Role: b.roles[n]})
		have[b.roles[n]] = true
	}
	missing := []string{}
	for _, r := range b.signers.Require {
		if !have[r] {
			missing = append(missing, r)
		}
	}
	return signers, missing
}

// errLocked refuses every signature when no governance keys are listed.
var errLocked = custos.Errorf(custos.CodeForbidden,
	"this deployment lists no governance keys (governance.signers in custos.yaml), so no proposal can be signed: the rules in force stay as they are")

// Propose makes a proposal to change kind k's content to c, and reports
// whether it is new (the same text proposed twice is one proposal). Content
// that is not well formed, or that Check refuses, is CodeInvalidRequest;
// content already in force, CodeConflict.
func (b *Board) Propose(k Kind, c Content, rec Record) (View, bool, error) {
	if err := k.Check(c); err != nil {
		return View{}, false, custos.Errorf(custos.CodeInvalidRequest, "%s", err)
	}
	if b.cfg.Check != nil {
		if err := b.cfg.Check(k, c); err != nil {
			return View{}, false, custos.Errorf(custos.CodeInvalidRequest, "the proposed %s does not load: %s", k, err)
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	cur := b.inForce[k]
	if Digest(c) == cur.Digest {
		return View{}, false, custos.Errorf(custos.CodeConflict, "the proposed %s is the one in force (%s)", k, cur.Digest)
	}
	p := &Proposal{Deployment: b.cfg.Deployment, Kind: k, Current: cur.Digest, Proposed: Digest(c),
		Time: b.cfg.Now().UTC().Truncate(time.Second), Diff: Diff(cur.content(), c)}
	text := p.Text()
	if len(text) > MaxStatementText {
		return View{}, false, custos.Errorf(custos.CodeTooLarge, "the proposal's diff is too large")
	}
	id := TextID(text)
	if old, ok := b.proposals[id]; ok {
		return b.view(id, old), false, nil
	}
	np := &proposal{Text: string(text), Files: c.Files(), State: StateOpen, Submitted: b.cfg.Now().UTC(), parsed: p}
	if err := rec([]Event{{Action: ActionPropose, Kind: k, Proposal: id, Current: p.Current, Proposed: p.Proposed}}); err != nil {
		return View{}, false, err
	}
	if err := b.writeProposal(id, np); err != nil {
		return View{}, false, err
	}
	b.proposals[id] = np
	return b.view(id, np), true, nil
}

// Get returns the proposal id names, with its proposed files.
func (b *Board) Get(id string) (View, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p, ok := b.proposals[id]
	if !ok {
		return View{}, custos.Errorf(custos.CodeNotFound, "no proposal is %s", id)
	}
	v := b.view(id, p)
	v.Files = maps.Clone(p.Files)
	return v, nil
}

// List returns every proposal, newest first.
func (b *Board) List() []View {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := []View{}
	for id, p := range b.proposals {
		out = append(out, b.view(id, p))
	}
	slices.SortFunc(out, func(x, y View) int { return y.Submitted.Compare(x.Submitted) })
	return out
}

// Sign adds a signature line over the text of the proposal id names. Once
// every required role has signed, the proposal is applied: its content
// becomes the signed state in force, the files the server loads are
// rewritten, and Install puts it in force. A line that is not a configured
// signer's signature over exactly that text is CodeInvalidSignature; a
// second signature by one key, a proposal that is applied or stale, or a
// last signature over content Check no longer accepts, CodeConflict.
func (b *Board) Sign(id, line string, rec Record) (View, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.roles) == 0 {
		return View{}, errLocked
	}
	p, ok := b.proposals[id]
	if !ok {
		return View{}, custos.Errorf(custos.CodeNotFound, "no proposal is %s", id)
	}
	if p.State != StateOpen {
		return View{}, custos.Errorf(custos.CodeConflict, "proposal %s is %s: signatures no longer count", id, p.State)
	}
	names, err := notekey.Signers([]byte(p.Text), []string{line}, b.verifiers)
	if err != nil || len(names) != 1 {
		return View{}, custos.Errorf(custos.CodeInvalidSignature, "the signature is not a governance key's signature over proposal %s (governance.signers in custos.yaml): sign it with custos approve", id)
	}
	signer := names[0]
	signers, _ := b.tally(p)
	if slices.ContainsFunc(signers, func(s Signer) bool { return s.Name == signer }) {
		return View{}, custos.Errorf(custos.CodeConflict, "%s has already signed proposal %s", signer, id)
	}
	k := p.parsed.Kind
	if cur := b.inForce[k]; cur.Digest != p.parsed.Current {
		p.State = StateStale
		if err := b.writeProposal(id, p); err != nil {
			return View{}, err
		}
		return View{}, custos.Errorf(custos.CodeConflict, "proposal %s changes the %s %s, but %s is in force now: it is stale; propose the change again", id, k, p.parsed.Current, cur.Digest)
	}
	next := *p
	next.Signatures = append(slices.Clone(p.Signatures), line)
	ev := Event{Action: ActionSign, Kind: k, Proposal: id, Current: p.parsed.Current, Proposed: p.parsed.Proposed, Signer: signer, Role: b.roles[signer]}
	_, missing := b.tally(&next)
	events := []Event{ev}
	if len(missing) > 0 {
		if err := rec(events); err != nil {
			return View{}, err
		}
		if err := b.writeProposal(id, &next); err != nil {
			return View{}, err
		}
		*p = next
		return b.view(id, p), nil
	}
	return b.apply(id, p, &next, events, rec)
}

// apply puts next, a fully signed proposal, in force: the events of the
// application are recorded, then the signed state is written (the commit
// point), then the proposal's state; Install puts the content in force in
// memory, and the files the server loads are rewritten.
func (b *Board) apply(id string, p, next *proposal, events []Event, rec Record) (View, error) {
	k := next.parsed.Kind
	now := b.cfg.Now().UTC()
	c := next.content()
	// What is applied is exactly what was signed: the files' digest is the
	// one the signed text names.
	if Digest(c) != next.parsed.Proposed || next.parsed.Deployment != b.cfg.Deployment {
		return View{}, fmt.Errorf("proposal %s: the stored files are not the ones its text names; nothing applied", id)
	}
	if b.cfg.Check != nil {
		if err := b.cfg.Check(k, c); err != nil {
			return View{}, custos.Errorf(custos.CodeConflict, "the %s proposal %s puts in force no longer loads: %s; the signature is not taken and nothing is applied", k, id, err)
		}
	}
	old := b.inForce[k]
	b.inForce[k] = newSigned(c, id, now)
	events = append(events, Event{Action: ActionApply, Kind: k, Proposal: id, Current: next.parsed.Current, Proposed: next.parsed.Proposed},
		b.rulesEvent("after proposal "+id))
	if err := rec(events); err != nil {
		b.inForce[k] = old
		return View{}, err
	}
	if err := b.writeInForce(); err != nil {
		b.inForce[k] = old
		return View{}, err
	}
	if k == KindSigners {
		if err := b.useSigners(); err != nil {
			return View{}, err
		}
	}
	next.State, next.Applied = StateApplied, now
	*p = *next
	if err := b.writeProposal(id, p); err != nil {
		return View{}, err
	}
	// In force in memory first: if the files cannot be written, what is
	// served is still what is signed, and the files are refused until
	// they are.
	if b.cfg.Install != nil {
		if err := b.cfg.Install(k, c); err != nil {
			return View{}, fmt.Errorf("couldn't put the signed %s in force: %w", k, err)
		}
	}
	if err := b.writeFiles(k, c); err != nil {
		return View{}, err
	}
	return b.view(id, p), nil
}

// writeFiles rewrites the files the server loads of kind k with c.
func (b *Board) writeFiles(k Kind, c Content) error {
	switch k {
	case KindAlgorithms, KindSigners, KindLocations:
		// The server loads the signed set itself: custos.yaml is not
		// rewritten.
		return nil
	case KindSchema:
		return safefile.Replace(b.cfg.SchemaPath, c[SchemaFile], 0o644)
	case KindFlows:
		if b.cfg.FlowsPath == "" {
			return nil
		}
		return safefile.Replace(b.cfg.FlowsPath, c[FlowsFile], 0o644)
	}
	for n, d := range c {
		if err := safefile.Replace(filepath.Join(b.cfg.PolicyDir, n), d, 0o644); err != nil {
			return fmt.Errorf("couldn't write policy file: %w", err)
		}
	}
	des, err := os.ReadDir(b.cfg.PolicyDir)
	if err != nil {
		return err
	}
	for _, de := range des {
		if _, keep := c[de.Name()]; !keep && !de.IsDir() && strings.HasSuffix(de.Name(), ".cedar") {
			if err := os.Remove(filepath.Join(b.cfg.PolicyDir, de.Name())); err != nil {
				return fmt.Errorf("couldn't remove policy file: %w", err)
			}
		}
	}
	return safefile.SyncDir(b.cfg.PolicyDir)
}

// SuspensionState is who of the operator is suspended.
type SuspensionState struct {
	// Deployment names the deployment, which statements must name.
	Deployment string `json:"deployment"`
	// All is set when every principal of the operator is suspended.
	All bool `json:"all"`
	// Principals are the ids suspended one by one, sorted.
	Principals []string `json:"principals"`
	// Digest names the state for the next statement's "previous": the
	// SHA-256 of the statement that made it, "none" before any.
	Digest string `json:"digest"`
	// Statement is the signed statement that made the state.
	Statement string    `json:"statement,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	Since     time.Time `json:"since,omitzero"`
}

// Active reports whether anyone is suspended.
func (s *SuspensionState) Active() bool { return s.All || len(s.Principals) > 0 }

func (b *Board) loadSuspension() error {
	raw, err := safefile.ReadCapped(filepath.Join(b.cfg.Dir, suspensionFile), maxSuspendText*4)
	if errors.Is(err, fs.ErrNotExist) {
		b.suspension.Store(&SuspensionState{Digest: "none", Principals: []string{}})
		return nil
	}
	if err != nil {
		return fmt.Errorf("couldn't read the suspension state: %w", err)
	}
	var s SuspensionState
	if err := json.Unmarshal(raw, &s); err != nil {
		return fmt.Errorf("malformed %s: %w", suspensionFile, err)
	}
	if s.Principals == nil {
		s.Principals = []string{}
	}
	b.suspension.Store(&s)
	return nil
}

// Suspension returns the suspension state.
func (b *Board) Suspension() SuspensionState {
	s := *b.suspension.Load()
	s.Deployment = b.cfg.Deployment
	return s
}

// Suspended reports whether the principal of org with id is suspended:
// only the operator's principals ever are.
func (b *Board) Suspended(org, id string) bool {
	s := b.suspension.Load()
	return org == custos.OrgOperator && (s.All || slices.Contains(s.Principals, id))
}

// State applies a signed suspension statement (a whole signed note) and
// returns the state it leaves. A statement not signed by a suspender's key
// is CodeInvalidSignature; one that is malformed or names another
// deployment, CodeInvalidRequest; one whose previous state is not the
// current one (a replay, or a race with another statement), or that lifts
// what is not suspended, CodeConflict.
func (b *Board) State(msg []byte, rec Record) (SuspensionState, error) {
	if len(msg) > maxSuspendText {
		return SuspensionState{}, custos.Errorf(custos.CodeTooLarge, "a suspension statement is at most %d bytes", maxSuspendText)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := note.Open(msg, b.suspenders)
	if err != nil {
		return SuspensionState{}, custos.Errorf(custos.CodeInvalidSignature, "the statement is not signed by a %s key of this deployment (governance.signers in custos.yaml)", b.signers.Suspender)
	}
	st, err := ParseSuspension([]byte(n.Text))
	if err != nil {
		return SuspensionState{}, custos.Errorf(custos.CodeInvalidRequest, "%s", err)
	}
	if st.Deployment != b.cfg.Deployment {
		return SuspensionState{}, custos.Errorf(custos.CodeInvalidRequest, "the statement names deployment %s, not this one", st.Deployment)
	}
	cur := b.suspension.Load()
	if st.Previous != cur.Digest {
		return SuspensionState{}, custos.Errorf(custos.CodeConflict, "the statement changes suspension state %s, but the state is %s: sign a new one", st.Previous, cur.Digest)
	}
	next, err := transition(cur, st)
	if err != nil {
		return SuspensionState{}, err
	}
	h := sha256.Sum256([]byte(n.Text))
	next.Digest, next.Statement, next.Reason, next.Since = "sha256:"+hex.EncodeToString(h[:]), string(msg), st.Reason, b.cfg.Now().UTC()
	ev := Event{Action: ActionSuspend, Suspension: next, Reason: st.Reason, Signer: n.Sigs[0].Name, Role: b.signers.Suspender, Detail: next.Digest}
	if st.Action == Lift {
		ev.Action = ActionLift
	}
	if err := rec([]Event{ev}); err != nil {
		return SuspensionState{}, err
	}
	data, err := json.MarshalIndent(next, "", "  ")
	if err != nil {
		return SuspensionState{}, err
	}
	if err := safefile.Replace(filepath.Join(b.cfg.Dir, suspensionFile), append(data, '\n'), 0o600); err != nil {
		return SuspensionState{}, fmt.Errorf("couldn't write the suspension state: %w", err)
	}
	b.suspension.Store(next)
	out := *next
	out.Deployment = b.cfg.Deployment
	return out, nil
}

// transition returns the state st makes of cur.
func transition(cur *SuspensionState, st *Suspension) (*SuspensionState, error) {
	next := &SuspensionState{All: cur.All, Principals: slices.Clone(cur.Principals)}
	switch {
	case st.Action == Suspend && st.Principals == nil:
		next.All = true
	case st.Action == Suspend:
		next.Principals = slices.Compact(slices.Sorted(slices.Values(append(next.Principals, st.Principals...))))
	case !cur.Active():
		return nil, custos.Errorf(custos.CodeConflict, "no one is suspended: there is nothing to lift")
	case st.Principals == nil:
		next.All, next.Principals = false, nil
	case cur.All:
		return nil, custos.Errorf(custos.CodeConflict, "every operator principal is suspended: lift that (principals *) before lifting principals one by one")
	default:
		next.Principals = slices.DeleteFunc(next.Principals, func(p string) bool { return slices.Contains(st.Principals, p) })
	}
	if next.Principals == nil {
		next.Principals = []string{}
	}
	return next, nil
}
