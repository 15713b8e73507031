package verifier

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/custos/custos"
)

// Report summarizes audit entries for the monitor. Build it with Add, in
// index order, from entries Verify checked (Config.Each); discard it if
// Verify fails.
type Report struct {
	Entries uint64    `json:"entries"`
	First   time.Time `json:"first"`
	Last    time.Time `json:"last"`
	// Counts by dimension ("org", "loc", "action", "purpose", "decision"),
	// then by value; an absent value counts under "".
	Counts          map[string]map[string]uint64 `json:"counts"`
	Detokenizations []Detokenization             `json:"detokenizations"`
	Denials         []Denial                     `json:"denials"`
	PolicyChanges   []PolicyChange               `json:"policy_changes"`
	// AlgorithmChanges are the changes made to the registry of algorithms:
	// submissions, approvals, activations and retirements.
	AlgorithmChanges []AlgorithmChange `json:"algorithm_changes"`
	// Governance are the steps of the governance of the rules and of the
	// suspension of the operator: proposals, signatures, applications,
	// refusals of unsigned files, the rules in force, suspensions and lifts.
	Governance []GovernanceChange `json:"governance"`
	// RulesInForce is the last rules-in-force entry: the digest of the
	// policies and the schema in force from then on.
	RulesInForce *GovernanceChange `json:"rules_in_force,omitempty"`
	// UnsignedRuleChanges are rules-in-force entries whose rules differ
	// from the previous entry's with no application (gov-apply) nor trust
	// on first use (gov-init) between them: the rules changed outside
	// governance, such as the signed state edited on the custodian's disk.
	UnsignedRuleChanges []GovernanceChange `json:"unsigned_rule_changes"`

	lastRules string // the rules digest of the last rules-in-force entry
	explained bool   // a gov-apply or gov-init since that entry
}

