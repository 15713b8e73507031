package vault

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"

	"golang.org/x/mod/sumdb/note"
)

// Receipt is a signed statement that a subject was erased.
type Receipt struct {
	Jurisdiction string
	Subject      string
	Records      int       // records deleted with the subject
	ErasedAt     time.Time // kept to the second, in UTC
	KEK          string    // the KEK whose destruction makes the erasure final on old copies
}

// receiptHeader is the first line of a receipt. A new format gets a new
// header.
const receiptHeader = "custos erasure receipt v1"

// maxReceiptSize bounds what VerifyReceipt reads.
const maxReceiptSize = 16 << 10

// SignReceipt returns r as a C2SP signed note (https://c2sp.org/signed-note)
// signed by s. The note's text is exactly six lines:
//
//	custos erasure receipt v1
//	jurisdiction US
//	subject <subject id>
//	records <decimal count>
//	erased <RFC 3339 time, UTC, to the second>
//	kek <KEK id>
//
// followed by a blank line and the signature lines. Values hold no spaces or
// control characters.
func SignReceipt(s note.Signer, r Receipt) ([]byte, error) {
	text, err := r.text()
	if err != nil {
		return nil, fmt.Errorf("couldn't sign receipt: %w", err)
	}
	msg, err := note.Sign(&note.Note{Text: text}, s)
	if err != nil {
		return nil, fmt.Errorf("couldn't sign receipt: %w", err)
	}
	return msg, nil
}

// VerifyReceipt checks that msg is a receipt signed by v and returns it.
func VerifyReceipt(msg []byte, v note.Verifier) (Receipt, error) {
	if len(msg) > maxReceiptSize {
		return Receipt{}, errors.New("couldn't verify receipt: too large")
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		return Receipt{}, fmt.Errorf("couldn't verify receipt: %w", err)
	}
	r, err := parseReceipt(n.Text)
	if err != nil {
		return Receipt{}, fmt.Errorf("couldn't verify receipt: %w", err)
	}
	return r, nil
}

var receiptKeys = []string{"jurisdiction", "subject", "records", "erased", "kek"}

func (r Receipt) text() (string, error) {
	if r.Records < 0 {
		return "", errors.New("negative record count")
	}
	if r.ErasedAt.IsZero() {
		return "", errors.New("no erasure time")
	}
	values := []string{r.Jurisdiction, r.Subject, strconv.Itoa(r.Records), r.ErasedAt.UTC().Format(time.RFC3339), r.KEK}
	var b strings.Builder
	b.WriteString(receiptHeader + "\n")
	for i, k := range receiptKeys {
		if !validValue(values[i]) {
			return "", fmt.Errorf("%s is empty or holds spaces or control characters", k)
		}
		b.WriteString(k + " " + values[i] + "\n")
	}
	return b.String(), nil
}

// parseReceipt parses the text of a receipt, accepting only what text
// writes.
func parseReceipt(text string) (Receipt, error) {
	lines := strings.Split(text, "\n")
	if len(lines) != len(receiptKeys)+2 || lines[0] != receiptHeader || lines[len(lines)-1] != "" {
		return Receipt{}, errors.New("not a custos erasure receipt v1")
	}
	values := make([]string, len(receiptKeys))
	for i, k := range receiptKeys {
		v, ok := strings.CutPrefix(lines[i+1], k+" ")
		if !ok || !validValue(v) {
			return Receipt{}, fmt.Errorf("malformed %s line", k)
		}
		values[i] = v
	}
	records, err := strconv.Atoi(values[2])
	if err != nil || records < 0 || strconv.Itoa(records) != values[2] {
		return Receipt{}, errors.New("malformed records line")
	}
	erased, err := time.Parse(time.RFC3339, values[3])
	if err != nil || erased.UTC().Format(time.RFC3339) != values[3] {
		return Receipt{}, errors.New("malformed erased line")
	}
	return Receipt{Jurisdiction: values[0], Subject: values[1], Records: records, ErasedAt: erased.UTC(), KEK: values[4]}, nil
}

func validValue(s string) bool {
	return s != "" && len(s) <= 1024 && strings.IndexFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r) || r == unicode.ReplacementChar
	}) < 0
}
