package governance

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"
)

// Kind is what a proposal changes.
type Kind string

// The kinds of rules a proposal changes.
const (
	// KindPolicy is the policy directory: its *.cedar files.
	KindPolicy Kind = "policy"
	// KindSchema is the schema file.
	KindSchema Kind = "schema"
	// KindAlgorithms is the reviewer set of the algorithm registry and the
	// approvals a bundle needs: one file, AlgorithmsFile (see Algorithms).
	KindAlgorithms Kind = "algorithms"
	// KindSigners is the set of governance signers itself: their keys by
	// role, the roles a proposal needs and the role that signs
	// suspensions: one file, SignersFile (see Signers).
	KindSigners Kind = "signers"
	// KindFlows is the declared outbound flows: one file, FlowsFile (see
	// internal/flow), empty when the deployment declares none.
	KindFlows Kind = "flows"
	// KindLocations is the storage locations where the jurisdiction's data
	// may reside: one file, LocationsFile (see Locations).
	KindLocations Kind = "locations"
)

// Kinds lists the kinds, in the order the rules in force name them. A kind
// governed since an upgrade goes last, so that the rules digests of the
// kinds before it keep their order.
var Kinds = []Kind{KindPolicy, KindSchema, KindAlgorithms, KindSigners, KindFlows, KindLocations}

// Content is the content of one kind of rules: files by base name. A
// schema has one file, SchemaFile.
type Content map[string][]byte

// ContentOf returns the content whose files are the texts of files, as
// the API and the signed state carry them.
func ContentOf(files map[string]string) Content {
	c := Content{}
	for n, d := range files {
		c[n] = []byte(d)
	}
	return c
}

// Files returns the files of c as texts by name, as the API and the
// signed state carry them.
func (c Content) Files() map[string]string {
	files := map[string]string{}
	for n, d := range c {
		files[n] = string(d)
	}
	return files
}

// SchemaFile names the one file of a schema's Content, AlgorithmsFile the
// one file of the algorithms', and so on.
const (
	SchemaFile     = "schema.yaml"
	AlgorithmsFile = "algorithms.json"
	SignersFile    = "signers.json"
	FlowsFile      = "flows.yaml"
	LocationsFile  = "locations.json"
)

// Bounds of what a proposal or statement holds.
const (
	MaxContent       = 4 << 20 // all files of a proposal
	maxFiles         = 1000
	MaxStatementText = 8 << 20 // a proposal's text, its diff included
	maxSuspendText   = 16 << 10
	maxReason        = 256
	maxPrincipals    = 256
)

