package vault

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/custos/custos/internal/keys"
	"golang.org/x/mod/sumdb/note"
)

const signerName = "custos-US-custodian"

func receiptSigner(t *testing.T) (*keys.Local, note.Signer, note.Verifier) {
	t.Helper()
	kr := newKeyring(t)
	s, err := kr.Signer(signerName)
	if err != nil {
		t.Fatal(err)
	}
	v, err := kr.Verifier(signerName)
	if err != nil {
		t.Fatal(err)
	}
	return kr, s, v
}

var testReceipt = Receipt{
	Jurisdiction: "US",
	Subject:      "u-123",
	Records:      42,
	ErasedAt:     time.Date(2026, 3, 4, 5, 6, 7, 890, time.FixedZone("EST", -5*3600)),
	KEK:          "kek-20260304-0a1b2c3d",
}

func TestReceiptRoundTrip(t *testing.T) {
	_, s, v := receiptSigner(t)
	msg, err := SignReceipt(s, testReceipt)
	if err != nil {
		t.Fatal(err)
	}
	const text = "custos erasure receipt v1\njurisdiction US\nsubject u-123\nrecords 42\nerased 2026-03-04T10:06:07Z\nkek kek-20260304-0a1b2c3d\n\n— custos-US-custodian "
	if !strings.HasPrefix(string(msg), text) {
		t.Fatalf("receipt:\n%s\nwant it to begin:\n%s", msg, text)
	}
	got, err := VerifyReceipt(msg, v)
	if err != nil {
		t.Fatal(err)
	}
	want := testReceipt
	want.ErasedAt = time.Date(2026, 3, 4, 10, 6, 7, 0, time.UTC)
	if got != want {
		t.Fatalf("VerifyReceipt = %+v, want %+v", got, want)
	}
}

func TestReceiptTampered(t *testing.T) {
	_, s, v := receiptSigner(t)
	msg, _ := SignReceipt(s, testReceipt)
	for _, edit := range [][2]string{
		{"records 42", "records 41"},
		{"subject u-123", "subject u-124"},
		{"erased 2026", "erased 2025"},
		{"kek kek-20260304-0a1b2c3d", "kek kek-20260304-0a1b2c3e"},
	} {
		bad := bytes.Replace(msg, []byte(edit[0]), []byte(edit[1]), 1)
		if _, err := VerifyReceipt(bad, v); err == nil {
			t.Errorf("receipt with %q changed to %q verified", edit[0], edit[1])
		}
	}
	sig := bytes.LastIndex(msg, []byte(" ")) + 5
	bad := bytes.Clone(msg)
	bad[sig] ^= 1
	if _, err := VerifyReceipt(bad, v); err == nil {
		t.Error("receipt with a changed signature verified")
	}
}

func TestReceiptWrongKey(t *testing.T) {
	_, s, _ := receiptSigner(t)
	_, _, otherV := receiptSigner(t)
	msg, _ := SignReceipt(s, testReceipt)
	_, err := VerifyReceipt(msg, otherV)
	if err == nil {
		t.Fatal("receipt verified under another custodian's key")
	}
	if _, ok := errors.AsType[*note.UnverifiedNoteError](err); !ok {
		t.Errorf("err = %v, want a note without verifiable signatures", err)
	}
	kr, _, _ := receiptSigner(t)
	otherName, _ := kr.Verifier("custos-CA-custodian")
	if _, err := VerifyReceipt(msg, otherName); err == nil {
		t.Error("receipt verified under a verifier of another name")
	}
}

// TestReceiptStrictText signs, with the right key, texts that are not
// receipts as SignReceipt writes them.
func TestReceiptStrictText(t *testing.T) {
	_, s, v := receiptSigner(t)
	good := "custos erasure receipt v1\njurisdiction US\nsubject u\nrecords 1\nerased 2026-01-02T03:04:05Z\nkek kek-20260102-00000000\n"
	for _, text := range []string{
		strings.Replace(good, "v1", "v2", 1),
		strings.Replace(good, "records 1", "records 01", 1),
		strings.Replace(good, "records 1", "records -1", 1),
		strings.Replace(good, "records 1", "records x", 1),
		strings.Replace(good, "05Z", "05+01:00", 1),
		strings.Replace(good, "05Z", "05.5Z", 1),
		strings.Replace(good, "subject u", "subject  u", 1),
		strings.Replace(good, "subject u\nrecords 1", "records 1\nsubject u", 1),
		good + "extra line\n",
		strings.Replace(good, "kek kek-20260102-00000000\n", "", 1),
	} {
		msg, err := note.Sign(&note.Note{Text: text}, s)
		if err != nil {
			t.Fatal(err)
		}
		if r, err := VerifyReceipt(msg, v); err == nil {
			t.Errorf("text %q verified as %+v", text, r)
		}
	}
	msg, _ := note.Sign(&note.Note{Text: good}, s)
	if _, err := VerifyReceipt(msg, v); err != nil {
		t.Errorf("control: %v", err)
	}
}

func TestSignReceiptRefusesBadFields(t *testing.T) {
	_, s, _ := receiptSigner(t)
	for name, edit := range map[string]func(*Receipt){
		"empty subject":      func(r *Receipt) { r.Subject = "" },
		"subject space":      func(r *Receipt) { r.Subject = "a b" },
		"subject newline":    func(r *Receipt) { r.Subject = "a\nrecords 9" },
		"negative records":   func(r *Receipt) { r.Records = -1 },
		"no time":            func(r *Receipt) { r.ErasedAt = time.Time{} },
		"empty kek":          func(r *Receipt) { r.KEK = "" },
		"empty jurisdiction": func(r *Receipt) { r.Jurisdiction = "" },
	} {
		r := testReceipt
		edit(&r)
		if _, err := SignReceipt(s, r); err == nil {
			t.Errorf("%s: SignReceipt succeeded", name)
		}
	}
}
