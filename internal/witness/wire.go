package witness

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The wire formats of C2SP tlog-witness, tlog-checkpoint and signed-note, as
// pure functions: nothing here does I/O.

const (
	// MaxRequestSize caps an add-checkpoint request body.
	MaxRequestSize = 64 << 10
	// MaxProofLines is the spec's cap on consistency proof lines: "The client
	// MUST NOT send more than 63 consistency proof lines."
	MaxProofLines = 63
	// maxResponseSize caps a witness answer read by the Client.
	maxResponseSize = 64 << 10
	// hashSize is the size of an RFC 6962 (SHA-256) node hash.
	hashSize = 32
)

// sigPrefix starts every signed-note signature line: "—" (U+2014) and a space.
const sigPrefix = "\u2014 "

var errMalformed = errors.New("malformed request")

// request is a parsed add-checkpoint request body.
type request struct {
	oldSize    uint64
	proof      [][]byte
	checkpoint []byte // the signed note, not yet verified
}

// encodeRequest writes an add-checkpoint body. Per tlog-witness:
//
//	The request body MUST be a sequence of
//	  - an old size line,
//	  - zero or more consistency proof lines,
//	  - and an empty line,
//	  - followed by a checkpoint.
//
//	The old size line MUST consist of the string `old`, a single space (0x20),
//	and the tree size of the previous checkpoint encoded as an ASCII decimal
//	with no leading zeroes [...]
//
//	Each consistency proof line MUST encode a single hash in base64.
func encodeRequest(oldSize uint64, proof [][]byte, checkpoint []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "old %d\n", oldSize)
	for _, h := range proof {
		b.WriteString(base64.StdEncoding.EncodeToString(h))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.Write(checkpoint)
	return b.Bytes()
}

// parseRequest parses an add-checkpoint body. It accepts only the canonical
// encoding (encodeRequest of the result gives body back), at most
// MaxProofLines hashes of hashSize bytes, and an empty proof when the old
// size is zero ("The proof MUST be empty if the old size is zero").
func parseRequest(body []byte) (*request, error) {
	if len(body) > MaxRequestSize {
		return nil, fmt.Errorf("%w: body over %d bytes", errMalformed, MaxRequestSize)
	}
	line, rest, ok := bytes.Cut(body, []byte("\n"))
	if !ok {
		return nil, fmt.Errorf("%w: no old size line", errMalformed)
	}
	num, ok := strings.CutPrefix(string(line), "old ")
	if !ok {
		return nil, fmt.Errorf("%w: no old size line", errMalformed)
	}
	old, err := parseSize(num)
	if err != nil {
		return nil, fmt.Errorf("%w: old size: %v", errMalformed, err)
	}
	r := &request{oldSize: old}
	for {
		line, rest, ok = bytes.Cut(rest, []byte("\n"))
		if !ok {
			return nil, fmt.Errorf("%w: no empty line before the checkpoint", errMalformed)
		}
		if len(line) == 0 {
			break
		}
		if len(r.proof) == MaxProofLines {
			return nil, fmt.Errorf("%w: more than %d proof lines", errMalformed, MaxProofLines)
		}
		h, err := parseHash(string(line))
		if err != nil {
			return nil, fmt.Errorf("%w: proof line %d: %v", errMalformed, len(r.proof)+1, err)
		}
		r.proof = append(r.proof, h)
	}
	if old == 0 && len(r.proof) > 0 {
		return nil, fmt.Errorf("%w: proof from size 0 must be empty", errMalformed)
	}
	if len(rest) == 0 {
		return nil, fmt.Errorf("%w: no checkpoint", errMalformed)
	}
	r.checkpoint = rest
	return r, nil
}

// parseSize parses a tree size: "an ASCII decimal with no leading zeroes
// (unless the size is zero, in which case the encoding MUST be `0`)".
func parseSize(s string) (uint64, error) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || strconv.FormatUint(n, 10) != s {
		return 0, fmt.Errorf("not a canonical decimal size")
	}
	return n, nil
}

// parseHash decodes one canonical standard-base64 SHA-256 hash.
func parseHash(s string) ([]byte, error) {
	h, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(h) != hashSize || base64.StdEncoding.EncodeToString(h) != s {
		return nil, fmt.Errorf("not a base64 %d-byte hash", hashSize)
	}
	return h, nil
}