var (
	policyFileRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\.cedar$`)
	hashRE       = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	deploymentRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)
	principalRE  = regexp.MustCompile(`^[A-Za-z0-9._:@-]{1,128}$`)
)

// Check checks that c is a well-formed content of kind k: file names and
// bounds. Whether the files parse is the caller's to check.
func (k Kind) Check(c Content) error {
	if !slices.Contains(Kinds, k) {
		return fmt.Errorf("unknown kind %q: want policy, schema, algorithms, signers, flows or locations", k)
	}
	if len(c) == 0 || len(c) > maxFiles {
		return fmt.Errorf("a %s proposal holds between 1 and %d files", k, maxFiles)
	}
	total := 0
	for name, data := range c {
		switch {
		case k == KindPolicy && !policyFileRE.MatchString(name):
			return fmt.Errorf("policy file %q is not named NAME.cedar with letters, digits and ._-", name)
		case k == KindSchema && name != SchemaFile:
			return fmt.Errorf("a schema proposal holds one file, %s", SchemaFile)
		case k == KindAlgorithms && name != AlgorithmsFile:
			return fmt.Errorf("an algorithms proposal holds one file, %s", AlgorithmsFile)
		case k == KindSigners && name != SignersFile:
			return fmt.Errorf("a signers proposal holds one file, %s", SignersFile)
		case k == KindFlows && name != FlowsFile:
			return fmt.Errorf("a flows proposal holds one file, %s", FlowsFile)
		case k == KindLocations && name != LocationsFile:
			return fmt.Errorf("a locations proposal holds one file, %s", LocationsFile)
		case !utf8.Valid(data):
			return fmt.Errorf("%s is not UTF-8 text", name)
		}
		total += len(data)
	}
	if total > MaxContent {
		return fmt.Errorf("a proposal holds at most %d bytes of files", MaxContent)
	}
	switch k {
	case KindAlgorithms:
		_, err := ParseAlgorithms(c[AlgorithmsFile])
		return err
	case KindSigners:
		_, err := ParseSigners(c[SignersFile])
		return err
	case KindLocations:
		_, err := ParseLocations(c[LocationsFile])
		return err
	}
	return nil
}

// Signers is the set of governance signers: note verifier keys (NAME.vkey
// text) by role, the roles a proposal needs a signature of each, and the
// role whose keys sign suspensions. Its content is its Marshal.
type Signers struct {
	Roles     map[string][]string `json:"roles"`
	Require   []string            `json:"require"`
	Suspender string              `json:"suspender"`
}

// Marshal returns the canonical text of s: indented JSON, roles and keys
// sorted.
func (s Signers) Marshal() []byte {
	c := Signers{Roles: map[string][]string{}, Require: slices.Sorted(slices.Values(s.Require)), Suspender: s.Suspender}
	for r, ks := range s.Roles {
		c.Roles[r] = slices.Sorted(slices.Values(ks))
	}
	if c.Require == nil {
		c.Require = []string{}
	}
	b, _ := json.MarshalIndent(c, "", "  ")
	return append(b, '\n')
}

// Empty reports whether s lists no key.
func (s Signers) Empty() bool {
	for _, ks := range s.Roles {
		if len(ks) > 0 {
			return false
		}
	}
	return true
}

var roleRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)

// keys returns the role of each key name, every key and the suspender's
// keys, refusing sets that would let one key count twice, or that list
// keys while a required role or the suspender has none.
func (s Signers) keys() (roles map[string]string, all, suspenders []note.Verifier, err error) {
	roles, seen := map[string]string{}, map[string]bool{}
	for _, role := range slices.Sorted(maps.Keys(s.Roles)) {
		if !roleRE.MatchString(role) {
			return nil, nil, nil, fmt.Errorf("%q is not a role name", role)
		}
		for i, t := range s.Roles[role] {
			v, err := note.NewVerifier(t)
			if err != nil {
				return nil, nil, nil, fmt.Errorf("governance %s key %d is not a note verifier key: %w", role, i+1, err)
			}
			key := strings.SplitN(t, "+", 3)[2]
			switch {
			case seen[key]:
				return nil, nil, nil, fmt.Errorf("governance key %s is listed twice: one key counts for one role, once", v.Name())
			case roles[v.Name()] != "":
				return nil, nil, nil, fmt.Errorf("two governance keys are named %s: each key needs its own name", v.Name())
			}
			seen[key], roles[v.Name()] = true, role
			all = append(all, v)
			if role == s.Suspender {
				suspenders = append(suspenders, v)
			}
		}
	}
	if len(s.Require) == 0 {
		return nil, nil, nil, errors.New("governance requires no role: a change signed by no one must not apply")
	}
	if len(all) > 0 {
		for _, r := range s.Require {
			if len(s.Roles[r]) == 0 {
				return nil, nil, nil, fmt.Errorf("governance requires a signature of role %s, which lists no key: no change could ever be applied", r)
			}
		}
		if len(suspenders) == 0 {
			return nil, nil, nil, fmt.Errorf("the suspender role %s lists no key: no suspension could ever be signed", s.Suspender)
		}
	}
	return roles, all, suspenders, nil
}

// ParseSigners parses the canonical text of a signer set, refusing
// anything Marshal would not have written and any set keys refuses.
func ParseSigners(data []byte) (Signers, error) {
	var s Signers
	if len(data) > 256<<10 {
		return s, errors.New("the signer set is too large")
	}
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(&s); err != nil {
		return s, fmt.Errorf("malformed signer set: %w", err)
	}
	n := 0
	for _, ks := range s.Roles {
		n += len(ks)
	}
	if len(s.Roles) > maxReviewers || n > maxReviewers || len(s.Require) > maxReviewers {
		return s, fmt.Errorf("a signer set lists at most %d roles and keys", maxReviewers)
	}
	if _, _, _, err := s.keys(); err != nil {
		return s, err
	}
	if !roleRE.MatchString(s.Suspender) || len(slices.Compact(slices.Clone(s.Require))) != len(s.Require) {
		return s, errors.New("malformed signer set: bad suspender or a role required twice")
	}
	if !bytes.Equal(s.Marshal(), data) {
		return s, errors.New("the signer set is not canonical: roles and keys sorted, indented as custos writes it")
	}
	return s, nil
}

// Algorithms is the reviewer set of the algorithm registry: the note
// verifier keys (NAME.vkey text) of the custodian's reviewers, sorted, and
// the number of distinct reviewers' approvals a bundle needs. Its content
// is its Marshal, one key a line.
type Algorithms struct {
	Reviewers []string `json:"reviewers"`
	Approvals int      `json:"approvals"`
}

// maxReviewers bounds the reviewer set.
const maxReviewers = 64

// Marshal returns the canonical text of a: indented JSON, reviewers
// sorted.
func (a Algorithms) Marshal() []byte {
	a.Reviewers = slices.Sorted(slices.Values(a.Reviewers))
	if a.Reviewers == nil {
		a.Reviewers = []string{}
	}
	b, _ := json.MarshalIndent(a, "", "  ")
	return append(b, '\n')
}

// ParseAlgorithms parses the canonical text of a reviewer set, refusing
// anything Marshal would not have written: keys that are not note
// verifier keys or are listed twice, or approvals outside 1 to the number
// of reviewers (0 to 64 with no reviewers).
func ParseAlgorithms(data []byte) (Algorithms, error) {
	var a Algorithms
	if len(data) > 64<<10 {
		return a, errors.New("the reviewer set is too large")
	}
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(&a); err != nil {
		return a, fmt.Errorf("malformed reviewer set: %w", err)
	}
	if len(a.Reviewers) > maxReviewers {
		return a, fmt.Errorf("a reviewer set lists at most %d keys", maxReviewers)
	}
	for _, r := range a.Reviewers {
		if _, err := note.NewVerifier(r); err != nil {
			return a, errors.New("a reviewer is not a note verifier key")
		}
	}
	switch {
	case len(a.Reviewers) > 0 && (a.Approvals < 1 || a.Approvals > len(a.Reviewers)):
		return a, fmt.Errorf("approvals must be between 1 and the number of reviewers (%d)", len(a.Reviewers))
	case a.Approvals < 0 || a.Approvals > maxReviewers:
		return a, fmt.Errorf("approvals must be between 0 and %d", maxReviewers)
	case len(slices.Compact(slices.Clone(a.Reviewers))) != len(a.Reviewers):
		return a, errors.New("a reviewer key is listed twice")
	case !bytes.Equal(a.Marshal(), data):
		return a, errors.New("the reviewer set is not canonical: reviewers sorted, indented as custos writes it")
	}
	return a, nil
}

// Locations is the set of storage location labels where the data of the
// deployment's jurisdiction may reside, such as "us-east-1" or
// "sqlite:us/dallas-dc1". Its content is its Marshal.
type Locations struct {
	Permitted []string `json:"permitted"`
}

// maxLocations bounds the permitted locations.
const maxLocations = 64

// locationRE is the form of a location label, as internal/config checks
// the labels of custos.yaml.
var locationRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$`)

