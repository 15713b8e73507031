package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key}
}

// issue returns a certificate for subject signed by ca, as PEM cert and key.
func (ca *testCA) issue(t *testing.T, subject pkix.Name, usage x509.ExtKeyUsage, dns ...string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: subject, DNSNames: dns,
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:   time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd})
}

// TestMutualTLS serves a deployment over TLS with a client CA: a client
// certificate of the operator's service is a principal that may register a
// subject; a certificate from another CA, or none, is refused.
func TestMutualTLS(t *testing.T) {
	d := testDeployment(t)
	ca, other := newTestCA(t, "custodian client CA"), newTestCA(t, "someone else")
	srvCert, srvKey := ca.issue(t, pkix.Name{CommonName: "custos"}, x509.ExtKeyUsageServerAuth, "localhost")
	svcCert, svcKey := ca.issue(t, pkix.Name{CommonName: "feed", Organization: []string{"operator"}, Country: []string{"US"}, OrganizationalUnit: []string{"service"}}, x509.ExtKeyUsageClientAuth)
	badCert, badKey := other.issue(t, pkix.Name{CommonName: "feed", Organization: []string{"operator"}, Country: []string{"US"}, OrganizationalUnit: []string{"service"}}, x509.ExtKeyUsageClientAuth)
	dir := d.cfg.Dir
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return name
	}
	d.cfg.TLS.Cert, d.cfg.TLS.Key = write("tls.crt", srvCert), write("tls.key", srvKey)
	d.cfg.TLS.ClientCA = write("clients.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw}))

	tc, err := tlsConfig(d.cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &env{stdout: io.Discard, stderr: io.Discard, log: slog.New(slog.DiscardHandler)}
	ready, done := make(chan struct{}), make(chan error, 1)
	go func() { done <- e.run(ctx, d, tls.NewListener(ln, tc), func() { close(ready) }) }()
	defer func() { cancel(); <-done }()
	<-ready

	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	client := func(certPEM, keyPEM []byte) *http.Client {
		cfg := &tls.Config{RootCAs: roots}
		if certPEM != nil {
			c, err := tls.X509KeyPair(certPEM, keyPEM)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Certificates = []tls.Certificate{c}
		}
		return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
	}
	put := func(c *http.Client) (int, string) {
		req, _ := http.NewRequest("PUT", "https://"+ln.Addr().String()+"/v1/subjects/u1", strings.NewReader(`{"residency":"US"}`))
		resp, err := c.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := put(client(svcCert, svcKey)); code != http.StatusCreated {
		t.Fatalf("operator service certificate: %d %s, want 201", code, body)
	}
	if code, body := put(client(nil, nil)); code != http.StatusUnauthorized {
		t.Fatalf("no certificate, no token: %d %s, want 401", code, body)
	}
	if code, _ := put(client(badCert, badKey)); code == http.StatusCreated || code == http.StatusOK {
		t.Fatalf("certificate of another CA accepted: %d", code)
	}
}
