package token

import (
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"

	"github.com/custos/custos"
	"github.com/custos/custos/internal/token/ff1"
)

func testRoot() []byte {
	root := make([]byte, RootKeySize)
	for i := range root {
		root[i] = byte(i)
	}
	return root
}

func newTokenizer(tb testing.TB) *Tokenizer {
	tb.Helper()
	tk, err := New(testRoot())
	if err != nil {
		tb.Fatal(err)
	}
	return tk
}

func mustToken(tb testing.TB, tk *Tokenizer, audience string, typ custos.FieldType, v any) string {
	tb.Helper()
	tok, err := tk.Token(audience, typ, v)
	if err != nil {
		tb.Fatalf("Token(%q, %s): %v", audience, typ, err)
	}
	return tok
}

// values has one value of every field type.
var values = []struct {
	typ custos.FieldType
	v   any
}{
	{custos.TypeID, "user-42"},
	{custos.TypeString, "Prague"},
	{custos.TypeEmail, "alice@example.com"},
	{custos.TypePhone, "+1 (555) 010-9999"},
	{custos.TypeDate, "1990-04-17"},
	{custos.TypeTimestamp, "2026-11-26T18:00:00Z"},
	{custos.TypeIP, "203.0.113.7"},
	{custos.TypeInt, int64(42)},
	{custos.TypeFloat, 3.25},
	{custos.TypeBool, true},
	{custos.TypeBytes, []byte{0, 1, 2}},
}

func TestNew(t *testing.T) {
	for _, n := range []int{0, 16, 31, 33, 64} {
		if _, err := New(make([]byte, n)); err == nil {
			t.Errorf("New(%d bytes) succeeded", n)
		}
	}
	root := testRoot()
	tk, err := New(root)
	if err != nil {
		t.Fatal(err)
	}
	before := mustToken(t, tk, "operator", custos.TypeString, "x")
	root[0] ^= 0xff
	if after := mustToken(t, tk, "operator", custos.TypeString, "x"); after != before {
		t.Error("changing the caller's root changed the tokens: New did not copy it")
	}
}

func TestDeterministic(t *testing.T) {
	a, b := newTokenizer(t), newTokenizer(t)
	for _, tt := range values {
		first := mustToken(t, a, "operator", tt.typ, tt.v)
		if again := mustToken(t, a, "operator", tt.typ, tt.v); again != first {
			t.Errorf("%s: token changed between calls: %s, %s", tt.typ, first, again)
		}
		if other := mustToken(t, b, "operator", tt.typ, tt.v); other != first {
			t.Errorf("%s: another Tokenizer with the same root gives %s, want %s", tt.typ, other, first)
		}
	}
	if a.Pseudonym("audit", "subject-1") != b.Pseudonym("audit", "subject-1") {
		t.Error("pseudonyms differ between Tokenizers with the same root")
	}
}

func TestAudiencesDiffer(t *testing.T) {
	tk := newTokenizer(t)
	for _, tt := range values {
		op := mustToken(t, tk, "operator", tt.typ, tt.v)
		mon := mustToken(t, tk, "monitor", tt.typ, tt.v)
		if op == mon {
			t.Errorf("%s: operator and monitor get the same token %s", tt.typ, op)
		}
	}
	if tk.Pseudonym("audit", "s") == tk.Pseudonym("operator", "s") {
		t.Error("pseudonyms of two audiences are equal")
	}
	other, err := New(bytes.Repeat([]byte{7}, RootKeySize))
	if err != nil {
		t.Fatal(err)
	}
	if mustToken(t, tk, "operator", custos.TypeString, "x") == mustToken(t, other, "operator", custos.TypeString, "x") {
		t.Error("two root keys give the same token")
	}
}