// Marshal returns the canonical text of l: indented JSON, each label once,
// sorted.
func (l Locations) Marshal() []byte {
	l.Permitted = slices.Compact(slices.Sorted(slices.Values(l.Permitted)))
	if l.Permitted == nil {
		l.Permitted = []string{}
	}
	b, _ := json.MarshalIndent(l, "", "  ")
	return append(b, '\n')
}

// ParseLocations parses the canonical text of a set of permitted
// locations, refusing anything Marshal would not have written and a set of
// no label, more than 64, or a label that is not letters, digits and
// ._:/- (up to 128, starting with a letter or digit).
func ParseLocations(data []byte) (Locations, error) {
	var l Locations
	if len(data) > 16<<10 {
		return l, errors.New("the permitted locations are too large")
	}
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(&l); err != nil {
		return l, fmt.Errorf("malformed permitted locations: %w", err)
	}
	if len(l.Permitted) == 0 || len(l.Permitted) > maxLocations {
		return l, fmt.Errorf("permit between 1 and %d storage locations", maxLocations)
	}
	for _, p := range l.Permitted {
		if !locationRE.MatchString(p) {
			return l, fmt.Errorf("%q is not a location label: letters, digits and ._:/-, starting with a letter or digit", p)
		}
	}
	if !bytes.Equal(l.Marshal(), data) {
		return l, errors.New("the permitted locations are not canonical: each label once, sorted, indented as custos writes them")
	}
	return l, nil
}

