package schema

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/custos/custos"
)

// Decode checks the fields of a write against c and returns their typed
// values: string, int64, float64, bool or []byte, as custos.FieldType says.
//
// It returns an *custos.Error: CodeUnknownField for a field c does not
// declare, CodeInvalidField for a value that does not fit its type or a
// missing subject or required field, CodeTooLarge for a value over its
// field's max. The detail names the collection and field, never the value.
func (c *Collection) Decode(fields map[string]json.RawMessage) (map[string]any, error) {
	out := make(map[string]any, len(fields))
	for _, name := range c.Order {
		raw, ok := fields[name]
		f := c.Fields[name]
		if !ok {
			if f.Required {
				return nil, custos.Errorf(custos.CodeInvalidField, "%s.%s: required", c.Name, name)
			}
			continue
		}
		v, err := DecodeValue(f.Type, f.Max, raw)
		if err != nil {
			return nil, custos.Errorf(custos.ErrorCode(err), "%s.%s: %s", c.Name, name, custos.ErrorDetail(err))
		}
		out[name] = v
	}
	if len(out) != len(fields) {
		return nil, c.unknown(fields)
	}
	return out, nil
}

// unknown returns the error for the first field, in byte order, that c does
// not declare.
func (c *Collection) unknown(fields map[string]json.RawMessage) error {
	first, found := "", false
	for name := range fields {
		if _, ok := c.Fields[name]; !ok && (!found || name < first) {
			first, found = name, true
		}
	}
	return custos.Errorf(custos.CodeUnknownField, "collection %s has no field %s", c.Name, quote(first))
}

// DecodeValue checks that raw, a JSON value, fits type t and returns it as
// the Go type custos.FieldType documents. max bounds string-like values in
// bytes and bytes values once decoded; max <= 0 means DefaultMax and max is
// never more than MaxValue.
//
// Values of type int must be JSON integer literals: 1.0, 1e3 and "1" are
// refused, so that no value is silently rounded or reinterpreted. Values of
// type ip are returned in canonical form; every other string-like value is
// returned as given. null is refused for every type.
//
// Errors are *custos.Error with code CodeInvalidField or CodeTooLarge and a
// detail that says what was wanted, never what was given.
func DecodeValue(t custos.FieldType, max int, raw json.RawMessage) (any, error) {
	if max <= 0 {
		max = DefaultMax
	}
	max = min(max, MaxValue)
	raw = bytes.Trim(raw, " \t\r\n")
	if string(raw) == "null" {
		return nil, invalid("null is not allowed")
	}
	switch t {
	case custos.TypeInt:
		return decodeInt(raw)
	case custos.TypeFloat:
		return decodeFloat(raw)
	case custos.TypeBool:
		return decodeBool(raw)
	case custos.TypeBytes:
		return decodeBytes(raw, max)
	}
	check, ok := stringChecks[t]
	if !ok {
		return nil, invalid("unknown field type")
	}
	s, err := decodeString(raw, max)
	if err != nil {
		return nil, err
	}
	return check(s)
}

// EncodeValue returns v, a value of type t, as JSON. It is the inverse of
// DecodeValue: DecodeValue(t, max, EncodeValue(t, v)) returns v for every v
// DecodeValue can return. A v of the wrong Go type or that DecodeValue would
// refuse (but for its length) is refused with CodeInvalidField.
func EncodeValue(t custos.FieldType, v any) (json.RawMessage, error) {
	switch t {
	case custos.TypeInt:
		if i, ok := v.(int64); ok {
			return strconv.AppendInt(nil, i, 10), nil
		}
		return nil, invalid("want an int64")
	case custos.TypeFloat:
		f, ok := v.(float64)
		if !ok || math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, invalid("want a finite float64")
		}
		return json.Marshal(f)
	case custos.TypeBool:
		if b, ok := v.(bool); ok {
			return json.Marshal(b)
		}
		return nil, invalid("want a bool")
	case custos.TypeBytes:
		if b, ok := v.([]byte); ok {
			return json.Marshal(base64.StdEncoding.EncodeToString(b))
		}
		return nil, invalid("want a []byte")
	}
	return encodeString(t, v)
}

func encodeString(t custos.FieldType, v any) (json.RawMessage, error) {
	check, ok := stringChecks[t]
	if !ok {
		return nil, invalid("unknown field type")
	}
	s, ok := v.(string)
	if !ok {
		return nil, invalid("want a string")
	}
	if !utf8.ValidString(s) {
		return nil, invalid("want valid UTF-8")
	}
	c, err := check(s)
	if err != nil {
		return nil, err
	}
	if c != s {
		return nil, invalid("want the canonical form")
	}
	return json.Marshal(s)
}

func invalid(detail string) *custos.Error {
	return custos.Errorf(custos.CodeInvalidField, "%s", detail)
}

