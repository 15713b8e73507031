// Package algo is the custody of operators' algorithms as bundles: a
// WebAssembly module and a manifest saying what it is (name, version, the
// digests of the module and of its source archive, ABI version), what it
// reads (collections and fields), what it outputs and the resource limits
// it asks for.
//
// The manifest is the text of a C2SP signed note. The operator signs it
// with its Ed25519 note key, and since the manifest holds the module's
// SHA-256 that signature covers the module too; each reviewer approves by
// adding their signature to the same note. A bundle whose module differs
// from the manifest's digest by one bit does not verify.
package algo

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
)

// ABIVersion is the algorithm ABI custos runs (docs/algorithm-abi.md).
const ABIVersion = 1

// MaxManifestSize bounds a manifest's text.
const MaxManifestSize = 16 << 10

// Manifest describes a bundle. Its text (Marshal) is canonical: the one
// encoding ParseManifest accepts.
type Manifest struct {
	// Name and Version identify the bundle: [a-z0-9][a-z0-9-]* and
	// [0-9A-Za-z.+-]+, at most 64 bytes each.
	Name    string `json:"name"`
	Version string `json:"version"`
	// ABI is the algorithm ABI version the module targets.
	ABI int `json:"abi"`
	// ModuleSHA256 and SourceSHA256 are hex SHA-256 digests of the module
	// and of the archive of the source it was built from.
	ModuleSHA256 string `json:"module_sha256"`
	SourceSHA256 string `json:"source_sha256"`
	// Reads names, per collection, the fields the module is given.
	Reads map[string][]string `json:"reads"`
	// Output is where the ids a recommendation returns must exist.
	Output Output `json:"output"`
	// Limits are the resources the module asks for; the custodian's
	// configuration caps them.
	Limits Limits `json:"limits"`
}

// Output names the collection and field whose values a recommendation may
// return.
type Output struct {
	Collection string `json:"collection"`
	Field      string `json:"field"`
}

// Limits are a module's resource limits. Zero means the custodian's
// default.
type Limits struct {
	MemoryMiB int `json:"memory_mib,omitempty"`
	TimeoutMS int `json:"timeout_ms,omitempty"`
	OutputKiB int `json:"output_kib,omitempty"`
	ModelMiB  int `json:"model_mib,omitempty"`
}

var (
	nameRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,63}$`)
	versionRE = regexp.MustCompile(`^[0-9A-Za-z.+-]{1,64}$`)
	fieldRE   = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)
	digestRE  = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// maxReads bounds the collections and fields a manifest may name.
const maxReads = 64

// Check validates m.
func (m *Manifest) Check() error {
	switch {
	case !nameRE.MatchString(m.Name):
		return fmt.Errorf("manifest name %q: want lower-case letters, digits and hyphens, at most 64", m.Name)
	case !versionRE.MatchString(m.Version):
		return fmt.Errorf("manifest version %q: want letters, digits, '.', '+' and '-', at most 64", m.Version)
	case m.ABI != ABIVersion:
		return fmt.Errorf("manifest abi %d: custos runs ABI version %d", m.ABI, ABIVersion)
	case !digestRE.MatchString(m.ModuleSHA256):
		return fmt.Errorf("manifest module_sha256: want 64 lower-case hex digits")
	case !digestRE.MatchString(m.SourceSHA256):
		return fmt.Errorf("manifest source_sha256: want 64 lower-case hex digits")
	case len(m.Reads) == 0:
		return fmt.Errorf("manifest reads: name at least one collection")
	case len(m.Reads) > maxReads:
		return fmt.Errorf("manifest reads: more than %d collections", maxReads)
	case !fieldRE.MatchString(m.Output.Collection) || !fieldRE.MatchString(m.Output.Field):
		return fmt.Errorf("manifest output: want a collection and a field")
	case m.Limits.MemoryMiB < 0 || m.Limits.TimeoutMS < 0 || m.Limits.OutputKiB < 0 || m.Limits.ModelMiB < 0:
		return fmt.Errorf("manifest limits must not be negative")
	}
	for c, fields := range m.Reads {
		if !fieldRE.MatchString(c) {
			return fmt.Errorf("manifest reads: collection %q is not a name", c)
		}
		if len(fields) == 0 || len(fields) > maxReads {
			return fmt.Errorf("manifest reads %s: name 1 to %d fields", c, maxReads)
		}
		for i, f := range fields {
			if !fieldRE.MatchString(f) {
				return fmt.Errorf("manifest reads %s: field %q is not a name", c, f)
			}
			if i > 0 && fields[i-1] >= f {
				return fmt.Errorf("manifest reads %s: fields must be sorted and distinct", c)
			}
		}
	}
	return nil
}

// Marshal returns m's canonical text: indented JSON, fields in a fixed
// order and map keys sorted, with a final newline, as a signed note's text
// must end.
func (m *Manifest) Marshal() ([]byte, error) {
	if err := m.Check(); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// ParseManifest parses a manifest's text, which must be canonical: the
// bytes Marshal gives for the manifest it holds, so that one manifest has
// one text and one digest.
func ParseManifest(text []byte) (*Manifest, error) {
	if len(text) > MaxManifestSize {
		return nil, fmt.Errorf("manifest is larger than %d bytes", MaxManifestSize)
	}
	d := json.NewDecoder(bytes.NewReader(text))
	d.DisallowUnknownFields()
	var m Manifest
	if err := d.Decode(&m); err != nil {
		return nil, fmt.Errorf("malformed manifest: %w", err)
	}
	canon, err := m.Marshal()
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(canon, text) {
		return nil, fmt.Errorf("manifest is not in canonical form (write it with custos algo sign)")
	}
	return &m, nil
}

// Digest returns the hex SHA-256 of b, as manifests write digests.
func Digest(b []byte) string {
	d := sha256.Sum256(b)
	return hex.EncodeToString(d[:])
}