func TestTypesDiffer(t *testing.T) {
	tk := newTokenizer(t)
	seen := map[string]custos.FieldType{}
	// "2001:db8::1" is a valid value of every string type but phone, which
	// would take FF1 had it six digits.
	for _, typ := range []custos.FieldType{custos.TypeID, custos.TypeString, custos.TypeEmail, custos.TypePhone, custos.TypeDate, custos.TypeTimestamp, custos.TypeIP} {
		tok := mustToken(t, tk, "operator", typ, "2001:db8::1")
		if prev, ok := seen[tok]; ok {
			t.Errorf("%s and %s give the same token", prev, typ)
		}
		seen[tok] = typ
	}
	if mustToken(t, tk, "operator", custos.TypeInt, int64(1)) == mustToken(t, tk, "operator", custos.TypeString, "1") {
		t.Error("int 1 and string \"1\" give the same token")
	}
	if mustToken(t, tk, "operator", custos.TypeBytes, []byte("true")) == mustToken(t, tk, "operator", custos.TypeBool, true) {
		t.Error("bytes \"true\" and bool true give the same token")
	}
	if mustToken(t, tk, "operator", custos.TypeID, "s") == tk.Pseudonym("operator", "s") {
		t.Error("Token and Pseudonym of the same id are equal")
	}
}

func TestValuesDiffer(t *testing.T) {
	tk := newTokenizer(t)
	for _, tt := range []struct {
		typ  custos.FieldType
		a, b any
	}{
		{custos.TypeString, "a", "b"},
		{custos.TypeString, "", " "},
		{custos.TypeInt, int64(1), int64(-1)},
		{custos.TypeFloat, 0.0, math.Copysign(0, -1)},
		{custos.TypeBool, true, false},
		{custos.TypeBytes, []byte{}, []byte{0}},
		{custos.TypePhone, "555-0100", "555-0101"},
		{custos.TypePhone, "555 010 999", "555 010 998"},
	} {
		if mustToken(t, tk, "operator", tt.typ, tt.a) == mustToken(t, tk, "operator", tt.typ, tt.b) {
			t.Errorf("%s: %v and %v give the same token", tt.typ, tt.a, tt.b)
		}
	}
}

func TestCanonical(t *testing.T) {
	tk := newTokenizer(t)
	for _, tt := range []struct {
		typ  custos.FieldType
		a, b string
	}{
		{custos.TypeEmail, "Alice@Example.COM", "alice@example.com"},
		{custos.TypeEmail, "ÉLODIE@Exemple.FR", "élodie@exemple.fr"},
		{custos.TypeIP, "2001:DB8:0:0::1", "2001:db8::1"},
		{custos.TypeIP, "::ffff:192.0.2.1", "192.0.2.1"},
	} {
		if mustToken(t, tk, "operator", tt.typ, tt.a) != mustToken(t, tk, "operator", tt.typ, tt.b) {
			t.Errorf("%s: %q and %q give different tokens", tt.typ, tt.a, tt.b)
		}
	}
	// Other strings are taken as given.
	if mustToken(t, tk, "operator", custos.TypeString, "Alice") == mustToken(t, tk, "operator", custos.TypeString, "alice") {
		t.Error("strings are case-folded")
	}
}

// referenceToken computes an HMAC token from the derivation the package
// documents, with nothing of the package but its constants' meaning.
func referenceToken(tb testing.TB, root []byte, audience string, typ custos.FieldType, canonical []byte) string {
	tb.Helper()
	key, err := hkdf.Key(sha256.New, root, nil, "custos token audience v1\x00hmac\x00"+audience, 32)
	if err != nil {
		tb.Fatal(err)
	}
	h := hmac.New(sha256.New, key)
	h.Write([]byte("custos-token-v1"))
	h.Write([]byte{0})
	h.Write([]byte(typ))
	h.Write([]byte{0})
	h.Write(canonical)
	return "tk_" + base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:16])
}

