// Package flow declares the outbound flows of a deployment: the only ways
// records leave the custodian whole. A flow names its recipient (an org and
// the jurisdiction the data goes to), one collection, the fields that leave
// and the form each leaves in, a rate limit and the fraction of what leaves
// that is kept for the monitor as samples.
//
// Guarantees: Parse refuses a file with unknown keys, more than MaxFlows
// flows or MaxFields fields per flow, or over MaxFileSize bytes; Check
// refuses a flow that names a collection or field the schema lacks, or a
// field of the protected class in clear, so that such a declaration stops
// the server from starting. Cursors are sealed (AES-256-GCM under a key
// derived from the deployment's token root key) and bound to their flow:
// a client learns no record id from one, and a cursor forged, altered or
// taken from another flow is refused. Sampling is decided by a keyed hash
// of the flow and the record id, so a recipient can neither predict nor
// steer which records the monitor sees.
//
// The package trusts the schema it checks against and the key it is
// given; it does no I/O but for the file sample store.
package flow

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"

	"github.com/custos/custos"
	"github.com/custos/custos/internal/schema"
	"go.yaml.in/yaml/v3"
)

// Limits of a flows file.
const (
	MaxFileSize = 256 << 10
	MaxFlows    = 256
	MaxFields   = 256
	// MaxRate caps a flow's rate limit, in records per second.
	MaxRate = 1_000_000
)

// FormAggregate declares a field that leaves only in aggregates, through
// the aggregate endpoint: an export never carries it.
const FormAggregate custos.Form = "aggregate"

// DefaultSampleRate is the fraction of an export kept as samples when a
// flow does not say.
const DefaultSampleRate = 0.01

// Flow is a declared outbound flow.
type Flow struct {
	Name string `yaml:"name" json:"name"`
	// Recipient is the org whose principals may export the flow.
	Recipient string `yaml:"recipient" json:"recipient"`
	// Jurisdiction is the ISO 3166-1 alpha-2 country the data goes to.
	Jurisdiction string `yaml:"jurisdiction" json:"jurisdiction"`
	Collection   string `yaml:"collection" json:"collection"`
	// Fields maps each field that leaves to its form: clear (not for
	// protected fields), token (a pseudonym of the recipient's audience)
	// or aggregate (not exported here).
	Fields map[string]custos.Form `yaml:"fields" json:"fields"`
	// Rate is the most records per second the flow releases.
	Rate float64 `yaml:"rate" json:"rate"`
	// SampleRate is the fraction of exported records kept for the monitor,
	// between 0 and 1; DefaultSampleRate when absent.
	SampleRate *float64 `yaml:"sample_rate,omitempty" json:"sample_rate"`
	// Description says what the flow is for.
	Description string `yaml:"description,omitempty" json:"description,omitempty"`
}

// Set is the flows of a deployment, by name.
type Set struct {
	flows map[string]*Flow
	names []string
}

// file is the shape of a flows file.
type file struct {
	Version int     `yaml:"version"`
	Flows   []*Flow `yaml:"flows"`
}

var (
	validName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,63}$`)
	validOrg  = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,63}$`)
	validLoc  = regexp.MustCompile(`^[A-Z]{2}$`)
	// validField is the schema's field name syntax.
	validField = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)
)

// Parse parses a flows file. name names it in errors. An empty file
// declares no flow.
func Parse(name string, data []byte) (*Set, error) {
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("%s: larger than %d bytes", name, MaxFileSize)
	}
	var f file
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if f.Version != 0 && f.Version != 1 {
		return nil, fmt.Errorf("%s: version %d; this custos reads version 1", name, f.Version)
	}
	if len(f.Flows) > MaxFlows {
		return nil, fmt.Errorf("%s: more than %d flows", name, MaxFlows)
	}
	s := &Set{flows: make(map[string]*Flow, len(f.Flows))}
	for i, fl := range f.Flows {
		if fl == nil {
			return nil, fmt.Errorf("%s: flow %d is empty", name, i+1)
		}
		if err := fl.check(); err != nil {
			return nil, fmt.Errorf("%s: flow %d: %w", name, i+1, err)
		}
		if _, dup := s.flows[fl.Name]; dup {
			return nil, fmt.Errorf("%s: flow %q declared twice", name, fl.Name)
		}
		s.flows[fl.Name] = fl
		s.names = append(s.names, fl.Name)
	}
	slices.Sort(s.names)
	return s, nil
}

