package gateway_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/custos/custos"
)

// TestAggregate writes 115 users, 60 in US, 30 in GU and 25 in PR, and has
// the engineer abroad count them by country: US is released, GU and PR,
// each under k = 50, are not; a query that narrows to GU, a malformed one
// and one over a protected field's value get problems.
func TestAggregate(t *testing.T) {
	e := newEnv(t, options{})
	for i := range 115 {
		id, country := fmt.Sprintf("u%03d", i), "US"
		switch {
		case i >= 90:
			country = "PR"
		case i >= 60:
			country = "GU"
		}
		wantStatus(t, e.do(t, "PUT", "/v1/subjects/"+id, e.service, `{"residency":"US"}`), http.StatusCreated)
		wantStatus(t, e.do(t, "POST", "/v1/records/users", e.service, `{"id":"`+id+`","fields":{"id":"`+id+`","handle":"h`+id+`","email":"`+id+`@example.com","country":"`+country+`"}}`), http.StatusCreated)
	}
	r := e.do(t, "POST", "/v1/aggregate", e.engineer, `{"collection":"users","measure":"count","group_by":["country"]}`)
	wantStatus(t, r, http.StatusOK)
	var res struct {
		K      int
		Groups []struct {
			Key   []string
			Value float64
		}
		Suppressed int
		AuditIndex uint64 `json:"audit_index"`
	}
	if err := json.Unmarshal(r.body, &res); err != nil {
		t.Fatal(err)
	}
	if res.K != 50 || len(res.Groups) != 1 || res.Groups[0].Key[0] != "US" || res.Groups[0].Value != 60 || res.Suppressed != 2 || res.AuditIndex == 0 {
		t.Errorf("count by country: %s", r.body)
	}
	if r.header.Get("Custos-Audit-Index") == "" {
		t.Error("no audit index header")
	}
	for _, c := range []struct {
		name, body string
		status     int
		code       string
	}{
		{"narrowed to GU", `{"collection":"users","measure":"count","where":[{"term":"country","in":["GU"]}]}`, http.StatusForbidden, custos.CodeQuerySetTooSmall},
		{"grouped by email", `{"collection":"users","measure":"count","group_by":["email"]}`, http.StatusForbidden, custos.CodeForbidden},
		{"unknown measure", `{"collection":"users","measure":"median"}`, http.StatusBadRequest, custos.CodeInvalidRequest},
		{"unknown key", `{"collection":"users","measure":"count","having":1}`, http.StatusBadRequest, custos.CodeInvalidRequest},
		{"bad term", `{"collection":"users","measure":"count","group_by":["hour(at)"]}`, http.StatusBadRequest, custos.CodeInvalidRequest},
		{"unknown collection", `{"collection":"payments","measure":"count"}`, http.StatusNotFound, custos.CodeUnknownCollection},
		{"unknown field", `{"collection":"users","measure":"count","group_by":["shoe_size"]}`, http.StatusUnprocessableEntity, custos.CodeUnknownField},
	} {
		r := e.do(t, "POST", "/v1/aggregate", e.engineer, c.body)
		checkProblem(t, r, c.status, c.code)
	}
}
