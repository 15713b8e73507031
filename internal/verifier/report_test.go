package verifier

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"

	"github.com/custos/custos"
)

func testReport(t *testing.T) Report {
	t.Helper()
	var r Report
	for i, b := range entries(t, 0, 20) {
		e, err := custos.ParseAuditEntry(b)
		if err != nil {
			t.Fatal(err)
		}
		r.Add(uint64(i), e)
	}
	return r
}

func TestReport(t *testing.T) {
	r := testReport(t)
	// entries() makes 3 and 13 detokenizations, 5 and 15 denials, 7 and
	// 17 policy loads, and alternates orgs.
	if r.Entries != 20 || r.Counts["org"]["custodian"] != 10 || r.Counts["action"]["detokenize"] != 2 ||
		r.Counts["decision"]["deny"] != 2 || r.Counts["action"]["policy-load"] != 2 || r.Counts["action"]["read"] != 16 {
		t.Fatalf("counts %v", r.Counts)
	}
	d := r.Detokenizations
	if len(d) != 2 || d[0].Index != 3 || d[1].Index != 13 || d[0].Reason != "fraud" || d[0].Ticket != "T-42" || d[0].Approver != "alice" || d[0].Subjects != 2 {
		t.Fatalf("detokenizations %+v", d)
	}
	if len(r.Denials) != 2 || r.Denials[0].Index != 5 || r.Denials[0].Code != "forbidden" || r.Denials[0].Action != "read" {
		t.Fatalf("denials %+v", r.Denials)
	}
	if len(r.PolicyChanges) != 2 || r.PolicyChanges[1].Index != 17 || r.PolicyChanges[1].Detail != "policies sha256:abc" {
		t.Fatalf("policy changes %+v", r.PolicyChanges)
	}
	if !r.First.Equal(entryClock) || !r.Last.Equal(entryClock.Add(19e6)) {
		t.Fatalf("from %v to %v", r.First, r.Last)
	}
}

func TestReportRender(t *testing.T) {
	r := testReport(t)
	r.Add(20, custos.AuditEntry{Time: entryClock, Action: "read", Decision: "deny", Code: "x", Principal: "evil\x1b[2J"})

	var text bytes.Buffer
	if err := WriteText(&text, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"entries  21", "custodian", "#3 ", "reason=fraud", "ticket=T-42", "approver=alice", "subjects=2", "#17", "policies sha256:abc", `"evil\x1b[2J"`} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, text.String())
		}
	}
	if strings.Contains(text.String(), "\x1b") {
		t.Error("text report passes a control character to the terminal")
	}

	var js bytes.Buffer
	if err := WriteJSON(&js, r); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if back.Entries != 21 || len(back.Detokenizations) != 2 || len(back.Denials) != 3 || back.Counts["loc"]["sg"] != 10 {
		t.Fatalf("JSON report round-trips to %+v", back)
	}

	var c bytes.Buffer
	if err := WriteCSV(&c, r); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&c).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, row := range rows[1:] {
		kinds[row[0]]++
	}
	if rows[0][0] != "record" || kinds["detokenize"] != 2 || kinds["deny"] != 3 || kinds["policy"] != 2 || kinds["count"] == 0 {
		t.Fatalf("CSV rows %v", kinds)
	}
}

func TestReportAlgorithms(t *testing.T) {
	var r Report
	detail := "covisit 1.0.0 manifest sha256:ab module sha256:cd"
	for i, e := range []custos.AuditEntry{
		{Action: "algo-submit", Decision: "allow", Principal: "wei", Detail: detail},
		{Action: "algo-approve", Decision: "deny", Code: "invalid_signature", Principal: "bob", Detail: "covisit"},
		{Action: "algo-approve", Decision: "allow", Principal: "bob", Approver: "alice", Detail: detail},
		{Action: "algo-activate", Decision: "allow", Principal: "bob", Detail: detail},
	} {
		e.Time = entryClock
		r.Add(uint64(i), e)
	}
	a := r.AlgorithmChanges
	if len(a) != 3 || a[1].Index != 2 || a[1].Approver != "alice" || a[2].Action != "algo-activate" || a[2].Detail != detail {
		t.Fatalf("algorithm changes %+v", a)
	}
	if len(r.Denials) != 1 || r.Denials[0].Code != "invalid_signature" {
		t.Fatalf("denials %+v", r.Denials)
	}
	var text, c bytes.Buffer
	if err := WriteText(&text, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"algorithm changes  3", "algo-approve   bob  approver=alice  " + detail, "#3 "} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, text.String())
		}
	}
	if err := WriteCSV(&c, r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(c.String(), "algorithm,2,") || !strings.Contains(c.String(), ",alice,,,"+detail) {
		t.Errorf("CSV report lacks the approval:\n%s", c.String())
	}
}

func TestReportGovernance(t *testing.T) {
	var r Report
	rules := func(d string) string { return "rules sha256:" + d + " policy sha256:p schema sha256:s: at start" }
	for i, e := range []custos.AuditEntry{
		{Action: "gov-init", Decision: "allow", Detail: "policy proposed sha256:p"},
		{Action: "rules-in-force", Decision: "allow", Detail: rules("1")},
		{Action: "gov-propose", Decision: "allow", Principal: "alice", Detail: "policy proposal 0123456789abcdef"},
		{Action: "gov-sign", Decision: "allow", Principal: "aud", Approver: "monitor-1", Detail: "policy proposal 0123456789abcdef"},
		{Action: "gov-apply", Decision: "allow", Principal: "aud", Detail: "policy proposal 0123456789abcdef"},
		{Action: "rules-in-force", Decision: "allow", Principal: "aud", Detail: rules("2")},
		{Action: "gov-unsigned", Decision: "deny", Code: "invalid_signature", Detail: "policy current sha256:p"},
		{Action: "suspend", Decision: "allow", Principal: "aud", Approver: "monitor-1", Reason: "review"},
		{Action: "read", Decision: "allow", Principal: "wei"},
	} {
		e.Time = entryClock
		r.Add(uint64(i), e)
	}
	if len(r.Governance) != 8 || r.Governance[3].Approver != "monitor-1" || r.Governance[7].Reason != "review" {
		t.Fatalf("governance %+v", r.Governance)
	}
	if r.RulesInForce == nil || r.RulesInForce.Index != 5 || r.RulesInForce.Detail != rules("2") {
		t.Fatalf("rules in force %+v", r.RulesInForce)
	}
	if len(r.UnsignedRuleChanges) != 0 {
		t.Fatalf("unsigned rule changes %+v", r.UnsignedRuleChanges)
	}
	// A restart that finds other rules with no application between.
	r.Add(9, custos.AuditEntry{Time: entryClock, Action: "rules-in-force", Decision: "allow", Detail: rules("3")})
	if len(r.UnsignedRuleChanges) != 1 || r.UnsignedRuleChanges[0].Index != 9 {
		t.Fatalf("unsigned rule changes %+v", r.UnsignedRuleChanges)
	}
	var text bytes.Buffer
	if err := WriteText(&text, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"governance  9", "rules in force  #9  " + rules("3"), "signer=monitor-1", "rules changed without a signed application  1"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, text.String())
		}
	}
}
