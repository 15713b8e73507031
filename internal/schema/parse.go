package schema

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/custos/custos"
	"go.yaml.in/yaml/v3"
)

// parseYAML parses data as exactly one YAML document and returns its root.
func parseYAML(name string, data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: empty schema", name)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var more yaml.Node
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: more than one YAML document", name)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, fmt.Errorf("%s: empty schema", name)
	}
	return doc.Content[0], nil
}

// parser walks the YAML tree of a schema file. It keeps the first error and
// ignores what follows it, so that the walk reads straight.
type parser struct {
	name string
	err  error
}

func (p *parser) failf(n *yaml.Node, path, format string, args ...any) {
	if p.err == nil {
		p.err = fmt.Errorf("%s:%d:%d: %s: %s", p.name, n.Line, n.Column, path, fmt.Sprintf(format, args...))
	}
}

// mapping returns the values of mapping n by key, in file order, after
// checking that n is a mapping of scalar keys without duplicates, and that
// every key is one of known (unless known is nil).
func (p *parser) mapping(n *yaml.Node, path string, known ...string) (keys []*yaml.Node, vals map[string]*yaml.Node) {
	if !p.kind(n, path, yaml.MappingNode, "a mapping") {
		return nil, nil
	}
	vals = make(map[string]*yaml.Node, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !p.kind(k, path, yaml.ScalarNode, "a plain key") {
			return nil, nil
		}
		if known != nil && !slices.Contains(known, k.Value) {
			p.failf(k, path, "unknown key %s (want one of %s)", quote(k.Value), strings.Join(known, ", "))
			return nil, nil
		}
		if _, dup := vals[k.Value]; dup {
			p.failf(k, path, "duplicate key %s", quote(k.Value))
			return nil, nil
		}
		keys = append(keys, k)
		vals[k.Value] = v
	}
	return keys, vals
}

// kind checks that n is of kind k, described as want in the error.
func (p *parser) kind(n *yaml.Node, path string, k yaml.Kind, want string) bool {
	if p.err != nil {
		return false
	}
	switch {
	case n.Kind == yaml.AliasNode:
		p.failf(n, path, "YAML aliases are not allowed")
	case n.Kind != k:
		p.failf(n, path, "want %s", want)
	default:
		return true
	}
	return false
}

// require reports a missing key of mapping n.
func (p *parser) require(n *yaml.Node, vals map[string]*yaml.Node, path string, keys ...string) bool {
	for _, k := range keys {
		if _, ok := vals[k]; !ok {
			p.failf(n, path, "missing key %q", k)
			return false
		}
	}
	return p.err == nil
}

// scalar returns the value of scalar n, which must resolve to tag.
func (p *parser) scalar(n *yaml.Node, path, tag, want string) (string, bool) {
	if !p.kind(n, path, yaml.ScalarNode, want) {
		return "", false
	}
	if n.ShortTag() != tag {
		p.failf(n, path, "want %s", want)
		return "", false
	}
	return n.Value, true
}

func (p *parser) integer(n *yaml.Node, path string) (int, bool) {
	if _, ok := p.scalar(n, path, "!!int", "an integer"); !ok {
		return 0, false
	}
	var i int
	if err := n.Decode(&i); err != nil {
		p.failf(n, path, "want an integer that fits an int")
		return 0, false
	}
	return i, true
}

func (p *parser) schema(root *yaml.Node) *Schema {
	_, vals := p.mapping(root, "(top)", "version", "collections")
	if !p.require(root, vals, "(top)", "version", "collections") {
		return nil
	}
	s := &Schema{}
	if v, ok := p.integer(vals["version"], "version"); ok && v != Version {
		p.failf(vals["version"], "version", "unsupported version %d (want %d)", v, Version)
	} else {
		s.Version = v
	}
	cn := vals["collections"]
	keys, cvals := p.mapping(cn, "collections")
	switch {
	case p.err != nil:
		return nil
	case len(keys) == 0:
		p.failf(cn, "collections", "no collections declared")
	case len(keys) > MaxCollections:
		p.failf(keys[MaxCollections], "collections", "more than %d collections", MaxCollections)
	}
	s.Collections = make(map[string]*Collection, len(keys))
	for _, k := range keys {
		s.Collections[k.Value] = p.collection(k, cvals[k.Value])
	}
	return s
}