func TestKnownAnswer(t *testing.T) {
	tk := newTokenizer(t)
	for _, tt := range []struct {
		typ       custos.FieldType
		v         any
		canonical string
	}{
		{custos.TypeEmail, "Alice@Example.com", "alice@example.com"},
		{custos.TypeEmail, "ÉLODIE@Exemple.FR", "élodie@exemple.fr"},
		{custos.TypeString, "Prague", "Prague"},
		{custos.TypeID, "user-42", "user-42"},
		{custos.TypePhone, "010-99", "010-99"}, // too few digits for FF1
		{custos.TypeIP, "::FFFF:203.0.113.7", "203.0.113.7"},
		{custos.TypeInt, int64(-42), "-42"},
		{custos.TypeFloat, 1e21, "1e+21"},
		{custos.TypeFloat, 0.1, "0.1"},
		{custos.TypeBool, false, "false"},
		{custos.TypeBytes, []byte{0xff, 0}, "\xff\x00"},
	} {
		want := referenceToken(t, testRoot(), "operator", tt.typ, []byte(tt.canonical))
		if got := mustToken(t, tk, "operator", tt.typ, tt.v); got != want {
			t.Errorf("%s %v: got %s, want %s", tt.typ, tt.v, got, want)
		}
	}
	// Pin one token literally, so that a change to the derivation made in
	// both the package and the reference above is still caught.
	const pinned = "tk_t_GW0EIUAf7CzCLeVRL5MA"
	if got := mustToken(t, tk, "operator", custos.TypeEmail, "alice@example.com"); got != pinned {
		t.Errorf("pinned token: got %s, want %s", got, pinned)
	}
}

func TestPseudonymKnownAnswer(t *testing.T) {
	key, err := hkdf.Key(sha256.New, testRoot(), nil, "custos token audience v1\x00hmac\x00audit", 32)
	if err != nil {
		t.Fatal(err)
	}
	h := hmac.New(sha256.New, key)
	h.Write([]byte("custos-pseudonym-v1\x00subject-1"))
	want := "ps_" + base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:16])
	if got := newTokenizer(t).Pseudonym("audit", "subject-1"); got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestPhone(t *testing.T) {
	tk := newTokenizer(t)
	for _, phone := range []string{
		"+1 (555) 010-9999",
		"5550109999",
		"000000",
		"+44 20 7946 0958",
		"555.010.9999 ext. 12",
	} {
		tok := mustToken(t, tk, "operator", custos.TypePhone, phone)
		if tok == phone {
			t.Errorf("%q: token equals the value", phone)
		}
		if !samePhoneShape(phone, tok) {
			t.Errorf("%q: token %q does not keep its shape", phone, tok)
		}
	}
	for _, short := range []string{"", "+1", "555-01", "(12) 345"} {
		tok := mustToken(t, tk, "operator", custos.TypePhone, short)
		if !isHMACToken(tok) {
			t.Errorf("%q has fewer than 6 digits but got %q", short, tok)
		}
	}
}

