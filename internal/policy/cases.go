package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/custos/custos"
)

// Bounds on a policy test table.
const (
	maxCases      = 10000
	maxTableBytes = 1 << 20
)

// Case is one case of a policy test table: a principal asks for an action on
// a field or a subject, with a purpose and a context, and the table says
// what it must get.
type Case struct {
	Name      string        `yaml:"name"`
	Principal CasePrincipal `yaml:"principal"`
	// Action is "" or "read" for a read, whose outcome is a form; any other
	// action's outcome is allow or deny.
	Action  string      `yaml:"action,omitempty"`
	Field   string      `yaml:"field,omitempty"`   // "collection.field", for actions on fields
	Subject CaseSubject `yaml:"subject,omitempty"` // for register and erase
	// Algorithm names the algorithm of train, recommend and replay, or the
	// algorithm bundles of the algo-* actions.
	Algorithm string `yaml:"algorithm,omitempty"`
	// Flow is the declared flow of flow-export and flow-read.
	Flow    CaseFlow    `yaml:"flow,omitempty"`
	Purpose string      `yaml:"purpose,omitempty"`
	Context CaseContext `yaml:"context,omitempty"`
	// Want is clear, token, masked or withheld for a read; allow or deny
	// for any other action.
	Want string `yaml:"want"`
}

// CasePrincipal is the principal of a Case.
type CasePrincipal struct {
	ID     string   `yaml:"id,omitempty"`
	Org    string   `yaml:"org,omitempty"`
	Loc    string   `yaml:"loc,omitempty"`
	Roles  []string `yaml:"roles,omitempty"`
	Vetted bool     `yaml:"vetted,omitempty"`
}

// CaseSubject is the subject of a register or erase Case.
type CaseSubject struct {
	ID        string `yaml:"id,omitempty"`
	Residency string `yaml:"residency,omitempty"`
}

// CaseFlow is the flow of a flow-export or flow-read Case.
type CaseFlow struct {
	Name         string `yaml:"name,omitempty"`
	Recipient    string `yaml:"recipient,omitempty"`
	Jurisdiction string `yaml:"jurisdiction,omitempty"`
	Collection   string `yaml:"collection,omitempty"`
}

// CaseContext is the context of a Case beyond its purpose.
type CaseContext struct {
	Reason     string `yaml:"reason,omitempty"`
	Justified  bool   `yaml:"justified,omitempty"`
	Approved   bool   `yaml:"approved,omitempty"`
	BreakGlass bool   `yaml:"break_glass,omitempty"`
}

// Failure is a case whose outcome differs from the one it wants.
type Failure struct {
	Case Case
	Got  string
}

// The outcomes of actions other than reads.
const (
	outcomeAllow = "allow"
	outcomeDeny  = "deny"
)

// ParseTests parses a policy test table: a YAML list of cases. Tables are
// bounded (1 MiB, 10,000 cases), keys a Case does not have are refused, and
// every case is checked to be decidable; errors name the case by number
// (from 1) and line.
func ParseTests(data []byte) ([]Case, error) {
	if len(data) > maxTableBytes {
		return nil, fmt.Errorf("couldn't parse policy tests: more than %d bytes", maxTableBytes)
	}
	lines, err := caseLines(data)
	if err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var cases []Case
	if err := dec.Decode(&cases); err != nil {
		return nil, fmt.Errorf("couldn't parse policy tests: %s", yamlError(err, lines))
	}
	if len(cases) != len(lines) {
		return nil, fmt.Errorf("couldn't parse policy tests: %d cases decoded of %d listed", len(cases), len(lines))
	}
	for i := range cases {
		if err := cases[i].check(); err != nil {
			return nil, fmt.Errorf("couldn't parse policy tests: case %d (line %d): %w", i+1, lines[i], err)
		}
	}
	return cases, nil
}

// caseLines checks that data is one YAML document holding a list of at most
// maxCases entries and returns the line of each.
func caseLines(data []byte) ([]int, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("couldn't parse policy tests: no cases")
		}
		return nil, fmt.Errorf("couldn't parse policy tests: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("couldn't parse policy tests: more than one YAML document")
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("couldn't parse policy tests: line %d: want a list of cases", doc.Line)
	}
	items := doc.Content[0].Content
	if len(items) == 0 {
		return nil, errors.New("couldn't parse policy tests: no cases")
	}
	if len(items) > maxCases {
		return nil, fmt.Errorf("couldn't parse policy tests: more than %d cases", maxCases)
	}
	lines := make([]int, len(items))
	for i, n := range items {
		if n.Kind != yaml.MappingNode && n.Kind != yaml.AliasNode {
			return nil, fmt.Errorf("couldn't parse policy tests: case %d (line %d): want a mapping with a name, a principal and what it wants", i+1, n.Line)
		}
		lines[i] = n.Line
	}
	return lines, nil
}

var yamlLine = regexp.MustCompile(`line (\d+)`)