func (p *parser) collection(k, n *yaml.Node) *Collection {
	path := "collections." + k.Value
	if !ValidName(k.Value) {
		p.failf(k, "collections", "invalid collection name %s (want [a-z][a-z0-9_]{0,62})", quote(k.Value))
	}
	_, vals := p.mapping(n, path, "subject", "fields")
	if !p.require(n, vals, path, "subject", "fields") {
		return nil
	}
	c := &Collection{Name: k.Value}
	fn := vals["fields"]
	keys, fvals := p.mapping(fn, path+".fields")
	switch {
	case p.err != nil:
		return nil
	case len(keys) > MaxFields:
		p.failf(keys[MaxFields], path+".fields", "more than %d fields", MaxFields)
		return nil
	}
	c.Fields = make(map[string]*Field, len(keys))
	for _, fk := range keys {
		c.Fields[fk.Value] = p.field(path+".fields", fk, fvals[fk.Value])
		c.Order = append(c.Order, fk.Value)
	}
	p.subject(c, vals["subject"], path+".subject")
	return c
}

func (p *parser) subject(c *Collection, n *yaml.Node, path string) {
	name, ok := p.scalar(n, path, "!!str", "a field name")
	if !ok {
		return
	}
	f, ok := c.Fields[name]
	switch {
	case !ok:
		p.failf(n, path, "no field %s in this collection", quote(name))
	case f.Type != custos.TypeID:
		p.failf(n, path, "field %s has type %s (want id)", quote(name), f.Type)
	default:
		c.Subject = name
		f.Required = true
	}
}

var fieldKeys = []string{"type", "class", "required", "max", "description"}

func (p *parser) field(parent string, k, n *yaml.Node) *Field {
	path := parent + "." + k.Value
	if !ValidName(k.Value) {
		p.failf(k, parent, "invalid field name %s (want [a-z][a-z0-9_]{0,62})", quote(k.Value))
	}
	_, vals := p.mapping(n, path, fieldKeys...)
	if !p.require(n, vals, path, "type", "class") {
		return nil
	}
	f := &Field{Name: k.Value, Max: DefaultMax}
	if t, ok := p.scalar(vals["type"], path+".type", "!!str", "a type"); ok {
		f.Type = custos.FieldType(t)
		if !f.Type.Valid() {
			p.failf(vals["type"], path+".type", "unknown type %s (want one of %s)", quote(t), join(custos.FieldTypes))
		}
	}
	if c, ok := p.scalar(vals["class"], path+".class", "!!str", "a class"); ok {
		f.Class = custos.Class(c)
		if !f.Class.Valid() {
			p.failf(vals["class"], path+".class", "unknown class %s (want one of %s)", quote(c), join(custos.Classes))
		}
	}
	if r, ok := vals["required"]; ok {
		if v, ok := p.scalar(r, path+".required", "!!bool", "true or false"); ok {
			f.Required = v == "true"
		}
	}
	if m, ok := vals["max"]; ok {
		f.Max = p.max(m, path+".max", f.Type)
	}
	if d, ok := vals["description"]; ok {
		f.Description = p.description(d, path+".description")
	}
	return f
}

func (p *parser) max(n *yaml.Node, path string, t custos.FieldType) int {
	m, ok := p.integer(n, path)
	switch {
	case !ok:
	case t != custos.TypeString && t != custos.TypeBytes:
		p.failf(n, path, "max applies to string and bytes fields only")
	case m < 1 || m > MaxValue:
		p.failf(n, path, "max %d is not between 1 and %d", m, MaxValue)
	}
	return m
}

func (p *parser) description(n *yaml.Node, path string) string {
	d, ok := p.scalar(n, path, "!!str", "a string")
	if ok && len(d) > maxDescription {
		p.failf(n, path, "longer than %d bytes", maxDescription)
	}
	return d
}

func join[T ~string](list []T) string {
	s := make([]string, len(list))
	for i, x := range list {
		s[i] = string(x)
	}
	return strings.Join(s, ", ")
}