func TestPhoneKnownAnswer(t *testing.T) {
	key, err := hkdf.Key(sha256.New, testRoot(), nil, "custos token audience v1\x00ff1\x00operator", 32)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ff1.New(key, 10)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := c.Encrypt([]byte("phone"), []uint16{1, 5, 5, 5, 0, 1, 0, 9, 9, 9, 9})
	if err != nil {
		t.Fatal(err)
	}
	var d []byte
	for _, n := range enc {
		d = append(d, '0'+byte(n))
	}
	want := fmt.Sprintf("+%s (%s) %s-%s", d[0:1], d[1:4], d[4:7], d[7:11])
	if got := mustToken(t, newTokenizer(t), "operator", custos.TypePhone, "+1 (555) 010-9999"); got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

// samePhoneShape reports whether tok has the digits of phone at the same
// places and its other bytes unchanged.
func samePhoneShape(phone, tok string) bool {
	if len(phone) != len(tok) {
		return false
	}
	for i := 0; i < len(phone); i++ {
		if isDigit(phone[i]) != isDigit(tok[i]) || !isDigit(phone[i]) && phone[i] != tok[i] {
			return false
		}
	}
	return true
}

func isHMACToken(tok string) bool {
	rest, ok := strings.CutPrefix(tok, "tk_")
	if !ok || len(rest) != 22 {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(rest)
	return err == nil && len(b) == 16
}

func TestErrors(t *testing.T) {
	tk := newTokenizer(t)
	for _, tt := range []struct {
		name     string
		audience string
		typ      custos.FieldType
		v        any
		code     string
	}{
		{"empty audience", "", custos.TypeString, "x", custos.CodeInternal},
		{"long audience", strings.Repeat("a", MaxAudienceLen+1), custos.TypeString, "x", custos.CodeInternal},
		{"unknown type", "operator", "colour", "x", custos.CodeInternal},
		{"int as string", "operator", custos.TypeInt, "42", custos.CodeInternal},
		{"int as int", "operator", custos.TypeInt, 42, custos.CodeInternal},
		{"string as bytes", "operator", custos.TypeString, []byte("x"), custos.CodeInternal},
		{"phone as int", "operator", custos.TypePhone, int64(5550109999), custos.CodeInternal},
		{"nil", "operator", custos.TypeBool, nil, custos.CodeInternal},
		{"bad ip", "operator", custos.TypeIP, "999.1.1.1-secret", custos.CodeInvalidField},
		{"NaN", "operator", custos.TypeFloat, math.NaN(), custos.CodeInvalidField},
		{"Inf", "operator", custos.TypeFloat, math.Inf(-1), custos.CodeInvalidField},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := tk.Token(tt.audience, tt.typ, tt.v)
			if err == nil {
				t.Fatalf("got %q, want an error", tok)
			}
			if code := custos.ErrorCode(err); code != tt.code {
				t.Errorf("code %s, want %s", code, tt.code)
			}
			if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "5550109999") {
				t.Errorf("error %q shows the value", err)
			}
		})
	}
	if err := ValidAudience(strings.Repeat("a", MaxAudienceLen)); err != nil {
		t.Errorf("audience of %d bytes: %v", MaxAudienceLen, err)
	}
}

func TestPseudonymPanicsOnBadAudience(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("no panic")
		}
	}()
	newTokenizer(t).Pseudonym("", "x")
}

func TestKeysNotShown(t *testing.T) {
	root := bytes.Repeat([]byte{0xAB}, RootKeySize)
	tk, err := New(root)
	if err != nil {
		t.Fatal(err)
	}
	mustToken(t, tk, "operator", custos.TypeString, "x")
	s := fmt.Sprintf("%v %+v %#v %s %x", tk, tk, tk, tk, tk)
	if strings.Contains(s, "171") || strings.Contains(strings.ToLower(s), "abab") {
		t.Errorf("root key visible in %q", s)
	}
}

