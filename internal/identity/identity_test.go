package identity

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/custos/custos"
	"github.com/golang-jwt/jwt/v5"
)

const (
	testIss = "https://idp.custodian.example"
	testAud = "custos"
	testSub = "alice.Sub-Canary-7f3a" // never appears in an error
)

var testNow = time.Date(2026, 1, 22, 10, 0, 0, 0, time.UTC)

type fixture struct {
	key   ed25519.PrivateKey
	other ed25519.PrivateKey
	v     *Verifier
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	key, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	other, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(Config{
		Audience: testAud,
		Issuers:  []Issuer{{Name: testIss, Key: key.Public().(ed25519.PublicKey)}},
		Orgs:     []string{custos.OrgCustodian, custos.OrgOperator, custos.OrgMonitor},
		Now:      func() time.Time { return testNow },
	})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{key: key, other: other, v: v}
}

func testPrincipal() custos.Principal {
	return custos.Principal{ID: testSub, Org: custos.OrgCustodian, Loc: "US",
		Roles: []string{"support", "admin", "support"}, Vetted: true}
}

func (f *fixture) mint(t testing.TB) string {
	t.Helper()
	tok, err := Mint(f.key, testIss, testAud, testPrincipal(), time.Hour, testNow)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// sign signs arbitrary claims with key, by alg EdDSA.
func sign(t testing.TB, key ed25519.PrivateKey, c jwt.MapClaims) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func validClaims() jwt.MapClaims {
	return jwt.MapClaims{
		"iss": testIss, "aud": testAud, "sub": testSub, "org": "operator", "loc": "IE",
		"roles": []string{"ops"}, "iat": testNow.Unix(), "exp": testNow.Add(time.Hour).Unix(),
	}
}

func TestVerifyRoundTrip(t *testing.T) {
	f := newFixture(t)
	p, err := f.v.Verify(f.mint(t))
	if err != nil {
		t.Fatal(err)
	}
	want := custos.Principal{ID: testSub, Issuer: testIss, Org: custos.OrgCustodian, Loc: "US",
		Roles: []string{"admin", "support"}, Vetted: true}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("Verify = %+v, want %+v", p, want)
	}

	p, err = f.v.Verify(sign(t, f.key, validClaims()))
	if err != nil {
		t.Fatal(err)
	}
	if p.Vetted || p.Org != "operator" || p.Loc != "IE" {
		t.Errorf("Verify = %+v, want an unvetted operator in IE", p)
	}
}

func TestMintClaims(t *testing.T) {
	f := newFixture(t)
	tok := f.mint(t)
	parts := strings.Split(tok, ".")
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"sub", "org", "loc", "roles", "vetted", "iss", "aud", "iat", "nbf", "exp", "jti"} {
		if _, ok := c[k]; !ok {
			t.Errorf("minted token has no %s claim", k)
		}
	}
	if tok2 := f.mint(t); tok2 == tok {
		t.Error("two minted tokens are equal: jti is not random")
	}
	bad := testPrincipal()
	bad.Loc = "usa"
	if _, err := Mint(f.key, testIss, testAud, bad, time.Hour, testNow); err == nil {
		t.Error("Mint accepted loc usa")
	}
	if _, err := Mint(f.key, testIss, testAud, testPrincipal(), 0, testNow); err == nil {
		t.Error("Mint accepted a zero ttl")
	}
}

// hs256 forges a token signed with HMAC-SHA256 keyed by secret, the attack
// on verifiers that let the token choose the algorithm.
func hs256(t testing.TB, secret []byte, c jwt.MapClaims) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// unsigned builds a token with alg none.
func unsigned(t testing.TB, c jwt.MapClaims) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodNone, c).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func with(c jwt.MapClaims, kv ...any) jwt.MapClaims {
	out := jwt.MapClaims{}
	for k, v := range c {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
		} else {
			out[kv[i].(string)] = kv[i+1]
		}
	}
	return out
}

