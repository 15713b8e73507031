// Package starter holds the files of a starter deployment, written by
// `custos init`: the configuration template, the schema of the starter
// collections, the Cedar policies that encode the arrangement between
// custodian, operator and monitor, and the table that tests those policies.
package starter

import (
	"bytes"
	"embed"
	"io/fs"
	"text/template"
	"time"
)

//go:embed custos.yaml.tmpl schema.yaml flows.yaml policy_tests.yaml policies/*.cedar
var files embed.FS

// Params fill the configuration template.
type Params struct {
	Name         string
	Jurisdiction string
	Location     string
	Issuer       string
	ShredAfter   time.Duration
}

// Config returns the starter custos.yaml for p.
func Config(p Params) ([]byte, error) {
	t, err := template.ParseFS(files, "custos.yaml.tmpl")
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := t.Execute(&b, p); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Schema returns the starter schema.
func Schema() []byte { return mustRead("schema.yaml") }

// Flows returns the starter flows file.
func Flows() []byte { return mustRead("flows.yaml") }

// PolicyTests returns the table that checks the starter policies.
func PolicyTests() []byte { return mustRead("policy_tests.yaml") }

// Policies returns the starter policy files by name.
func Policies() map[string][]byte {
	out := map[string][]byte{}
	names, _ := fs.Glob(files, "policies/*.cedar")
	for _, n := range names {
		out[n[len("policies/"):]] = mustRead(n)
	}
	return out
}

func mustRead(name string) []byte {
	b, err := files.ReadFile(name)
	if err != nil {
		panic("starter: missing embedded file " + name)
	}
	return b
}