func TestConcurrent(t *testing.T) {
	tk := newTokenizer(t)
	audiences := []string{"operator", "monitor", "audit", "partner-1"}
	want := map[string]string{}
	serial := newTokenizer(t)
	for _, a := range audiences {
		for _, tt := range values {
			want[a+string(tt.typ)] = mustToken(t, serial, a, tt.typ, tt.v)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				a := audiences[(g+i)%len(audiences)]
				tt := values[i%len(values)]
				tok, err := tk.Token(a, tt.typ, tt.v)
				if err == nil && tok != want[a+string(tt.typ)] {
					err = fmt.Errorf("%s %s: got %s, want %s", a, tt.typ, tok, want[a+string(tt.typ)])
				}
				if err == nil {
					_ = tk.Pseudonym(a, "s")
					_, err = Mask(tt.typ, tt.v)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestAudienceCacheBounded(t *testing.T) {
	tk := newTokenizer(t)
	first := mustToken(t, tk, "a-0", custos.TypeString, "x")
	for i := range maxCached + 10 {
		mustToken(t, tk, fmt.Sprintf("a-%d", i), custos.TypeString, "x")
	}
	n := 0
	tk.keys.Range(func(any, any) bool { n++; return true })
	if n > maxCached || tk.cached.Load() > maxCached {
		t.Errorf("%d audiences cached (counter %d), want at most %d", n, tk.cached.Load(), maxCached)
	}
	// Audiences past the cache still get their own, stable tokens.
	late := fmt.Sprintf("a-%d", maxCached+5)
	a, b := mustToken(t, tk, late, custos.TypeString, "x"), mustToken(t, tk, late, custos.TypeString, "x")
	if a != b || a == first {
		t.Errorf("uncached audience: %s, %s (first audience %s)", a, b, first)
	}
}

func FuzzToken(f *testing.F) {
	for i, tt := range values {
		var s string
		var raw []byte
		switch v := tt.v.(type) {
		case string:
			s = v
		case []byte:
			raw = v
		}
		f.Add(uint8(i), s, raw)
	}
	f.Add(uint8(3), "(((((1)2)3)4)5)6", []byte(nil))
	f.Add(uint8(3), strings.Repeat("9", ff1.MaxLen+1), []byte(nil))
	f.Add(uint8(7), "", []byte{1, 2, 3, 4, 5, 6, 7, 8})
	tk := newTokenizer(f)
	f.Fuzz(func(t *testing.T, which uint8, s string, raw []byte) {
		typ := custos.FieldTypes[int(which)%len(custos.FieldTypes)]
		v := fuzzValue(typ, s, raw)
		tok, err := tk.Token("operator", typ, v)
		if err != nil {
			if custos.ErrorCode(err) != custos.CodeInvalidField {
				t.Fatalf("%s: unexpected error %v", typ, err)
			}
			return
		}
		again, err := tk.Token("operator", typ, v)
		if err != nil || again != tok {
			t.Fatalf("%s: not deterministic: %q then %q, %v", typ, tok, again, err)
		}
		if typ == custos.TypePhone {
			if n := countDigits(s); n >= 6 && n <= ff1.MaxLen {
				if !samePhoneShape(s, tok) {
					t.Fatalf("phone %q: token %q does not keep its shape", s, tok)
				}
				return
			}
		}
		if !isHMACToken(tok) {
			t.Fatalf("%s: token %q is not tk_ and 22 base64url characters", typ, tok)
		}
	})
}

// fuzzValue makes a value of typ's Go type from fuzzer input.
func fuzzValue(typ custos.FieldType, s string, raw []byte) any {
	var n uint64
	if len(raw) >= 8 {
		n = binary.BigEndian.Uint64(raw)
	}
	switch typ {
	case custos.TypeInt:
		return int64(n)
	case custos.TypeFloat:
		return math.Float64frombits(n)
	case custos.TypeBool:
		return len(raw)%2 == 1
	case custos.TypeBytes:
		return raw
	}
	return s
}

func countDigits(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		if isDigit(s[i]) {
			n++
		}
	}
	return n
}

func BenchmarkToken(b *testing.B) {
	tk := newTokenizer(b)
	mustToken(b, tk, "operator", custos.TypeEmail, "alice@example.com")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tk.Token("operator", custos.TypeEmail, "Alice@Example.com"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTokenPhone(b *testing.B) {
	tk := newTokenizer(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tk.Token("operator", custos.TypePhone, "+1 (555) 010-9999"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPseudonym(b *testing.B) {
	tk := newTokenizer(b)
	b.ReportAllocs()
	for b.Loop() {
		tk.Pseudonym("audit", "subject-0123456789")
	}
}

func BenchmarkMask(b *testing.B) {
	for _, tt := range values {
		b.Run(string(tt.typ), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Mask(tt.typ, tt.v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