// yamlError rewrites a decoding error so that each of its lines names the
// case it is in.
func yamlError(err error, lines []int) string {
	var msgs []string
	if te, ok := errors.AsType[*yaml.TypeError](err); ok {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	for i, m := range msgs {
		sm := yamlLine.FindStringSubmatch(m)
		if sm == nil {
			continue
		}
		line, _ := strconv.Atoi(sm[1])
		// The case is the last one starting at or before the line.
		if c := sort.SearchInts(lines, line+1); c > 0 {
			msgs[i] = fmt.Sprintf("case %d: %s", c, m)
		}
	}
	return strings.Join(msgs, "; ")
}

// isRead reports whether the case is a read.
func (c *Case) isRead() bool { return c.Action == "" || c.Action == "read" }

// check reports why c cannot be decided, if it cannot.
func (c *Case) check() error {
	if c.Name == "" {
		return errors.New("no name")
	}
	switch {
	case c.isRead():
		if !slices.Contains([]custos.Form{custos.FormClear, custos.FormToken, custos.FormMasked, custos.FormWithheld}, custos.Form(c.Want)) {
			return fmt.Errorf("%q: a read wants clear, token, masked or withheld, not %q", c.Name, c.Want)
		}
	case slices.Contains(slices.Concat(fieldActions, subjectActions, algorithmActions, governanceActions, flowActions), custos.Action(c.Action)):
		if c.Want != outcomeAllow && c.Want != outcomeDeny {
			return fmt.Errorf("%q: action %s wants allow or deny, not %q", c.Name, c.Action, c.Want)
		}
	default:
		return fmt.Errorf("%q: unknown action %q", c.Name, c.Action)
	}
	if slices.Contains(subjectActions, custos.Action(c.Action)) {
		if c.Subject.Residency == "" || c.Field != "" {
			return fmt.Errorf("%q: action %s needs a subject with a residency and no field", c.Name, c.Action)
		}
		return nil
	}
	if slices.Contains(governanceActions, custos.Action(c.Action)) {
		if c.Algorithm != "" || c.Field != "" || c.Subject != (CaseSubject{}) {
			return fmt.Errorf("%q: action %s needs no algorithm, field or subject", c.Name, c.Action)
		}
		return nil
	}
	if slices.Contains(flowActions, custos.Action(c.Action)) {
		if c.Flow.Name == "" || c.Flow.Recipient == "" || c.Field != "" || c.Subject != (CaseSubject{}) {
			return fmt.Errorf("%q: action %s needs a flow with a name and a recipient, and no field or subject", c.Name, c.Action)
		}
		return nil
	}
	if slices.Contains(algorithmActions, custos.Action(c.Action)) {
		if c.Algorithm == "" || c.Field != "" || c.Subject != (CaseSubject{}) {
			return fmt.Errorf("%q: action %s needs an algorithm name and no field or subject", c.Name, c.Action)
		}
		return nil
	}
	if _, _, ok := c.field(); !ok {
		return fmt.Errorf("%q: field %q is not collection.field", c.Name, c.Field)
	}
	return nil
}

// field splits the case's field into collection and name.
func (c *Case) field() (collection, name string, ok bool) {
	collection, name, ok = strings.Cut(c.Field, ".")
	return collection, name, ok && collection != "" && name != ""
}

// principal returns the case's principal as custos would authenticate it.
func (c *Case) principal() custos.Principal {
	roles := slices.Clone(c.Principal.Roles)
	slices.Sort(roles)
	return custos.Principal{
		ID:     c.Principal.ID,
		Org:    c.Principal.Org,
		Loc:    c.Principal.Loc,
		Roles:  slices.Compact(roles),
		Vetted: c.Principal.Vetted,
	}
}

func (c *Case) context() Context {
	return Context{
		Purpose:    custos.Purpose(c.Purpose),
		Reason:     c.Context.Reason,
		Justified:  c.Context.Justified,
		Approved:   c.Context.Approved,
		BreakGlass: c.Context.BreakGlass,
	}
}

// RunTests decides every case with e and returns the cases whose outcome
// differs from the one they want. field resolves a case's field to its
// class and type, as the schema declares them; a case that cannot be
// decided, such as one naming a field the schema lacks, is an error naming
// the case.
func RunTests(e *Engine, cases []Case, field func(collection, name string) (Field, bool)) ([]Failure, error) {
	var failures []Failure
	for i := range cases {
		got, err := run(e, &cases[i], field)
		if err != nil {
			return nil, fmt.Errorf("couldn't run policy tests: case %d: %w", i+1, err)
		}
		if got != cases[i].Want {
			failures = append(failures, Failure{Case: cases[i], Got: got})
		}
	}
	return failures, nil
}

func run(e *Engine, c *Case, field func(collection, name string) (Field, bool)) (string, error) {
	if err := c.check(); err != nil {
		return "", err
	}
	p, ctx, a := c.principal(), c.context(), custos.Action(c.Action)
	if slices.Contains(governanceActions, a) {
		return outcome(e.AllowedOnGovernance(p, a, ctx)), nil
	}
	if slices.Contains(flowActions, a) {
		f := FlowResource{Name: c.Flow.Name, Recipient: c.Flow.Recipient, Jurisdiction: c.Flow.Jurisdiction, Collection: c.Flow.Collection}
		return outcome(e.AllowedOnFlow(p, a, f, ctx)), nil
	}
	if slices.Contains(algorithmActions, a) {
		return outcome(e.AllowedOnAlgorithm(p, a, c.Algorithm, ctx)), nil
	}
	if slices.Contains(subjectActions, a) {
		subject := c.Subject.ID
		if subject == "" {
			subject = "test-subject"
		}
		return outcome(e.AllowedOnSubject(p, a, subject, c.Subject.Residency, ctx)), nil
	}
	collection, name, _ := c.field()
	f, ok := field(collection, name)
	if !ok {
		return "", fmt.Errorf("%q: unknown field %s", c.Name, c.Field)
	}
	if c.isRead() {
		return string(e.Forms(p, ctx, []Field{f})[0]), nil
	}
	return outcome(e.Allowed(p, a, f, ctx)), nil
}

func outcome(allowed bool) string {
	if allowed {
		return outcomeAllow
	}
	return outcomeDeny
}
