package identity

import (
	"crypto/x509"
	"slices"

	"github.com/custos/custos"
)

// VettedOU is the organisational unit that marks a certificate's holder as
// vetted.
const VettedOU = "vetted"

// PrincipalFromCert returns the principal a client certificate names: its
// common name is the principal's id, its one organization the org (which
// must be one of orgs), its one country the location, and its
// organisational units the roles, but for VettedOU, which marks the
// principal as vetted. The principal's issuer is "x509:" and the certificate
// issuer's common name, so that no token issuer can share it.
//
// PrincipalFromCert checks the shape of these attributes only: the
// certificate must already have been verified against the custodian's client
// CA, as the TLS stack does with tls.RequireAndVerifyClientCert. Errors wrap
// ErrUnauthenticated and, like Verify's, never hold the certificate's values.
func PrincipalFromCert(c *x509.Certificate, orgs []string) (custos.Principal, error) {
	if c == nil {
		return custos.Principal{}, unauthenticated("missing client certificate")
	}
	s := c.Subject
	switch {
	case len(s.Organization) != 1 || !slices.Contains(orgs, s.Organization[0]):
		return custos.Principal{}, unauthenticated("certificate organization not allowed")
	case len(s.Country) != 1:
		return custos.Principal{}, unauthenticated("certificate must name one country")
	}
	p := custos.Principal{ID: s.CommonName, Issuer: "x509:" + c.Issuer.CommonName, Org: s.Organization[0], Loc: s.Country[0]}
	for _, ou := range s.OrganizationalUnit {
		if ou == VettedOU {
			p.Vetted = true
		} else {
			p.Roles = append(p.Roles, ou)
		}
	}
	return checkPrincipal(p, orgs)
}