// check checks what a flow says by itself, without the schema.
func (f *Flow) check() error {
	switch {
	case !validName.MatchString(f.Name):
		return errors.New("name must be 1-64 lower-case letters, digits and dashes, starting with a letter")
	case !validOrg.MatchString(f.Recipient):
		return fmt.Errorf("flow %q: recipient must be an org name", f.Name)
	case !validLoc.MatchString(f.Jurisdiction):
		return fmt.Errorf("flow %q: jurisdiction must be an ISO 3166-1 alpha-2 code", f.Name)
	case f.Collection == "":
		return fmt.Errorf("flow %q: collection is missing", f.Name)
	case len(f.Fields) == 0 || len(f.Fields) > MaxFields:
		return fmt.Errorf("flow %q: fields must list 1-%d fields", f.Name, MaxFields)
	case !(f.Rate > 0 && f.Rate <= MaxRate):
		return fmt.Errorf("flow %q: rate must be more than 0 and at most %d records per second", f.Name, MaxRate)
	case f.SampleRate != nil && !(*f.SampleRate >= 0 && *f.SampleRate <= 1):
		return fmt.Errorf("flow %q: sample_rate must be between 0 and 1", f.Name)
	}
	for n, form := range f.Fields {
		if !validField.MatchString(n) {
			return fmt.Errorf("flow %q: %q is not a field name", f.Name, n)
		}
		if form != custos.FormClear && form != custos.FormToken && form != FormAggregate {
			return fmt.Errorf("flow %q: field %s: form must be clear, token or aggregate", f.Name, n)
		}
	}
	if f.SampleRate == nil {
		r := DefaultSampleRate
		f.SampleRate = &r
	}
	return nil
}

// Check checks every flow against the schema.
func (s *Set) Check(sc *schema.Schema) error {
	for _, n := range s.names {
		if err := s.flows[n].Check(sc); err != nil {
			return err
		}
	}
	return nil
}

// Check checks f against the schema: its collection and fields exist, and
// no protected field leaves in clear.
func (f *Flow) Check(sc *schema.Schema) error {
	coll, err := sc.Collection(f.Collection)
	if err != nil {
		return fmt.Errorf("flow %q: the schema has no collection %q", f.Name, f.Collection)
	}
	for _, name := range slices.Sorted(maps.Keys(f.Fields)) {
		field, ok := coll.Fields[name]
		if !ok {
			return fmt.Errorf("flow %q: collection %s has no field %q", f.Name, coll.Name, name)
		}
		if f.Fields[name] == custos.FormClear && field.Class == custos.ClassProtected {
			return fmt.Errorf("flow %q: field %s.%s is protected and cannot leave in clear; declare it token", f.Name, coll.Name, name)
		}
	}
	return nil
}

// Flow returns the flow with the given name.
func (s *Set) Flow(name string) (*Flow, bool) {
	if s == nil {
		return nil, false
	}
	f, ok := s.flows[name]
	return f, ok
}

// All returns the flows, sorted by name.
func (s *Set) All() []*Flow {
	if s == nil {
		return nil
	}
	out := make([]*Flow, len(s.names))
	for i, n := range s.names {
		out[i] = s.flows[n]
	}
	return out
}

// Exported returns the names of the fields an export carries, those not
// declared aggregate, sorted.
func (f *Flow) Exported() []string {
	var out []string
	for n, form := range f.Fields {
		if form != FormAggregate {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}
