package policy

import (
	"crypto/sha256"
	_ "embed"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/cedar-policy/cedar-go"
	xast "github.com/cedar-policy/cedar-go/x/exp/ast"
	"github.com/cedar-policy/cedar-go/x/exp/schema"
	"github.com/cedar-policy/cedar-go/x/exp/schema/validate"
)

// Bounds on a policy set. Policies are written by the custodian, but a
// parser is bounded all the same.
const (
	maxFiles     = 1000
	maxSetBytes  = 4 << 20
	maxPolicies  = 10000
	cedarFileExt = ".cedar"
)

//go:embed custos.cedarschema
var cedarSchema string

// CedarSchema returns the Cedar schema every policy set is validated against,
// in Cedar's human-readable schema format.
func CedarSchema() string { return cedarSchema }

// validator checks policies against cedarSchema. It is built once; a
// Validator only reads its schema after construction.
var validator = func() *validate.Validator {
	var s schema.Schema
	s.SetFilename("custos.cedarschema")
	if err := s.UnmarshalCedar([]byte(cedarSchema)); err != nil {
		panic("policy: invalid embedded schema: " + err.Error())
	}
	r, err := s.Resolve()
	if err != nil {
		panic("policy: invalid embedded schema: " + err.Error())
	}
	return validate.New(r, validate.WithStrict())
}()

// Set is a parsed policy set, every policy of which passed validation
// against CedarSchema. A Set is immutable and safe for concurrent use. The
// zero Set holds no policies and so denies everything.
type Set struct {
	policies cedar.PolicyMap
	version  string
}

// Version identifies the set's text: the first 16 hex digits of a SHA-256
// over its files' names and contents, in name order. Two sets with the same
// files have the same version.
func (s *Set) Version() string {
	if s == nil || s.version == "" {
		return version(nil, nil)
	}
	return s.version
}

// Len returns the number of policies in the set.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.policies)
}

// ParseError is a policy file that does not parse or does not validate
// against CedarSchema. Line and Column are 1-based; they are 0 when the error
// has no position.
type ParseError struct {
	File         string
	Line, Column int
	Msg          string
}

func (e *ParseError) Error() string {
	if e.Line == 0 {
		return e.File + ": " + e.Msg
	}
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Msg)
}

// LoadDir parses every *.cedar file of dir, in name order. A directory
// without one is an error: custos never runs on an empty policy set by
// accident. Files are named in the set, and in errors, by their base name.
func LoadDir(dir string) (*Set, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("couldn't read policy directory: %w", err)
	}
	files := make(map[string][]byte)
	total := 0
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), cedarFileExt) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("couldn't read policy file: %w", err)
		}
		if total += len(b); total > maxSetBytes {
			return nil, fmt.Errorf("couldn't load policies: %s: more than %d bytes of policies", dir, maxSetBytes)
		}
		files[e.Name()] = b
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("couldn't load policies: no %s files in %s", cedarFileExt, dir)
	}
	return Parse(files)
}

