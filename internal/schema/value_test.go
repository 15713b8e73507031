package schema

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/custos/custos"
)

func TestDecodeValue(t *testing.T) {
	long := strings.Repeat("a", DefaultMax)
	tests := []struct {
		t    custos.FieldType
		max  int
		raw  string
		want any    // the decoded value, when code is ""
		code string // the error code, when the value is refused
	}{
		{custos.TypeID, 0, `"u-1"`, "u-1", ""},
		{custos.TypeID, 0, `"a.b_c:d@e-F9"`, "a.b_c:d@e-F9", ""},
		{custos.TypeID, 0, `"` + strings.Repeat("x", 128) + `"`, strings.Repeat("x", 128), ""},
		{custos.TypeID, 0, `"` + strings.Repeat("x", 129) + `"`, nil, custos.CodeInvalidField},
		{custos.TypeID, 0, `""`, nil, custos.CodeInvalidField},
		{custos.TypeID, 0, `"a b"`, nil, custos.CodeInvalidField},
		{custos.TypeID, 0, `"a/b"`, nil, custos.CodeInvalidField},
		{custos.TypeID, 0, `12`, nil, custos.CodeInvalidField},

		{custos.TypeString, 0, `"héllo\nworld"`, "héllo\nworld", ""},
		{custos.TypeString, 0, `""`, "", ""},
		{custos.TypeString, 0, ` "x" `, "x", ""},
		{custos.TypeString, 0, `"\u00e9"`, "é", ""},
		{custos.TypeString, 0, `"` + long + `"`, long, ""},
		{custos.TypeString, 0, `"` + long + `a"`, nil, custos.CodeTooLarge},
		{custos.TypeString, 3, `"abc"`, "abc", ""},
		{custos.TypeString, 3, `"abcd"`, nil, custos.CodeTooLarge},
		{custos.TypeString, 3, `"\u00e9\u00e9"`, nil, custos.CodeTooLarge}, // 4 bytes once decoded
		{custos.TypeString, 0, "\"\xff\"", nil, custos.CodeInvalidField},
		{custos.TypeString, 0, `"a" "b"`, nil, custos.CodeInvalidField},
		{custos.TypeString, 0, `"abc`, nil, custos.CodeInvalidField},
		{custos.TypeString, 0, `["a"]`, nil, custos.CodeInvalidField},
		{custos.TypeString, 0, `null`, nil, custos.CodeInvalidField},
		{custos.TypeString, 0, ``, nil, custos.CodeInvalidField},
		{custos.TypeString, 0, "\u00a0\"x\"", nil, custos.CodeInvalidField},

		{custos.TypeEmail, 0, `"ada@example.com"`, "ada@example.com", ""},
		{custos.TypeEmail, 0, `"a.b+tag@mail.example.co.uk"`, "a.b+tag@mail.example.co.uk", ""},
		{custos.TypeEmail, 0, `"ada@localhost"`, nil, custos.CodeInvalidField},
		{custos.TypeEmail, 0, `"ada@@example.com"`, nil, custos.CodeInvalidField},
		{custos.TypeEmail, 0, `"a@b@example.com"`, nil, custos.CodeInvalidField},
		{custos.TypeEmail, 0, `"@example.com"`, nil, custos.CodeInvalidField},
		{custos.TypeEmail, 0, `"ada@"`, nil, custos.CodeInvalidField},
		{custos.TypeEmail, 0, `"ada lovelace@example.com"`, nil, custos.CodeInvalidField},
		{custos.TypeEmail, 0, `"ada@.example.com"`, nil, custos.CodeInvalidField},
		{custos.TypeEmail, 0, `"ada@example.com."`, nil, custos.CodeInvalidField},
		{custos.TypeEmail, 0, `"` + strings.Repeat("a", 243) + `@example.com"`, nil, custos.CodeInvalidField},

		{custos.TypePhone, 0, `"+1 (555) 010-0199"`, "+1 (555) 010-0199", ""},
		{custos.TypePhone, 0, `"555.0100"`, "555.0100", ""},
		{custos.TypePhone, 0, `"12345"`, nil, custos.CodeInvalidField},
		{custos.TypePhone, 0, `"123456789012345678901"`, nil, custos.CodeInvalidField},
		{custos.TypePhone, 0, `"1+5550100"`, nil, custos.CodeInvalidField},
		{custos.TypePhone, 0, `"555-0100 ext 2"`, nil, custos.CodeInvalidField},

		{custos.TypeDate, 0, `"1990-02-28"`, "1990-02-28", ""},
		{custos.TypeDate, 0, `"1990-02-30"`, nil, custos.CodeInvalidField},
		{custos.TypeDate, 0, `"1990-2-28"`, nil, custos.CodeInvalidField},
		{custos.TypeDate, 0, `"28/02/1990"`, nil, custos.CodeInvalidField},

		{custos.TypeTimestamp, 0, `"2026-01-22T10:00:00Z"`, "2026-01-22T10:00:00Z", ""},
		{custos.TypeTimestamp, 0, `"2026-01-22T10:00:00.123456+05:30"`, "2026-01-22T10:00:00.123456+05:30", ""},
		{custos.TypeTimestamp, 0, `"2026-01-22 10:00:00Z"`, nil, custos.CodeInvalidField},
		{custos.TypeTimestamp, 0, `"2026-01-22"`, nil, custos.CodeInvalidField},
		{custos.TypeTimestamp, 0, `1769076000`, nil, custos.CodeInvalidField},

		{custos.TypeIP, 0, `"192.0.2.1"`, "192.0.2.1", ""},
		{custos.TypeIP, 0, `"2001:DB8:0:0::1"`, "2001:db8::1", ""},
		{custos.TypeIP, 0, `"fe80::1%eth0"`, nil, custos.CodeInvalidField},
		{custos.TypeIP, 0, `"192.0.2.256"`, nil, custos.CodeInvalidField},
		{custos.TypeIP, 0, `"192.0.2.01"`, nil, custos.CodeInvalidField},

		{custos.TypeInt, 0, `42`, int64(42), ""},
		{custos.TypeInt, 0, `-0`, int64(0), ""},
		{custos.TypeInt, 0, `9223372036854775807`, int64(math.MaxInt64), ""},
		{custos.TypeInt, 0, `-9223372036854775808`, int64(math.MinInt64), ""},
		{custos.TypeInt, 0, `9223372036854775808`, nil, custos.CodeInvalidField},
		{custos.TypeInt, 0, `1.5`, nil, custos.CodeInvalidField},
		{custos.TypeInt, 0, `1.0`, nil, custos.CodeInvalidField},
		{custos.TypeInt, 0, `1e3`, nil, custos.CodeInvalidField},
		{custos.TypeInt, 0, `"42"`, nil, custos.CodeInvalidField},
		{custos.TypeInt, 0, `+42`, nil, custos.CodeInvalidField},
		{custos.TypeInt, 0, `042`, nil, custos.CodeInvalidField},
		{custos.TypeInt, 0, `-`, nil, custos.CodeInvalidField},
		{custos.TypeInt, 0, `true`, nil, custos.CodeInvalidField},

		{custos.TypeFloat, 0, `1.5`, 1.5, ""},
		{custos.TypeFloat, 0, `-2`, -2.0, ""},
		{custos.TypeFloat, 0, `1e3`, 1000.0, ""},
		{custos.TypeFloat, 0, `1e400`, nil, custos.CodeInvalidField},
		{custos.TypeFloat, 0, `NaN`, nil, custos.CodeInvalidField},
		{custos.TypeFloat, 0, `"1.5"`, nil, custos.CodeInvalidField},
		{custos.TypeFloat, 0, `.5`, nil, custos.CodeInvalidField},

		{custos.TypeBool, 0, `true`, true, ""},
		{custos.TypeBool, 0, `false`, false, ""},
		{custos.TypeBool, 0, `"true"`, nil, custos.CodeInvalidField},
		{custos.TypeBool, 0, `1`, nil, custos.CodeInvalidField},

		{custos.TypeBytes, 0, `"aGVsbG8="`, []byte("hello"), ""},
		{custos.TypeBytes, 0, `""`, []byte{}, ""},
		{custos.TypeBytes, 5, `"aGVsbG8="`, []byte("hello"), ""},
		{custos.TypeBytes, 4, `"aGVsbG8="`, nil, custos.CodeTooLarge},
		{custos.TypeBytes, 0, `"aGVsbG8"`, nil, custos.CodeInvalidField},
		{custos.TypeBytes, 0, `"aGVs\nbG8="`, nil, custos.CodeInvalidField},
		{custos.TypeBytes, 0, `"aGVsbG8_"`, nil, custos.CodeInvalidField},
		{custos.TypeBytes, 0, `"aGVsbG9="`, nil, custos.CodeInvalidField}, // non-canonical padding bits

		{custos.FieldType("blob"), 0, `"x"`, nil, custos.CodeInvalidField},
	}
	for _, tt := range tests {
		t.Run(string(tt.t)+"/"+tt.raw[:min(len(tt.raw), 24)], func(t *testing.T) {
			got, err := DecodeValue(tt.t, tt.max, json.RawMessage(tt.raw))
			if tt.code != "" {
				if custos.ErrorCode(err) != tt.code {
					t.Fatalf("DecodeValue = %v, %v; want code %s", got, err, tt.code)
				}
				return
			}
			if err != nil {
				t.Fatalf("DecodeValue: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("DecodeValue = %#v, want %#v", got, tt.want)
			}
			raw, err := EncodeValue(tt.t, got)
			if err != nil {
				t.Fatalf("EncodeValue: %v", err)
			}
			back, err := DecodeValue(tt.t, tt.max, raw)
			if err != nil || !reflect.DeepEqual(back, got) {
				t.Fatalf("round trip: %#v, %v; want %#v", back, err, got)
			}
		})
	}
}

func TestEncodeValueRefuses(t *testing.T) {
	tests := []struct {
		t custos.FieldType
		v any
	}{
		{custos.TypeInt, 1},
		{custos.TypeInt, "1"},
		{custos.TypeFloat, math.NaN()},
		{custos.TypeFloat, math.Inf(1)},
		{custos.TypeFloat, float32(1)},
		{custos.TypeBool, "true"},
		{custos.TypeBytes, "aGk="},
		{custos.TypeString, []byte("x")},
		{custos.TypeString, "\xff"},
		{custos.TypeID, "a b"},
		{custos.TypeEmail, "nobody"},
		{custos.TypeIP, "2001:DB8::1"}, // not canonical
		{custos.FieldType("blob"), "x"},
	}
	for _, tt := range tests {
		if raw, err := EncodeValue(tt.t, tt.v); custos.ErrorCode(err) != custos.CodeInvalidField {
			t.Errorf("EncodeValue(%s, %#v) = %s, %v; want %s", tt.t, tt.v, raw, err, custos.CodeInvalidField)
		}
	}
}

func starterUsers(t testing.TB) *Collection {
	t.Helper()
	s, err := Parse("s.yaml", []byte(users(
		"id: {type: id, class: protected}",
		"email: {type: email, class: protected}",
		"phone: {type: phone, class: protected}",
		"age: {type: int, class: protected}",
		"bio: {type: string, class: public, max: 8}",
		"photo: {type: bytes, class: public, max: 4}",
		"terms: {type: bool, class: public, required: true}",
	)))
	if err != nil {
		t.Fatal(err)
	}
	return s.Collections["users"]
}

func fields(kv ...string) map[string]json.RawMessage {
	m := map[string]json.RawMessage{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = json.RawMessage(kv[i+1])
	}
	return m
}

func TestDecode(t *testing.T) {
	c := starterUsers(t)
	got, err := c.Decode(fields("id", `"u1"`, "email", `"a@example.com"`, "age", `30`, "terms", `true`, "photo", `"AQID"`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"id": "u1", "email": "a@example.com", "age": int64(30), "terms": true, "photo": []byte{1, 2, 3}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Decode = %#v, want %#v", got, want)
	}

	bad := []struct {
		name   string
		fields map[string]json.RawMessage
		code   string
		detail string
	}{
		{"missing subject", fields("terms", `true`), custos.CodeInvalidField, "users.id: required"},
		{"missing required", fields("id", `"u1"`), custos.CodeInvalidField, "users.terms: required"},
		{"unknown field", fields("id", `"u1"`, "terms", `true`, "zz", `1`, "nick", `"x"`), custos.CodeUnknownField, `collection users has no field "nick"`},
		{"bad email", fields("id", `"u1"`, "terms", `true`, "email", `"nobody"`), custos.CodeInvalidField, "users.email: want an email address"},
		{"bad int", fields("id", `"u1"`, "terms", `true`, "age", `"30"`), custos.CodeInvalidField, "users.age: want a JSON integer"},
		{"null", fields("id", `"u1"`, "terms", `null`), custos.CodeInvalidField, "users.terms: null is not allowed"},
		{"too long", fields("id", `"u1"`, "terms", `true`, "bio", `"123456789"`), custos.CodeTooLarge, "users.bio: longer than 8 bytes"},
		{"too many bytes", fields("id", `"u1"`, "terms", `true`, "photo", `"AQIDBAU="`), custos.CodeTooLarge, "users.photo: longer than 4 bytes"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.Decode(tt.fields)
			if custos.ErrorCode(err) != tt.code || !strings.HasPrefix(custos.ErrorDetail(err), tt.detail) {
				t.Errorf("Decode: %v, want %s: %s", err, tt.code, tt.detail)
			}
		})
	}
}

// TestErrorsHoldNoValues writes a canary into every field in ways that fail
// and checks that no error shows it.
func TestErrorsHoldNoValues(t *testing.T) {
	const canary = "Canary7Q3x"
	c := starterUsers(t)
	values := []string{
		`"` + canary + ` @x"`, `"` + canary + `"`, `"` + canary + `\u0000"`, canary, `"` + canary,
		`["` + canary + `"]`, `{"` + canary + `": 1}`, `"` + strings.Repeat(canary, 10) + `"`,
		`1` + canary, `"+1` + canary + `"`, `"` + canary + `@example"`, `"` + canary + `=="`,
	}
	for _, name := range c.Order {
		for _, v := range values {
			f := fields("id", `"u1"`, "terms", `true`)
			f[name] = json.RawMessage(v)
			if _, err := c.Decode(f); err != nil && strings.Contains(err.Error(), canary) {
				t.Errorf("Decode of %s = %s: error shows the value: %v", name, v, err)
			}
			for _, ft := range custos.FieldTypes {
				if _, err := DecodeValue(ft, 4, json.RawMessage(v)); err != nil && strings.Contains(err.Error(), canary) {
					t.Errorf("DecodeValue(%s, %s): error shows the value: %v", ft, v, err)
				}
				if _, err := EncodeValue(ft, strings.Trim(v, `"`)); err != nil && strings.Contains(err.Error(), canary) {
					t.Errorf("EncodeValue(%s, %s): error shows the value: %v", ft, v, err)
				}
			}
		}
	}
}

func FuzzDecodeValue(f *testing.F) {
	seeds := []string{`"u-1"`, `"ada@example.com"`, `"+1 555 0100"`, `"1990-02-28"`, `"2026-01-22T10:00:00Z"`,
		`"2001:db8::1"`, `"::ffff:192.0.2.1"`, `42`, `-1.5e-7`, `true`, `"aGVsbG8="`, `"\u00e9\ud800"`, `null`, `""`}
	for _, s := range seeds {
		for i := range custos.FieldTypes {
			f.Add(uint8(i), s)
		}
	}
	f.Fuzz(func(t *testing.T, ti uint8, raw string) {
		ft := custos.FieldTypes[int(ti)%len(custos.FieldTypes)]
		v, err := DecodeValue(ft, 64, json.RawMessage(raw))
		if err != nil {
			if len(raw) >= 8 && strings.Contains(err.Error(), raw) {
				t.Fatalf("error shows the input: %v", err)
			}
			if c := custos.ErrorCode(err); c != custos.CodeInvalidField && c != custos.CodeTooLarge {
				t.Fatalf("error code %s", c)
			}
			return
		}
		enc, err := EncodeValue(ft, v)
		if err != nil {
			t.Fatalf("EncodeValue(%s, %#v): %v", ft, v, err)
		}
		back, err := DecodeValue(ft, 64, enc)
		if err != nil {
			t.Fatalf("DecodeValue(%s, %s): %v", ft, enc, err)
		}
		if !equal(back, v) {
			t.Fatalf("round trip %#v -> %s -> %#v", v, enc, back)
		}
	})
}

func equal(a, b any) bool {
	if x, ok := a.([]byte); ok {
		y, ok := b.([]byte)
		return ok && bytes.Equal(x, y)
	}
	if x, ok := a.(float64); ok {
		y, ok := b.(float64)
		return ok && math.Float64bits(x) == math.Float64bits(y)
	}
	return a == b
}
