package identity

import (
	"net/http"
	"strings"
)

// BearerToken returns the token of the request's one Authorization header,
// of the form "Bearer <token>" (the scheme is case-insensitive). It returns
// an error wrapping ErrUnauthenticated when there is no such header, more
// than one, another scheme, or a token that is empty, over MaxTokenSize
// bytes or not of the token68 syntax of RFC 9110.
func BearerToken(h http.Header) (string, error) {
	vals := h.Values("Authorization")
	switch len(vals) {
	case 0:
		return "", unauthenticated("missing Authorization header")
	case 1:
	default:
		return "", unauthenticated("more than one Authorization header")
	}
	scheme, token, _ := strings.Cut(vals[0], " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", unauthenticated("want an Authorization header of scheme Bearer")
	}
	token = strings.TrimLeft(token, " ")
	switch {
	case token == "":
		return "", unauthenticated("missing bearer token")
	case len(token) > MaxTokenSize:
		return "", unauthenticated("token larger than %d bytes", MaxTokenSize)
	case !token68(token):
		return "", unauthenticated("malformed bearer token")
	}
	return token, nil
}

// token68 reports whether s is of the syntax
// 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func token68(s string) bool {
	s = strings.TrimRight(s, "=")
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/'
		if !ok {
			return false
		}
	}
	return true
}