// Parse parses and validates a policy set made of the given files, keyed by
// name. Any error is a *ParseError or names its file; on error no Set is
// returned, so an engine can never be given a set that failed to parse.
//
// Policies are named by their @id annotation when they have one, else by
// file and position; two policies may not share a name.
func Parse(files map[string][]byte) (*Set, error) {
	names, err := checkFiles(files)
	if err != nil {
		return nil, err
	}
	s := &Set{policies: make(cedar.PolicyMap), version: version(names, files)}
	for _, name := range names {
		if err := s.add(name, files[name]); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func checkFiles(files map[string][]byte) ([]string, error) {
	if len(files) > maxFiles {
		return nil, fmt.Errorf("couldn't parse policies: more than %d files", maxFiles)
	}
	total := 0
	for name, b := range files {
		if name == "" {
			return nil, errors.New("couldn't parse policies: a file has no name")
		}
		total += len(b)
	}
	if total > maxSetBytes {
		return nil, fmt.Errorf("couldn't parse policies: more than %d bytes", maxSetBytes)
	}
	return slices.Sorted(maps.Keys(files)), nil
}

// add parses one file into s.
func (s *Set) add(name string, text []byte) (err error) {
	// The parser and validator are third-party code fed with text from
	// disk: a panic in them refuses the file instead of ending custos.
	defer func() {
		if r := recover(); r != nil {
			err = &ParseError{File: name, Msg: fmt.Sprintf("internal parser failure: %v", r)}
		}
	}()
	list, err := cedar.NewPolicyListFromBytes(name, text)
	if err != nil {
		return cedarError(name, err)
	}
	if len(s.policies)+len(list) > maxPolicies {
		return &ParseError{File: name, Msg: fmt.Sprintf("more than %d policies in the set", maxPolicies)}
	}
	for _, p := range list {
		pos := p.Position()
		id := cedar.PolicyID(fmt.Sprintf("%s:%d:%d", name, pos.Line, pos.Column))
		if a, ok := p.Annotations()["id"]; ok {
			id = cedar.PolicyID(a)
		}
		if _, dup := s.policies[id]; dup {
			return &ParseError{File: name, Line: pos.Line, Column: pos.Column, Msg: fmt.Sprintf("policy id %q used twice", id)}
		}
		if err := validator.Policy(string(id), (*xast.Policy)(p.AST())); err != nil {
			return &ParseError{File: name, Line: pos.Line, Column: pos.Column, Msg: validationMsg(id, p, err)}
		}
		s.policies[id] = p
	}
	return nil
}

// cedarPos finds the position cedar-go writes into its parse errors.
var cedarPos = regexp.MustCompile(`(?:parse error at )?<input>:(\d+):(\d+):? ?`)

// cedarError turns a cedar-go parse error into a *ParseError naming the file.
func cedarError(name string, err error) *ParseError {
	msg := strings.TrimPrefix(err.Error(), "parser error: ")
	e := &ParseError{File: name}
	if m := cedarPos.FindStringSubmatchIndex(msg); m != nil {
		e.Line, _ = strconv.Atoi(msg[m[2]:m[3]])
		e.Column, _ = strconv.Atoi(msg[m[4]:m[5]])
		msg = msg[:m[0]] + msg[m[1]:]
	}
	e.Msg = oneLine(msg)
	return e
}

// maxValidationMsgs bounds the messages of one policy's validation error.
const maxValidationMsgs = 5

// validationMsg rewrites a validation error of the policy with the given
// id: one line, each message once, without the policy id the position
// already gives, unless the policy was named by @id.
func validationMsg(id cedar.PolicyID, p *cedar.Policy, err error) string {
	prefix := fmt.Sprintf("for policy `%s`, ", id)
	var msgs []string
	for l := range strings.Lines(err.Error()) {
		l = strings.TrimPrefix(strings.TrimSpace(l), prefix)
		if l != "" && !slices.Contains(msgs, l) {
			msgs = append(msgs, l)
		}
	}
	if n := len(msgs) - maxValidationMsgs; n > 0 {
		msgs = append(msgs[:maxValidationMsgs], fmt.Sprintf("and %d more", n))
	}
	msg := strings.Join(msgs, "; ")
	if _, named := p.Annotations()["id"]; named {
		msg = fmt.Sprintf("policy %q: %s", id, msg)
	}
	return msg
}

// oneLine joins the lines of a message with "; ".
func oneLine(s string) string {
	var parts []string
	for l := range strings.Lines(s) {
		if l = strings.TrimSpace(l); l != "" {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, "; ")
}

// version hashes the files' names and contents, length-prefixed so that no
// two different sets of files hash alike.
func version(names []string, files map[string][]byte) string {
	h := sha256.New()
	var n [8]byte
	for _, name := range names {
		binary.BigEndian.PutUint64(n[:], uint64(len(name)))
		h.Write(n[:])
		h.Write([]byte(name))
		binary.BigEndian.PutUint64(n[:], uint64(len(files[name])))
		h.Write(n[:])
		h.Write(files[name])
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}