// checkpoint is the body of a tlog-checkpoint note.
type checkpoint struct {
	origin string
	size   uint64
	root   []byte
}

// noteOrigin returns the first line of a note, which for a checkpoint is its
// origin. It says nothing about whether the note is well formed or signed.
func noteOrigin(note []byte) (string, bool) {
	origin, _, ok := bytes.Cut(note, []byte("\n"))
	return string(origin), ok && len(origin) > 0
}

// parseCheckpoint parses the text of a checkpoint note (signatures already
// split off). Per tlog-checkpoint:
//
//	The note text is a sequence of at least three non-empty lines [...]
//	1. The first line is the origin [...] The origin MUST be non-empty [...]
//	2. The second line is the tree size [...] with no leading zeroes [...]
//	3. The third line is the root hash, the base64 encoding of the root of
//	   the RFC 6962 Merkle hash tree at the specified tree size.
//	4. Any following lines are extension lines [...] Extension lines, if
//	   any, MUST be non-empty.
func parseCheckpoint(text string) (*checkpoint, error) {
	body, ok := strings.CutSuffix(text, "\n")
	if !ok {
		return nil, errors.New("checkpoint text does not end in a newline")
	}
	lines := strings.Split(body, "\n")
	if len(lines) < 3 {
		return nil, errors.New("checkpoint has fewer than three lines")
	}
	for _, l := range lines {
		if l == "" {
			return nil, errors.New("checkpoint has an empty line")
		}
	}
	size, err := parseSize(lines[1])
	if err != nil {
		return nil, fmt.Errorf("checkpoint size: %v", err)
	}
	root, err := parseHash(lines[2])
	if err != nil {
		return nil, fmt.Errorf("checkpoint root hash: %v", err)
	}
	return &checkpoint{origin: lines[0], size: size, root: root}, nil
}

// parseSignatureLines checks a witness's 200 answer. Per tlog-witness:
//
//	The response body MUST be a sequence of one or more note signature
//	lines, each starting with the `—` character (U+2014) and ending with a
//	newline character (U+000A).
//
// Each line is checked against the signed-note syntax ("— <key name>
// base64(32-bit key ID || signature)"), so that appending it to a note keeps
// the note well formed; it is returned with its newline. Signatures are not
// verified here.
func parseSignatureLines(body []byte) ([][]byte, error) {
	if len(body) == 0 || body[len(body)-1] != '\n' {
		return nil, errors.New("cosignatures do not end in a newline")
	}
	var sigs [][]byte
	for len(body) > 0 {
		i := bytes.IndexByte(body, '\n')
		line := body[:i+1]
		body = body[i+1:]
		if err := checkSignatureLine(string(line[:i])); err != nil {
			return nil, err
		}
		sigs = append(sigs, line)
	}
	return sigs, nil
}

func checkSignatureLine(line string) error {
	rest, ok := strings.CutPrefix(line, sigPrefix)
	if !ok {
		return errors.New("cosignature line does not start with \"\u2014 \"")
	}
	name, b64, ok := strings.Cut(rest, " ")
	if !ok || !validKeyName(name) {
		return errors.New("cosignature line has no valid key name")
	}
	sig, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(sig) < 5 {
		return errors.New("cosignature line has no valid base64 signature")
	}
	return nil
}

// validKeyName mirrors the signed-note rule on key names: non-empty UTF-8,
// with no Unicode spaces and no plus.
func validKeyName(name string) bool {
	return name != "" && utf8.ValidString(name) &&
		strings.IndexFunc(name, unicode.IsSpace) < 0 && !strings.Contains(name, "+")
}

// AttachCosignatures returns checkpoint, a signed note, with the signature
// lines sigs appended after its own. A line missing its final newline gets
// one. It does not verify anything: open the result with note.Open and the
// witness verifiers the caller trusts. Empty lines are skipped.
func AttachCosignatures(checkpoint []byte, sigs ...[]byte) []byte {
	out := append([]byte(nil), checkpoint...)
	for _, s := range sigs {
		if len(s) == 0 {
			continue
		}
		out = append(out, s...)
		if s[len(s)-1] != '\n' {
			out = append(out, '\n')
		}
	}
	return out
}
