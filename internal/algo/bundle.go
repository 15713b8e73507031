package algo

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/custos/custos/internal/notekey"
	"golang.org/x/mod/sumdb/note"
)

// MaxModuleSize bounds a module.
const MaxModuleSize = 64 << 20

// MaxBundleSize bounds a bundle file: the module in base64 and the
// manifest.
const MaxBundleSize = MaxModuleSize/3*4 + 4 + 2*MaxManifestSize

// A Bundle is a module and its manifest as a signed note.
type Bundle struct {
	// Note is the manifest's text followed by signatures, at least the
	// operator's (C2SP signed-note).
	Note []byte `json:"manifest"`
	// Module is the WebAssembly module.
	Module []byte `json:"module"`
}

// Sign sets m's module digest to the module's and returns the bundle with
// m signed by the operator.
func Sign(m Manifest, module []byte, operator note.Signer) (*Bundle, error) {
	if len(module) > MaxModuleSize {
		return nil, fmt.Errorf("module is larger than %d bytes", MaxModuleSize)
	}
	m.ModuleSHA256 = Digest(module)
	text, err := m.Marshal()
	if err != nil {
		return nil, err
	}
	msg, err := note.Sign(&note.Note{Text: string(text)}, operator)
	if err != nil {
		return nil, fmt.Errorf("couldn't sign the manifest: %w", err)
	}
	return &Bundle{Note: msg, Module: module}, nil
}

// ReadBundle reads a bundle file (JSON: manifest, module in base64),
// refusing one larger than MaxBundleSize. It does not verify it.
func ReadBundle(r io.Reader) (*Bundle, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxBundleSize+1))
	if err != nil {
		return nil, fmt.Errorf("couldn't read bundle: %w", err)
	}
	if len(b) > MaxBundleSize {
		return nil, fmt.Errorf("bundle is larger than %d bytes", MaxBundleSize)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	var bu Bundle
	if err := d.Decode(&bu); err != nil {
		return nil, fmt.Errorf("malformed bundle: %w", err)
	}
	if len(bu.Note) == 0 || len(bu.Module) == 0 {
		return nil, errors.New("malformed bundle: want a manifest and a module")
	}
	if len(bu.Note) > MaxManifestSize+16*notekey.MaxSigLine {
		return nil, errors.New("bundle manifest is too large")
	}
	return &bu, nil
}

// Text returns the manifest text of the bundle's note, unverified.
func (b *Bundle) Text() ([]byte, error) {
	text, _, ok := bytes.Cut(b.Note, []byte("\n\n"))
	if !ok {
		return nil, errors.New("bundle manifest is not a signed note")
	}
	return append(text, '\n'), nil
}

// Verify checks that the operator signed the manifest with one of the
// operators' keys and that the module is the one the manifest names, and
// returns the manifest.
func (b *Bundle) Verify(operators note.Verifiers) (*Manifest, error) {
	n, err := note.Open(b.Note, operators)
	var unknown *note.UnverifiedNoteError
	switch {
	case errors.As(err, &unknown):
		return nil, errors.New("bundle manifest is not signed by an operator key this custodian knows")
	case err != nil:
		return nil, fmt.Errorf("bundle manifest signature does not verify: %w", err)
	}
	m, err := ParseManifest([]byte(n.Text))
	if err != nil {
		return nil, err
	}
	if got := Digest(b.Module); got != m.ModuleSHA256 {
		return nil, fmt.Errorf("module digest %s is not the manifest's %s: the module is not the one signed", got, m.ModuleSHA256)
	}
	return m, nil
}

// Approve returns the reviewer's signature line over a manifest's text:
// their approval of exactly that manifest, and so of exactly that module.
func Approve(text []byte, reviewer note.Signer) (string, error) {
	if _, err := ParseManifest(text); err != nil {
		return "", err
	}
	line, err := notekey.SignLine(text, reviewer)
	if err != nil {
		return "", fmt.Errorf("couldn't sign the manifest: %w", err)
	}
	return line, nil
}

// Approvals returns the names of the distinct reviewers whose signature
// lines verify over text, sorted. A line that is not a signature, or a
// signature by a known reviewer that does not verify, is an error; lines
// by keys not among reviewers count for nothing.
func Approvals(text []byte, lines []string, reviewers note.Verifiers) ([]string, error) {
	names, err := notekey.Signers(text, lines, reviewers)
	if err != nil {
		return nil, fmt.Errorf("an approval does not verify: %w", err)
	}
	return names, nil
}