func TestVerifyRefuses(t *testing.T) {
	f := newFixture(t)
	pub := f.key.Public().(ed25519.PublicKey)
	good := sign(t, f.key, validClaims())
	parts := strings.Split(good, ".")
	tests := []struct {
		name, token, why string
	}{
		{"empty", "", "missing token"},
		{"garbage", "not a token", "malformed token"},
		{"two parts", parts[0] + "." + parts[1], "malformed token"},
		{"four parts", good + ".x", "malformed token"},
		{"oversize", good + strings.Repeat("A", MaxTokenSize), "token larger than 8192 bytes"},
		{"other key", sign(t, f.other, validClaims()), "bad signature"},
		{"tampered payload", parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"`+testIss+`","sub":"mallory"}`)) + "." + parts[2], "bad signature"},
		{"signature cut", parts[0] + "." + parts[1] + "." + parts[2][:20], "bad signature"},
		{"alg none", unsigned(t, validClaims()), "bad signature or algorithm"},
		{"hs256 with public key", hs256(t, pub, validClaims()), "bad signature or algorithm"},
		{"hs256 with pem", hs256(t, []byte(pemOf(t, pub)), validClaims()), "bad signature or algorithm"},
		{"expired", sign(t, f.key, with(validClaims(), "iat", testNow.Add(-2*time.Hour).Unix(), "exp", testNow.Add(-time.Minute).Unix())), "token expired"},
		{"not yet valid", sign(t, f.key, with(validClaims(), "nbf", testNow.Add(time.Minute).Unix())), "token not valid yet"},
		{"issued in future", sign(t, f.key, with(validClaims(), "iat", testNow.Add(time.Minute).Unix())), "token issued in the future"},
		{"no exp", sign(t, f.key, with(validClaims(), "exp", nil)), "missing exp claim"},
		{"no iat", sign(t, f.key, with(validClaims(), "iat", nil)), "missing iat claim"},
		{"lifetime", sign(t, f.key, with(validClaims(), "exp", testNow.Add(25*time.Hour).Unix())), "token lifetime exceeds 24h0m0s"},
		{"wrong audience", sign(t, f.key, with(validClaims(), "aud", "elsewhere")), "wrong audience"},
		{"no audience", sign(t, f.key, with(validClaims(), "aud", nil)), "missing aud claim"},
		{"unknown issuer", sign(t, f.key, with(validClaims(), "iss", "https://idp.other.example")), "unknown issuer"},
		{"no issuer", sign(t, f.key, with(validClaims(), "iss", nil)), "missing iss claim"},
		{"issuer not a string", sign(t, f.key, with(validClaims(), "iss", 7)), "malformed token"},
		{"crit header", critical(t, f.key), "unverifiable token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkRefused(t, f.v, tt.token, tt.why)
		})
	}
}

func critical(t testing.TB, key ed25519.PrivateKey) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, validClaims())
	tok.Header["crit"] = []string{"exp"}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func checkRefused(t *testing.T, v *Verifier, token, why string) {
	t.Helper()
	p, err := v.Verify(token)
	if err == nil {
		t.Fatalf("Verify accepted it: %+v", p)
	}
	if !errors.Is(err, ErrUnauthenticated) || custos.ErrorCode(err) != custos.CodeUnauthenticated {
		t.Errorf("error %v does not wrap ErrUnauthenticated and CodeUnauthenticated", err)
	}
	if !strings.Contains(err.Error(), why) {
		t.Errorf("error %q, want it to say %q", err, why)
	}
	if !reflect.DeepEqual(p, custos.Principal{}) {
		t.Errorf("Verify returned a principal with its error: %+v", p)
	}
	leaks(t, err, token)
}

// leaks fails if err shows the token, a part of it, or the test subject.
func leaks(t *testing.T, err error, token string) {
	t.Helper()
	msg := err.Error() + custos.ErrorDetail(err)
	if strings.Contains(msg, testSub) {
		t.Errorf("error shows the subject: %v", err)
	}
	for _, part := range strings.Split(token, ".") {
		if len(part) >= 8 && strings.Contains(msg, part) {
			t.Errorf("error shows part of the token: %v", err)
		}
	}
}

func TestClaimValidation(t *testing.T) {
	f := newFixture(t)
	roles := make([]string, 33)
	for i := range roles {
		roles[i] = "r" + strings.Repeat("x", i)
	}
	tests := []struct {
		name   string
		claims jwt.MapClaims
		why    string // "" when the claims are valid
	}{
		{"valid", validClaims(), ""},
		{"sub 128", with(validClaims(), "sub", strings.Repeat("s", 128)), ""},
		{"sub 129", with(validClaims(), "sub", strings.Repeat("s", 129)), "bad sub claim"},
		{"sub empty", with(validClaims(), "sub", ""), "bad sub claim"},
		{"sub missing", with(validClaims(), "sub", nil), "bad sub claim"},
		{"sub control", with(validClaims(), "sub", testSub+"\n"), "bad sub claim"},
		{"sub non-ASCII", with(validClaims(), "sub", testSub+"é"), "bad sub claim"},
		{"sub number", with(validClaims(), "sub", 12345678), "bad sub claim: want string"},
		{"org unknown", with(validClaims(), "org", "bytedance"), "org claim not allowed"},
		{"org missing", with(validClaims(), "org", nil), "org claim not allowed"},
		{"org number", with(validClaims(), "org", 1), "bad org claim: want string"},
		{"loc lower", with(validClaims(), "loc", "us"), "bad loc claim"},
		{"loc three", with(validClaims(), "loc", "USA"), "bad loc claim"},
		{"loc missing", with(validClaims(), "loc", nil), "bad loc claim"},
		{"roles 32", with(validClaims(), "roles", roles[:32]), ""},
		{"roles 33", with(validClaims(), "roles", roles), "more than 32 roles"},
		{"role upper", with(validClaims(), "roles", []string{"Admin"}), "bad roles claim"},
		{"role empty", with(validClaims(), "roles", []string{""}), "bad roles claim"},
		{"role long", with(validClaims(), "roles", []string{strings.Repeat("r", 65)}), "bad roles claim"},
		{"roles string", with(validClaims(), "roles", "admin"), "bad roles claim: want []string"},
		{"vetted string", with(validClaims(), "vetted", "yes"), "bad vetted claim: want bool"},
		{"vetted true", with(validClaims(), "vetted", true), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := sign(t, f.key, tt.claims)
			if tt.why == "" {
				if _, err := f.v.Verify(tok); err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			checkRefused(t, f.v, tok, tt.why)
		})
	}
}

func TestVerifyRolesNormalized(t *testing.T) {
	f := newFixture(t)
	p, err := f.v.Verify(sign(t, f.key, with(validClaims(), "roles", []string{"b", "a", "b", "c", "a"})))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(p.Roles, ","); got != "a,b,c" {
		t.Errorf("roles %s, want a,b,c", got)
	}
	p, err = f.v.Verify(sign(t, f.key, with(validClaims(), "roles", nil)))
	if err != nil || len(p.Roles) != 0 {
		t.Errorf("no roles claim: %+v, %v", p, err)
	}
}

func TestVerifyLeeway(t *testing.T) {
	f := newFixture(t)
	c := with(validClaims(), "iat", testNow.Add(-time.Hour).Unix(), "exp", testNow.Add(-20*time.Second).Unix())
	if _, err := f.v.Verify(sign(t, f.key, c)); err != nil {
		t.Errorf("token expired 20s ago, within the leeway: %v", err)
	}
	c = with(validClaims(), "iat", testNow.Add(-time.Hour).Unix(), "exp", testNow.Add(-40*time.Second).Unix())
	if _, err := f.v.Verify(sign(t, f.key, c)); err == nil {
		t.Error("token expired 40s ago accepted")
	}
}

func TestVerifyIssuers(t *testing.T) {
	a, _ := GenerateKey()
	b, _ := GenerateKey()
	v, err := NewVerifier(Config{
		Audience: testAud,
		Issuers: []Issuer{
			{Name: "a", Key: a.Public().(ed25519.PublicKey)},
			{Name: "b", Key: b.Public().(ed25519.PublicKey)},
		},
		Orgs: []string{"operator"},
		Now:  func() time.Time { return testNow },
	})
	if err != nil {
		t.Fatal(err)
	}
	if p, err := v.Verify(sign(t, b, with(validClaims(), "iss", "b"))); err != nil || p.Issuer != "b" {
		t.Errorf("issuer b: %+v, %v", p, err)
	}
	// b's key may not speak for a.
	checkRefused(t, v, sign(t, b, with(validClaims(), "iss", "a")), "bad signature")
}

func TestNewVerifierRefuses(t *testing.T) {
	key, _ := GenerateKey()
	pub := key.Public().(ed25519.PublicKey)
	good := Config{Audience: "custos", Issuers: []Issuer{{Name: "i", Key: pub}}, Orgs: []string{"operator"}}
	tests := []struct {
		name string
		edit func(*Config)
	}{
		{"no audience", func(c *Config) { c.Audience = "" }},
		{"no issuers", func(c *Config) { c.Issuers = nil }},
		{"no orgs", func(c *Config) { c.Orgs = nil }},
		{"empty org", func(c *Config) { c.Orgs = []string{""} }},
		{"unnamed issuer", func(c *Config) { c.Issuers = []Issuer{{Key: pub}} }},
		{"short key", func(c *Config) { c.Issuers = []Issuer{{Name: "i", Key: pub[:31]}} }},
		{"issuer twice", func(c *Config) { c.Issuers = append(c.Issuers, c.Issuers[0]) }},
		{"negative leeway", func(c *Config) { c.Leeway = -time.Second }},
		{"negative ttl", func(c *Config) { c.MaxTTL = -time.Second }},
	}
	if _, err := NewVerifier(good); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		c := good
		c.Issuers = append([]Issuer(nil), good.Issuers...)
		tt.edit(&c)
		if _, err := NewVerifier(c); err == nil {
			t.Errorf("%s: NewVerifier succeeded", tt.name)
		}
	}
}

func TestBearerToken(t *testing.T) {
	tests := []struct {
		name   string
		values []string
		want   string // "" when refused
	}{
		{"bearer", []string{"Bearer abc.def.ghi"}, "abc.def.ghi"},
		{"lower case", []string{"bearer abc.def.ghi"}, "abc.def.ghi"},
		{"upper case", []string{"BEARER abc.def.ghi"}, "abc.def.ghi"},
		{"padding", []string{"Bearer abc=="}, "abc=="},
		{"missing", nil, ""},
		{"two headers", []string{"Bearer a", "Bearer b"}, ""},
		{"basic", []string{"Basic dXNlcjpwYXNz"}, ""},
		{"no token", []string{"Bearer"}, ""},
		{"blank token", []string{"Bearer   "}, ""},
		{"space inside", []string{"Bearer abc def"}, ""},
		{"comma", []string{"Bearer abc,def"}, ""},
		{"only padding", []string{"Bearer =="}, ""},
		{"oversize", []string{"Bearer " + strings.Repeat("a", MaxTokenSize+1)}, ""},
		{"max size", []string{"Bearer " + strings.Repeat("a", MaxTokenSize)}, strings.Repeat("a", MaxTokenSize)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range tt.values {
				h.Add("Authorization", v)
			}
			got, err := BearerToken(h)
			if tt.want == "" {
				if err == nil || !errors.Is(err, ErrUnauthenticated) {
					t.Fatalf("BearerToken = %q, %v; want ErrUnauthenticated", got, err)
				}
				if strings.Contains(err.Error(), "abc") || strings.Contains(err.Error(), "dXNl") {
					t.Errorf("error shows the credential: %v", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("BearerToken = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// TestHMACConfusionByHand builds the classic key-confusion forgery without
// the JWT library: header {"alg":"HS256"}, MAC keyed with the public key.
func TestHMACConfusionByHand(t *testing.T) {
	f := newFixture(t)
	enc := base64.RawURLEncoding
	hdr := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	body, _ := json.Marshal(validClaims())
	msg := hdr + "." + enc.EncodeToString(body)
	mac := hmac.New(sha256.New, f.key.Public().(ed25519.PublicKey))
	mac.Write([]byte(msg))
	checkRefused(t, f.v, msg+"."+enc.EncodeToString(mac.Sum(nil)), "bad signature or algorithm")
	checkRefused(t, f.v, enc.EncodeToString([]byte(`{"alg":"none"}`))+"."+enc.EncodeToString(body)+".", "bad signature or algorithm")
	checkRefused(t, f.v, enc.EncodeToString([]byte(`{"alg":"NONE"}`))+"."+enc.EncodeToString(body)+".", "unverifiable token")
}

func FuzzVerify(f *testing.F) {
	fx := newFixture(f)
	good := fx.mint(f)
	f.Add(good)
	f.Add(good[:len(good)-1] + "A")
	f.Add(sign(f, fx.other, validClaims()))
	f.Add(hs256(f, fx.key.Public().(ed25519.PublicKey), validClaims()))
	f.Add(unsigned(f, validClaims()))
	f.Add("eyJhbGciOiJFZERTQSJ9.e30.")
	f.Add("..")
	f.Fuzz(func(t *testing.T, token string) {
		p, err := fx.v.Verify(token)
		if token == good {
			return
		}
		if err == nil {
			t.Fatalf("Verify accepted a token the issuer never signed: %+v", p)
		}
		if !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("error %v does not wrap ErrUnauthenticated", err)
		}
		if len(err.Error()) > 200 {
			t.Fatalf("error of %d bytes", len(err.Error()))
		}
	})
}

// BenchmarkVerify measures a full check: the token is forgotten each time.
func BenchmarkVerify(b *testing.B) {
	f := newFixture(b)
	tok := f.mint(b)
	b.ReportAllocs()
	for b.Loop() {
		f.v.forget()
		if _, err := f.v.Verify(tok); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyParallel(b *testing.B) {
	f := newFixture(b)
	tok := f.mint(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			f.v.forget()
			if _, err := f.v.Verify(tok); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkEd25519Verify is the floor under BenchmarkVerify: the signature
// check alone, on the same token.
func BenchmarkEd25519Verify(b *testing.B) {
	f := newFixture(b)
	tok := f.mint(b)
	i := strings.LastIndexByte(tok, '.')
	sig, err := base64.RawURLEncoding.DecodeString(tok[i+1:])
	if err != nil {
		b.Fatal(err)
	}
	pub, msg := f.key.Public().(ed25519.PublicKey), []byte(tok[:i])
	for b.Loop() {
		if !ed25519.Verify(pub, msg, sig) {
			b.Fatal("bad signature")
		}
	}
}
