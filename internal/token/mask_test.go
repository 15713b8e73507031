package token

import (
	"math"
	"strings"
	"testing"

	"github.com/custos/custos"
)

func TestMask(t *testing.T) {
	for _, tt := range []struct {
		typ  custos.FieldType
		v    any
		want string
	}{
		{custos.TypeEmail, "alice@example.com", "a***@example.com"},
		{custos.TypeEmail, "Élodie@exemple.fr", "É***@exemple.fr"},
		{custos.TypeEmail, "@example.com", "***"}, // "***@example.com" would contain it
		{custos.TypeEmail, "not-an-email", "n***"},
		{custos.TypeEmail, "a@b", "a***@b"},
		{custos.TypeEmail, "****@x.io", "***"},
		{custos.TypePhone, "+1 (555) 010-9999", "+* (***) ***-**99"},
		{custos.TypePhone, "5550109999", "********99"},
		{custos.TypePhone, "12", "***"},
		{custos.TypePhone, "+-", "***"},
		{custos.TypeDate, "1990-04-17", "1990-**-**"},
		{custos.TypeDate, "1990-13-17", "***"},
		{custos.TypeDate, "04/17/1990", "***"},
		{custos.TypeTimestamp, "2026-11-26T18:00:00Z", "2026-11-**"},
		{custos.TypeTimestamp, "2026-11-30T23:30:00-05:00", "2026-11-**"},
		{custos.TypeTimestamp, "2026-11-26", "***"},
		{custos.TypeIP, "203.0.113.7", "203.0.113.x"},
		{custos.TypeIP, "::ffff:203.0.113.7", "203.0.113.x"},
		{custos.TypeIP, "2001:db8:1:2:3:4:5:6", "2001:db8:1::/48"},
		{custos.TypeIP, "fe80::1%eth0", "fe80::/48"},
		{custos.TypeIP, "203.0.113", "***"},
		{custos.TypeString, "Prague", "P***"},
		{custos.TypeString, "Žilina", "Ž***"},
		{custos.TypeString, "a", "***"},
		{custos.TypeString, "a***", "***"},
		{custos.TypeID, "user-42", "***42"},
		{custos.TypeID, "ab", "***"},
		{custos.TypeID, "abc", "***bc"},
		{custos.TypeInt, int64(12345), "1****"},
		{custos.TypeInt, int64(-42), "-4*"},
		{custos.TypeInt, int64(7), "*"},
		{custos.TypeInt, int64(-7), "*"},
		{custos.TypeInt, int64(math.MinInt64), "-9" + strings.Repeat("*", 18)},
		{custos.TypeFloat, 1234.56, "1***"},
		{custos.TypeFloat, -99.9, "-9*"},
		{custos.TypeFloat, 0.5, "*"},
		{custos.TypeFloat, math.NaN(), "*"},
		{custos.TypeFloat, math.Inf(1), "*"},
		{custos.TypeBool, true, "*"},
		{custos.TypeBool, false, "*"},
		{custos.TypeBytes, []byte("secret"), "<6 bytes>"},
		{custos.TypeBytes, []byte(nil), "<0 bytes>"},
	} {
		got, err := Mask(tt.typ, tt.v)
		if err != nil {
			t.Errorf("Mask(%s, %v): %v", tt.typ, tt.v, err)
			continue
		}
		if got != tt.want {
			t.Errorf("Mask(%s, %v) = %q, want %q", tt.typ, tt.v, got, tt.want)
		}
	}
}

func TestMaskEmpty(t *testing.T) {
	for _, typ := range []custos.FieldType{custos.TypeID, custos.TypeString, custos.TypeEmail, custos.TypePhone, custos.TypeDate, custos.TypeTimestamp, custos.TypeIP} {
		if got, err := Mask(typ, ""); got != "" || err != nil {
			t.Errorf("Mask(%s, \"\") = %q, %v, want \"\"", typ, got, err)
		}
	}
}

func TestMaskErrors(t *testing.T) {
	for _, tt := range []struct {
		typ custos.FieldType
		v   any
	}{
		{custos.TypeEmail, []byte("alice@example.com")},
		{custos.TypeInt, 42},
		{custos.TypeInt, "42"},
		{custos.TypeFloat, float32(1)},
		{custos.TypeBool, "true"},
		{custos.TypeBytes, "secret"},
		{custos.TypeString, nil},
		{"colour", "secret"},
	} {
		got, err := Mask(tt.typ, tt.v)
		if err == nil {
			t.Errorf("Mask(%s, %T) = %q, want an error", tt.typ, tt.v, got)
			continue
		}
		if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "alice") {
			t.Errorf("error %q shows the value", err)
		}
	}
}

func FuzzMask(f *testing.F) {
	for i, tt := range values {
		if s, ok := tt.v.(string); ok {
			f.Add(uint8(i), s)
		}
	}
	f.Add(uint8(2), "***@x")
	f.Add(uint8(3), "**99")
	f.Add(uint8(6), "::ffff:1.2.3.4")
	f.Fuzz(func(t *testing.T, which uint8, s string) {
		typ := custos.FieldTypes[int(which)%len(custos.FieldTypes)]
		v := fuzzValue(typ, s, []byte(s))
		m, err := Mask(typ, v)
		if err != nil {
			t.Fatalf("Mask(%s): %v", typ, err)
		}
		if _, ok := v.(string); ok && len(s) >= 4 && strings.Contains(m, s) {
			t.Fatalf("Mask(%s, %q) = %q contains the value", typ, s, m)
		}
		if again, _ := Mask(typ, v); again != m {
			t.Fatalf("Mask(%s, %q) not deterministic: %q, %q", typ, s, m, again)
		}
	})
}