// GovernanceChange is one entry of governance. Its detail names the kind
// and the digests of the change; its approver is the key of a signature.
type GovernanceChange struct {
	Index     uint64    `json:"index"`
	Time      time.Time `json:"time"`
	Action    string    `json:"action"`
	Decision  string    `json:"decision"`
	Principal string    `json:"principal"`
	Approver  string    `json:"approver,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	Detail    string    `json:"detail"`
}

// isGovernance reports whether an action is a step of governance.
func isGovernance(action string) bool {
	return strings.HasPrefix(action, "gov-") || slices.Contains([]string{"rules-in-force", "suspend", "lift"}, action)
}

// AlgorithmChange is one allowed entry whose action starts with "algo-".
// Its detail names the bundle by name, version and digests; its approver
// is the reviewer key of an approval.
type AlgorithmChange struct {
	Index     uint64    `json:"index"`
	Time      time.Time `json:"time"`
	Action    string    `json:"action"`
	Principal string    `json:"principal"`
	Approver  string    `json:"approver,omitempty"`
	Detail    string    `json:"detail"`
}

// Detokenization is one detokenize entry with its justification.
type Detokenization struct {
	Index      uint64    `json:"index"`
	Time       time.Time `json:"time"`
	Decision   string    `json:"decision"`
	Principal  string    `json:"principal"`
	Reason     string    `json:"reason"`
	Ticket     string    `json:"ticket"`
	Approver   string    `json:"approver"`
	BreakGlass bool      `json:"break_glass"`
	Subjects   int       `json:"subjects"`
}

// Denial is one entry with decision deny.
type Denial struct {
	Index     uint64    `json:"index"`
	Time      time.Time `json:"time"`
	Action    string    `json:"action"`
	Code      string    `json:"code"`
	Principal string    `json:"principal"`
}

// PolicyChange is one entry whose action starts with "policy".
type PolicyChange struct {
	Index     uint64    `json:"index"`
	Time      time.Time `json:"time"`
	Action    string    `json:"action"`
	Principal string    `json:"principal"`
	Detail    string    `json:"detail"`
}

// Dimensions are the keys of Report.Counts, in rendering order.
var Dimensions = []string{"org", "loc", "action", "purpose", "decision"}

// Add counts the entry at index.
func (r *Report) Add(index uint64, e custos.AuditEntry) {
	if r.Counts == nil {
		r.Counts = make(map[string]map[string]uint64)
	}
	r.Entries++
	if r.First.IsZero() || e.Time.Before(r.First) {
		r.First = e.Time
	}
	if e.Time.After(r.Last) {
		r.Last = e.Time
	}
	for i, v := range []string{e.Org, e.Loc, e.Action, e.Purpose, e.Decision} {
		d := Dimensions[i]
		if r.Counts[d] == nil {
			r.Counts[d] = make(map[string]uint64)
		}
		r.Counts[d][v]++
	}
	if e.Action == "detokenize" {
		n := len(e.Subjects)
		if n == 0 && e.Subject != "" {
			n = 1
		}
		r.Detokenizations = append(r.Detokenizations, Detokenization{
			Index: index, Time: e.Time, Decision: e.Decision, Principal: e.Principal,
			Reason: e.Reason, Ticket: e.Ticket, Approver: e.Approver, BreakGlass: e.BreakGlass, Subjects: n,
		})
	}
	if e.Decision == "deny" {
		r.Denials = append(r.Denials, Denial{Index: index, Time: e.Time, Action: e.Action, Code: e.Code, Principal: e.Principal})
	}
	if strings.HasPrefix(e.Action, "algo-") && e.Decision == "allow" {
		r.AlgorithmChanges = append(r.AlgorithmChanges, AlgorithmChange{Index: index, Time: e.Time, Action: e.Action, Principal: e.Principal, Approver: e.Approver, Detail: e.Detail})
	}
	if isGovernance(e.Action) {
		g := GovernanceChange{Index: index, Time: e.Time, Action: e.Action, Decision: e.Decision, Principal: e.Principal, Approver: e.Approver, Reason: e.Reason, Detail: e.Detail}
		r.Governance = append(r.Governance, g)
		switch e.Action {
		case "gov-apply", "gov-init":
			r.explained = true
		case "rules-in-force":
			r.RulesInForce = &g
			rules, _, _ := strings.Cut(strings.TrimPrefix(e.Detail, "rules "), " ")
			if r.lastRules != "" && rules != r.lastRules && !r.explained {
				r.UnsignedRuleChanges = append(r.UnsignedRuleChanges, g)
			}
			r.lastRules, r.explained = rules, false
		}
	}
	if strings.HasPrefix(e.Action, "policy") {
		r.PolicyChanges = append(r.PolicyChanges, PolicyChange{Index: index, Time: e.Time, Action: e.Action, Principal: e.Principal, Detail: e.Detail})
	}
}

// WriteJSON writes r as one indented JSON object.
func WriteJSON(w io.Writer, r Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteCSV writes r as CSV rows of one shape, the first naming the columns:
// "count" rows carry dimension, value and count; the others carry the
// entry's index, time and the fields of their kind.
func WriteCSV(w io.Writer, r Report) error {
	cw := csv.NewWriter(w)
	row := func(rec ...string) { _ = cw.Write(rec) }
	row("record", "index", "time", "dimension", "value", "count", "action", "decision", "principal", "code", "reason", "ticket", "approver", "break_glass", "subjects", "detail")
	for _, d := range Dimensions {
		for _, v := range sortedKeys(r.Counts[d]) {
			row("count", "", "", d, v, u(r.Counts[d][v]), "", "", "", "", "", "", "", "", "", "")
		}
	}
	for _, x := range r.Detokenizations {
		row("detokenize", u(x.Index), ts(x.Time), "", "", "", "detokenize", x.Decision, x.Principal, "", x.Reason, x.Ticket, x.Approver, strconv.FormatBool(x.BreakGlass), strconv.Itoa(x.Subjects), "")
	}
	for _, x := range r.Denials {
		row("deny", u(x.Index), ts(x.Time), "", "", "", x.Action, "deny", x.Principal, x.Code, "", "", "", "", "", "")
	}
	for _, x := range r.AlgorithmChanges {
		row("algorithm", u(x.Index), ts(x.Time), "", "", "", x.Action, "", x.Principal, "", "", "", x.Approver, "", "", x.Detail)
	}
	for _, x := range r.Governance {
		row("governance", u(x.Index), ts(x.Time), "", "", "", x.Action, x.Decision, x.Principal, "", x.Reason, "", x.Approver, "", "", x.Detail)
	}
	for _, x := range r.PolicyChanges {
		row("policy", u(x.Index), ts(x.Time), "", "", "", x.Action, "", x.Principal, "", "", "", "", "", "", x.Detail)
	}
	cw.Flush()
	return cw.Error()
}

// WriteText writes r for a terminal. Values from the log are quoted when
// they hold anything but printable characters.
func WriteText(w io.Writer, r Report) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "entries\t%d\n", r.Entries)
	if r.Entries > 0 {
		fmt.Fprintf(tw, "from\t%s\nto\t%s\n", ts(r.First), ts(r.Last))
	}
	for _, d := range Dimensions {
		fmt.Fprintf(tw, "\nby %s\n", d)
		for _, v := range sortedKeys(r.Counts[d]) {
			fmt.Fprintf(tw, "  %s\t%d\n", safe(v), r.Counts[d][v])
		}
	}
	fmt.Fprintf(tw, "\ndetokenizations\t%d\n", len(r.Detokenizations))
	for _, x := range r.Detokenizations {
		bg := ""
		if x.BreakGlass {
			bg = "BREAK-GLASS"
		}
		fmt.Fprintf(tw, "  #%d\t%s\t%s\t%s\treason=%s\tticket=%s\tapprover=%s\tsubjects=%d\t%s\n",
			x.Index, ts(x.Time), x.Decision, safe(x.Principal), safe(x.Reason), safe(x.Ticket), safe(x.Approver), x.Subjects, bg)
	}
	fmt.Fprintf(tw, "\ndenials\t%d\n", len(r.Denials))
	for _, x := range r.Denials {
		fmt.Fprintf(tw, "  #%d\t%s\t%s\t%s\t%s\n", x.Index, ts(x.Time), safe(x.Action), safe(x.Code), safe(x.Principal))
	}
	fmt.Fprintf(tw, "\npolicy changes\t%d\n", len(r.PolicyChanges))
	for _, x := range r.PolicyChanges {
		fmt.Fprintf(tw, "  #%d\t%s\t%s\t%s\t%s\n", x.Index, ts(x.Time), safe(x.Action), safe(x.Principal), safe(x.Detail))
	}
	fmt.Fprintf(tw, "\nalgorithm changes\t%d\n", len(r.AlgorithmChanges))
	for _, x := range r.AlgorithmChanges {
		fmt.Fprintf(tw, "  #%d\t%s\t%s\t%s\tapprover=%s\t%s\n", x.Index, ts(x.Time), safe(x.Action), safe(x.Principal), safe(x.Approver), safe(x.Detail))
	}
	fmt.Fprintf(tw, "\ngovernance\t%d\n", len(r.Governance))
	for _, x := range r.Governance {
		fmt.Fprintf(tw, "  #%d\t%s\t%s\t%s\t%s\tsigner=%s\treason=%s\t%s\n", x.Index, ts(x.Time), safe(x.Action), x.Decision, safe(x.Principal), safe(x.Approver), safe(x.Reason), safe(x.Detail))
	}
	if x := r.RulesInForce; x != nil {
		fmt.Fprintf(tw, "\nrules in force\t#%d\t%s\n", x.Index, safe(x.Detail))
	}
	fmt.Fprintf(tw, "\nrules changed without a signed application\t%d\n", len(r.UnsignedRuleChanges))
	for _, x := range r.UnsignedRuleChanges {
		fmt.Fprintf(tw, "  #%d\t%s\t%s\n", x.Index, ts(x.Time), safe(x.Detail))
	}
	return tw.Flush()
}

func sortedKeys(m map[string]uint64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func u(n uint64) string     { return strconv.FormatUint(n, 10) }
func ts(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// safe keeps control characters and tabs from the log out of the terminal.
func safe(s string) string {
	if s == "" {
		return "-"
	}
	if strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) || r == '\t' }) >= 0 {
		return strconv.Quote(s)
	}
	return s
}
