// Package schema parses and validates the classification file: the
// collections custos keeps, their fields, each field's type and data class,
// and the field that names each record's subject. It answers "what class is
// this field" and checks the values of a write against their declared types.
//
// Guarantees:
//
//   - A Schema returned by Parse or Load is valid: version 1, every name of
//     the form [a-z][a-z0-9_]{0,62}, every type and class one custos knows,
//     every subject field declared with type id and required. Unknown keys,
//     duplicate keys, YAML aliases and second documents are refused, so that
//     what the custodian reads in the file is what custos enforces.
//   - Parsing is bounded: at most MaxFileSize bytes, MaxCollections
//     collections and MaxFields fields per collection.
//   - Errors about values (Decode, DecodeValue, EncodeValue) name the
//     collection and field, never the value: they can be shown to callers
//     and logged without leaking personal data. Errors about the schema file
//     quote the file, which holds no personal data, with its line and column.
//
// The package trusts nothing it parses; it does no I/O but in Load.
package schema

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"

	"github.com/custos/custos"
)

// Bounds of a schema file.
const (
	MaxFileSize    = 1 << 20 // bytes
	MaxCollections = 256
	MaxFields      = 256 // per collection
)

// Bounds of a field's values.
const (
	DefaultMax = 4096    // bytes of a string-like or bytes value when the field sets no max
	MaxValue   = 1 << 20 // the hard cap on a field's max
)

// Version is the only schema file version custos reads.
const Version = 1

// Schema is a parsed, valid schema file.
type Schema struct {
	Version     int
	Collections map[string]*Collection
	Digest      string // hex SHA-256 of the file, to record which schema was in force
}

// Collection is a collection of records and the fields they may hold.
type Collection struct {
	Name    string
	Subject string // the field whose value names the record's subject
	Fields  map[string]*Field
	Order   []string // field names in file order
}

// Field is a field of a collection.
type Field struct {
	Name        string
	Type        custos.FieldType
	Class       custos.Class
	Required    bool
	Max         int // bytes of a string-like value, or of a bytes value once decoded
	Description string
}

// Load reads and parses the schema file at path.
func Load(path string) (*Schema, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("couldn't open schema: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("couldn't read schema: %w", err)
	}
	return Parse(path, data)
}

// Parse parses and validates a schema file. name is used in error messages,
// which take the form "name:line:col: path: message".
func Parse(name string, data []byte) (*Schema, error) {
	s, err := parse(name, data)
	if err != nil {
		return nil, err
	}
	if err := s.check(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return s, nil
}

// parse builds the Schema of a file, refusing what does not fit as it walks
// the file; Parse then holds the result to check.
func parse(name string, data []byte) (*Schema, error) {
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("%s: schema is larger than %d bytes", name, MaxFileSize)
	}
	root, err := parseYAML(name, data)
	if err != nil {
		return nil, err
	}
	p := &parser{name: name}
	s := p.schema(root)
	if p.err != nil {
		return nil, p.err
	}
	sum := sha256.Sum256(data)
	s.Digest = hex.EncodeToString(sum[:])
	return s, nil
}

// Collection returns the collection with the given name, or an
// *custos.Error with code CodeUnknownCollection.
func (s *Schema) Collection(name string) (*Collection, error) {
	if c, ok := s.Collections[name]; ok {
		return c, nil
	}
	return nil, custos.Errorf(custos.CodeUnknownCollection, "no collection %s", quote(name))
}

// Field returns the field with the given name, or an *custos.Error with code
// CodeUnknownField.
func (c *Collection) Field(name string) (*Field, error) {
	if f, ok := c.Fields[name]; ok {
		return f, nil
	}
	return nil, custos.Errorf(custos.CodeUnknownField, "collection %s has no field %s", c.Name, quote(name))
}

// check validates s as a whole. Parse calls it on what it built; it states
// the invariants every Schema holds.
func (s *Schema) check() error {
	if s.Version != Version {
		return fmt.Errorf("version %d: want %d", s.Version, Version)
	}
	if len(s.Collections) == 0 {
		return fmt.Errorf("collections: none declared")
	}
	if len(s.Collections) > MaxCollections {
		return fmt.Errorf("collections: more than %d", MaxCollections)
	}
	for name, c := range s.Collections {
		if err := c.check(name); err != nil {
			return err
		}
	}
	return nil
}

func (c *Collection) check(name string) error {
	at := "collections." + name
	switch {
	case c.Name != name || !ValidName(name):
		return fmt.Errorf("%s: invalid collection name", at)
	case len(c.Fields) > MaxFields:
		return fmt.Errorf("%s.fields: more than %d", at, MaxFields)
	case len(c.Order) != len(c.Fields):
		return fmt.Errorf("%s.fields: order does not list every field", at)
	}
	for _, fname := range c.Order {
		f, ok := c.Fields[fname]
		if !ok {
			return fmt.Errorf("%s.fields: order does not list every field", at)
		}
		if err := f.check(at + ".fields." + fname); err != nil {
			return err
		}
	}
	subj, ok := c.Fields[c.Subject]
	switch {
	case !ok:
		return fmt.Errorf("%s.subject: no field %s", at, quote(c.Subject))
	case subj.Type != custos.TypeID:
		return fmt.Errorf("%s.subject: field %s has type %s, want id", at, quote(c.Subject), subj.Type)
	case !subj.Required:
		return fmt.Errorf("%s.subject: field %s is not required", at, quote(c.Subject))
	}
	return nil
}

func (f *Field) check(at string) error {
	switch {
	case !ValidName(f.Name):
		return fmt.Errorf("%s: invalid field name", at)
	case !f.Type.Valid():
		return fmt.Errorf("%s.type: unknown type %s", at, quote(string(f.Type)))
	case !f.Class.Valid():
		return fmt.Errorf("%s.class: unknown class %s", at, quote(string(f.Class)))
	case f.Max < 1 || f.Max > MaxValue:
		return fmt.Errorf("%s.max: %d is not between 1 and %d", at, f.Max, MaxValue)
	case len(f.Description) > maxDescription:
		return fmt.Errorf("%s.description: longer than %d bytes", at, maxDescription)
	}
	return nil
}

const maxDescription = 4096

// ValidName reports whether s, a name of a collection or a field, matches ^[a-z][a-z0-9_]{0,62}$.
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

// quote quotes a name for an error message, cut to a bounded length. It is
// for names (of collections, fields, types, classes), never for values.
func quote(s string) string {
	const max = 64
	if len(s) > max {
		return fmt.Sprintf("%q...", s[:max])
	}
	return fmt.Sprintf("%q", s)
}