// Digest returns "sha256:" and the hex SHA-256 of c: for each file in name
// order, its name, a line break, its length in decimal, a line break and
// its bytes. Two contents have the same digest only if they hold the same
// files with the same bytes.
func Digest(c Content) string {
	h := sha256.New()
	for _, name := range slices.Sorted(maps.Keys(c)) {
		fmt.Fprintf(h, "%s\n%d\n", name, len(c[name]))
		h.Write(c[name])
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// RulesDigest returns the digest of the rules in force: "sha256:" and the
// hex SHA-256 of the lines "KIND DIGEST\n" of each kind in the order of
// Kinds. The log's rules-in-force entries carry it.
func RulesDigest(digests map[Kind]string) string {
	h := sha256.New()
	for _, k := range Kinds {
		fmt.Fprintf(h, "%s %s\n", k, digests[k])
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// The first lines of the statements.
const (
	proposalHeader   = "custos governance proposal v1"
	suspensionHeader = "custos suspension v1"
)

// Proposal is what the signers of a proposal sign: a change of one kind of
// rules, from the content in force (Current) to the content proposed, by
// their digests, with the diff between them. As a signed note's text:
//
//	custos governance proposal v1
//	deployment NAME
//	kind policy|schema
//	current sha256:HEX
//	proposed sha256:HEX
//	time RFC3339
//	diff
//	LINES OF THE DIFF (see Diff)
type Proposal struct {
	Deployment string
	Kind       Kind
	Current    string
	Proposed   string
	Time       time.Time
	Diff       string
}

// Text returns the canonical text of p.
func (p *Proposal) Text() []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\ndeployment %s\nkind %s\ncurrent %s\nproposed %s\ntime %s\ndiff\n%s",
		proposalHeader, p.Deployment, p.Kind, p.Current, p.Proposed, p.Time.UTC().Format(time.RFC3339), p.Diff)
	return []byte(b.String())
}

// ID returns the proposal's identifier: the first 16 hex digits of the
// SHA-256 of its text.
func (p *Proposal) ID() string { return TextID(p.Text()) }

// TextID returns the identifier of the statement text.
func TextID(text []byte) string {
	h := sha256.Sum256(text)
	return hex.EncodeToString(h[:8])
}

// ParseProposal parses a proposal's text, refusing anything Text would not
// have written.
func ParseProposal(text []byte) (*Proposal, error) {
	if len(text) > MaxStatementText {
		return nil, errors.New("proposal text is too large")
	}
	head, diff, ok := strings.Cut(string(text), "\ndiff\n")
	if !ok {
		return nil, errors.New("proposal text has no diff line")
	}
	f, err := fields(head, proposalHeader, "deployment", "kind", "current", "proposed", "time")
	if err != nil {
		return nil, fmt.Errorf("malformed proposal: %w", err)
	}
	p := &Proposal{Deployment: f[0], Kind: Kind(f[1]), Current: f[2], Proposed: f[3], Diff: diff}
	if p.Time, err = time.Parse(time.RFC3339, f[4]); err != nil {
		return nil, errors.New("malformed proposal: bad time")
	}
	switch {
	case !deploymentRE.MatchString(p.Deployment):
		return nil, errors.New("malformed proposal: bad deployment")
	case !slices.Contains(Kinds, p.Kind):
		return nil, errors.New("malformed proposal: unknown kind")
	case !hashRE.MatchString(p.Current) || !hashRE.MatchString(p.Proposed):
		return nil, errors.New("malformed proposal: bad digest")
	}
	if err := checkDiff(diff); err != nil {
		return nil, fmt.Errorf("malformed proposal: %w", err)
	}
	if string(p.Text()) != string(text) {
		return nil, errors.New("proposal text is not canonical")
	}
	return p, nil
}

// checkDiff checks that the diff is lines of printable text, each starting
// as Diff starts them.
func checkDiff(d string) error {
	if d == "" {
		return nil
	}
	if !strings.HasSuffix(d, "\n") {
		return errors.New("the diff does not end in a line break")
	}
	for l := range strings.Lines(d) {
		l = l[:len(l)-1]
		if !strings.HasPrefix(l, "file ") && !strings.HasPrefix(l, "@@ ") && !strings.HasPrefix(l, "-") && !strings.HasPrefix(l, "+") {
			return errors.New("a diff line is not a file, hunk, removed or added line")
		}
		if !printable(l) {
			return errors.New("the diff holds a control character")
		}
	}
	return nil
}

func printable(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

// fields parses lines "KEY VALUE" in the order of keys after a header line,
// and returns the values.
func fields(text, header string, keys ...string) ([]string, error) {
	ls := strings.Split(text, "\n")
	if len(ls) != len(keys)+1 || ls[0] != header {
		return nil, fmt.Errorf("want %q and the lines %s", header, strings.Join(keys, ", "))
	}
	out := make([]string, len(keys))
	for i, k := range keys {
		v, ok := strings.CutPrefix(ls[i+1], k+" ")
		if !ok || !printable(v) {
			return nil, fmt.Errorf("line %d is not %q and a value", i+2, k)
		}
		out[i] = v
	}
	return out, nil
}

// The actions of a suspension statement.
const (
	Suspend = "suspend"
	Lift    = "lift"
)

// AllPrincipals stands for every principal of the operator in a suspension
// statement.
const AllPrincipals = "*"

// Suspension is a statement by the monitor that suspends principals of the
// operator or lifts their suspension. It names the suspension state it
// changes by the digest of that state's statement (Previous, "none" for
// the first), so that a statement applies once and cannot be replayed
// later. As a signed note's text:
//
//	custos suspension v1
//	deployment NAME
//	action suspend|lift
//	principals *|ID ID ...
//	reason TEXT
//	previous sha256:HEX|none
//	time RFC3339
//
// "principals *" suspends (or lifts) all of the operator's principals;
// lifting with "*" lifts every suspension.
type Suspension struct {
	Deployment string
	Action     string
	Principals []string // sorted, unique; nil for all
	Reason     string
	Previous   string
	Time       time.Time
}

// Text returns the canonical text of s.
func (s *Suspension) Text() []byte {
	who := AllPrincipals
	if s.Principals != nil {
		who = strings.Join(s.Principals, " ")
	}
	return fmt.Appendf(nil, "%s\ndeployment %s\naction %s\nprincipals %s\nreason %s\nprevious %s\ntime %s\n",
		suspensionHeader, s.Deployment, s.Action, who, s.Reason, s.Previous, s.Time.UTC().Format(time.RFC3339))
}

// Check checks that s is one Text can write.
func (s *Suspension) Check() error {
	switch {
	case !deploymentRE.MatchString(s.Deployment):
		return errors.New("bad deployment name")
	case s.Action != Suspend && s.Action != Lift:
		return errors.New("the action is suspend or lift")
	case s.Reason == "" || len(s.Reason) > maxReason || !printable(s.Reason) || strings.TrimSpace(s.Reason) != s.Reason:
		return fmt.Errorf("the reason is one line of 1 to %d bytes", maxReason)
	case s.Previous != "none" && !hashRE.MatchString(s.Previous):
		return errors.New("previous is none or sha256:HEX")
	case s.Principals != nil && (len(s.Principals) == 0 || len(s.Principals) > maxPrincipals):
		return fmt.Errorf("name 1 to %d principals, or * for all", maxPrincipals)
	}
	for i, p := range s.Principals {
		if !principalRE.MatchString(p) || (i > 0 && p <= s.Principals[i-1]) {
			return errors.New("principal ids are sorted, unique, 1-128 of [A-Za-z0-9._:@-]")
		}
	}
	return nil
}

// ParseSuspension parses a suspension statement's text, refusing anything
// Text would not have written.
func ParseSuspension(text []byte) (*Suspension, error) {
	if len(text) > maxSuspendText {
		return nil, errors.New("suspension statement is too large")
	}
	f, err := fields(strings.TrimSuffix(string(text), "\n"), suspensionHeader, "deployment", "action", "principals", "reason", "previous", "time")
	if err != nil {
		return nil, fmt.Errorf("malformed suspension statement: %w", err)
	}
	s := &Suspension{Deployment: f[0], Action: f[1], Reason: f[3], Previous: f[4]}
	if f[2] != AllPrincipals {
		s.Principals = strings.Split(f[2], " ")
	}
	if s.Time, err = time.Parse(time.RFC3339, f[5]); err != nil {
		return nil, errors.New("malformed suspension statement: bad time")
	}
	if err := s.Check(); err != nil {
		return nil, fmt.Errorf("malformed suspension statement: %w", err)
	}
	if string(s.Text()) != string(text) {
		return nil, errors.New("suspension statement is not canonical")
	}
	return s, nil
}