func decodeInt(raw []byte) (any, error) {
	digits := raw
	if len(digits) > 0 && digits[0] == '-' {
		digits = digits[1:]
	}
	if len(digits) == 0 || !allBytes(digits, isDigit) || (digits[0] == '0' && len(digits) > 1) {
		return nil, invalid("want a JSON integer")
	}
	i, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		return nil, invalid("want an integer within int64")
	}
	return i, nil
}

func decodeFloat(raw []byte) (any, error) {
	if len(raw) == 0 || (raw[0] != '-' && !isDigit(raw[0])) {
		return nil, invalid("want a JSON number")
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, invalid("want a finite JSON number within float64")
	}
	return f, nil
}

func decodeBool(raw []byte) (any, error) {
	switch string(raw) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return nil, invalid("want true or false")
}

func decodeBytes(raw []byte, max int) (any, error) {
	s, err := decodeString(raw, base64.StdEncoding.EncodedLen(max))
	if custos.ErrorCode(err) == custos.CodeTooLarge {
		return nil, tooLarge(max)
	} else if err != nil {
		return nil, err
	}
	if strings.ContainsAny(s, "\r\n") {
		return nil, invalid("want standard base64")
	}
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, invalid("want standard base64")
	}
	if len(b) > max {
		return nil, tooLarge(max)
	}
	return b, nil
}

// decodeString decodes a JSON string of at most max bytes once decoded.
func decodeString(raw []byte, max int) (string, error) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", invalid("want a JSON string")
	}
	// An escape is at most 6 bytes for at least one byte decoded.
	if len(raw) > 6*max+2 {
		return "", tooLarge(max)
	}
	if !utf8.Valid(raw) {
		return "", invalid("want valid UTF-8")
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", invalid("want a JSON string")
	}
	if len(s) > max {
		return "", tooLarge(max)
	}
	return s, nil
}

func tooLarge(max int) *custos.Error {
	return custos.Errorf(custos.CodeTooLarge, "longer than %d bytes", max)
}

// stringChecks validate string-like values and return them in the form
// custos keeps.
var stringChecks = map[custos.FieldType]func(string) (string, error){
	custos.TypeID:        checkID,
	custos.TypeString:    func(s string) (string, error) { return s, nil },
	custos.TypeEmail:     checkEmail,
	custos.TypePhone:     checkPhone,
	custos.TypeDate:      checkDate,
	custos.TypeTimestamp: checkTimestamp,
	custos.TypeIP:        checkIP,
}

// ValidID reports whether s is a valid value of type id: 1 to 128 bytes of
// [A-Za-z0-9._:@-].
func ValidID(s string) bool {
	return len(s) >= 1 && len(s) <= 128 && allBytes([]byte(s), isIDByte)
}

func checkID(s string) (string, error) {
	if !ValidID(s) {
		return "", invalid("want an id: 1 to 128 bytes of A-Z a-z 0-9 . _ : @ -")
	}
	return s, nil
}

func checkEmail(s string) (string, error) {
	const bad = "want an email address: local@domain.tld, no spaces, at most 254 bytes"
	local, domain, ok := strings.Cut(s, "@")
	switch {
	case !ok || len(s) > 254 || local == "" || domain == "":
		return "", invalid(bad)
	case strings.Contains(domain, "@") || !strings.Contains(domain, "."):
		return "", invalid(bad)
	case domain[0] == '.' || domain[len(domain)-1] == '.' || strings.Contains(domain, ".."):
		return "", invalid(bad)
	case strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f || r == utf8.RuneError }):
		return "", invalid(bad)
	}
	return s, nil
}

func checkPhone(s string) (string, error) {
	const bad = "want a phone number: optional +, then 6 to 20 digits with spaces, dashes, dots or parentheses"
	if len(s) > 64 {
		return "", invalid(bad)
	}
	n := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case isDigit(c):
			n++
		case c == '+' && i == 0:
		case c == ' ' || c == '-' || c == '.' || c == '(' || c == ')':
		default:
			return "", invalid(bad)
		}
	}
	if n < 6 || n > 20 {
		return "", invalid(bad)
	}
	return s, nil
}

func checkDate(s string) (string, error) {
	if _, err := time.Parse(time.DateOnly, s); err != nil {
		return "", invalid("want a date: YYYY-MM-DD")
	}
	return s, nil
}

func checkTimestamp(s string) (string, error) {
	if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
		return "", invalid("want an RFC 3339 timestamp")
	}
	return s, nil
}

func checkIP(s string) (string, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return "", invalid("want an IPv4 or IPv6 address without zone")
	}
	return a.String(), nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isIDByte(c byte) bool {
	return isDigit(c) || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') ||
		c == '.' || c == '_' || c == ':' || c == '@' || c == '-'
}

func allBytes(b []byte, f func(byte) bool) bool {
	for _, c := range b {
		if !f(c) {
			return false
		}
	}
	return true
}
