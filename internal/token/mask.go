package token

import (
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/custos/custos"
)

// hidden is the mask of a value whose shape cannot be kept.
const hidden = "***"

// Mask returns a lossy rendering of v, a value of type typ with the Go type
// Token documents:
//
//	email      first character of the local part, the domain kept: "a***@example.com"
//	phone      every digit but the last two as '*', the rest kept: "+* (***) ***-**99"
//	date       the year: "1990-**-**"
//	timestamp  the year and month, in the value's own offset: "2026-11-**"
//	ip         IPv4 without its last octet, "203.0.113.x"; IPv6 as its /48, "2001:db8:1::/48"
//	string     the first character: "P***"
//	id         the last two characters: "***42"
//	int        the sign and leading digit, the other digits as '*': "-4****"; one digit: "*"
//	float      the int mask of its integer part: 1234.5 is "1***"; 0.5, NaN, ±Inf: "*"
//	bool       "*"
//	bytes      the length: "<16 bytes>"
//
// An empty string masks to "". A date, timestamp or ip that does not parse,
// and any string value whose mask would contain the whole value (as "ab"
// would in "***ab"), masks to "***". So a mask never contains a value of
// four or more characters.
//
// Mask returns an error for a value of the wrong Go type, holding no part of
// the value.
func Mask(typ custos.FieldType, v any) (string, error) {
	switch typ {
	case custos.TypeInt:
		n, ok := v.(int64)
		if !ok {
			return "", wrongType(typ, v)
		}
		u := uint64(n)
		if n < 0 {
			u = -u
		}
		return maskNumber(n < 0, strconv.FormatUint(u, 10)), nil
	case custos.TypeFloat:
		f, ok := v.(float64)
		if !ok {
			return "", wrongType(typ, v)
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return "*", nil
		}
		return maskNumber(f < 0, strconv.FormatFloat(math.Trunc(math.Abs(f)), 'f', 0, 64)), nil
	case custos.TypeBool:
		if _, ok := v.(bool); !ok {
			return "", wrongType(typ, v)
		}
		return "*", nil
	case custos.TypeBytes:
		b, ok := v.([]byte)
		if !ok {
			return "", wrongType(typ, v)
		}
		return fmt.Sprintf("<%d bytes>", len(b)), nil
	}
	if !typ.Valid() {
		return "", unknownType(typ)
	}
	s, ok := v.(string)
	if !ok {
		return "", wrongType(typ, v)
	}
	if s == "" {
		return "", nil
	}
	m := maskString(typ, s)
	if strings.Contains(m, s) {
		return hidden, nil
	}
	return m, nil
}

// maskNumber masks the decimal digits of an absolute value.
func maskNumber(negative bool, digits string) string {
	if len(digits) < 2 {
		return "*"
	}
	sign := ""
	if negative {
		sign = "-"
	}
	return sign + digits[:1] + strings.Repeat("*", len(digits)-1)
}

func maskString(typ custos.FieldType, s string) string {
	switch typ {
	case custos.TypeEmail:
		return maskEmail(s)
	case custos.TypePhone:
		return maskPhone(s)
	case custos.TypeDate:
		if _, err := time.Parse(time.DateOnly, s); err == nil {
			return s[:4] + "-**-**"
		}
		return hidden
	case custos.TypeTimestamp:
		if ts, err := time.Parse(time.RFC3339, s); err == nil {
			return ts.Format("2006-01") + "-**"
		}
		return hidden
	case custos.TypeIP:
		return maskIP(s)
	case custos.TypeID:
		return hidden + lastRunes(s, 2)
	}
	return firstRune(s) + hidden
}

func maskEmail(s string) string {
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return firstRune(s) + hidden
	}
	return firstRune(s[:at]) + hidden + s[at:]
}

func maskPhone(s string) string {
	keep := 2
	out := []byte(s)
	for i := len(out) - 1; i >= 0; i-- {
		if !isDigit(out[i]) {
			continue
		}
		if keep > 0 {
			keep--
		} else {
			out[i] = '*'
		}
	}
	return string(out)
}

func maskIP(s string) string {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return hidden
	}
	a = a.Unmap().WithZone("")
	if a.Is4() {
		b := a.As4()
		return fmt.Sprintf("%d.%d.%d.x", b[0], b[1], b[2])
	}
	return netip.PrefixFrom(a, 48).Masked().String()
}

// firstRune returns the first character of s, or "" when s is empty.
func firstRune(s string) string {
	_, n := utf8.DecodeRuneInString(s)
	return s[:n]
}

// lastRunes returns the last n characters of s.
func lastRunes(s string, n int) string {
	i := len(s)
	for ; n > 0 && i > 0; n-- {
		_, size := utf8.DecodeLastRuneInString(s[:i])
		i -= size
	}
	return s[i:]
}
