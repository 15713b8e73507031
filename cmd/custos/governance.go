package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/custos/custos/internal/governance"
	"github.com/custos/custos/internal/notekey"
	"github.com/custos/custos/internal/safefile"
	"go.yaml.in/yaml/v3"
	"golang.org/x/mod/sumdb/note"
)

// The commands of governance: proposals to change the rules, their
// signatures, and the monitor's suspension of the operator.

const (
	proposeUse = "custos propose --server URL --token TOKEN|--token-file FILE --kind policy --dir NEWDIR | --kind schema|algorithms|signers|flows|locations --file NEWFILE"
	signUse    = "custos approve --server URL --token TOKEN|--token-file FILE --key FILE --proposal ID"
	suspendUse = "custos suspend --server URL --token TOKEN|--token-file FILE --key FILE [--principal ID ...] --reason TEXT"
	liftUse    = "custos lift --server URL --token TOKEN|--token-file FILE --key FILE [--principal ID ...] --reason TEXT"
	listPUse   = "custos proposals --server URL --token TOKEN|--token-file FILE"
)

func (e *env) governance(args []string) error {
	if len(args) > 0 && args[0] == "keygen" {
		return e.keygen("governance", "the key's name, such as custodian-alice or monitor-1", args[1:])
	}
	fmt.Fprintln(e.stderr, "Usage: custos governance keygen --name NAME --dir DIR")
	return errUsage
}

// proposalReply is a proposal with the audit entry of a change to it.
type proposalReply struct {
	governance.View
	AuditIndex uint64 `json:"audit_index"`
}

func (e *env) propose(ctx context.Context, args []string) error {
	fs := e.flags("propose", proposeUse+"\n\nExample:\n    custos propose --server http://127.0.0.1:8080 --token $CUSTODIAN --kind policy --dir ./new-policies")
	af := newAPIFlags(fs)
	kind := fs.String("kind", "", "what the proposal changes: policy, schema, algorithms, signers, flows or locations")
	file := fs.String("file", "", "the new schema file (--kind schema), the new flows file (--kind flows), or a YAML file listing the reviewers' .vkey files and the approvals a bundle needs (--kind algorithms: \"reviewers: [alice.vkey, bob.vkey]\" and \"approvals: 2\"), or one listing the governance signers' .vkey files by role (--kind signers: \"signers: {custodian: [a.vkey], monitor: [m.vkey]}\", \"require: [custodian, monitor]\", \"suspender: monitor\"), or one listing the storage locations where the data may reside (--kind locations: \"permitted_locations: [us-east-1, us-west-2]\")")
	dir := fs.String("dir", "", "the directory of the whole new policy set, its *.cedar files (--kind policy)")
	a, err := connect(fs, af, args, func() bool {
		k := governance.Kind(*kind)
		return (k == governance.KindPolicy) == (*dir == "") || (k == governance.KindPolicy) == (*file != "") || !slices.Contains(governance.Kinds, k)
	})
	if err != nil {
		return err
	}
	k := governance.Kind(*kind)
	c, err := readContent(k, *file, *dir)
	if err != nil {
		return err
	}
	body, err := json.Marshal(map[string]any{"kind": k, "files": c.Files()})
	if err != nil {
		return err
	}
	var p proposalReply
	if err := a.do(ctx, "POST", "/v1/proposals", body, &p); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "proposal %s: %s %s -> %s, %s; audit index %d\n%s", p.ID, p.Kind, p.Current, p.Proposed, p.State, p.AuditIndex, p.Diff)
	fmt.Fprintf(e.stdout, "It takes effect once signed by: %s. Each signer runs:\n    custos approve --server %s --token TOKEN --key KEYFILE --proposal %s\n",
		strings.Join(p.Missing, ", "), a.server, p.ID)
	return nil
}

// readContent reads the proposed content of kind k: the signer set,
// reviewer set or permitted locations file lists, the schema or flows
// file, or the *.cedar files of the policy directory.
func readContent(k governance.Kind, file, dir string) (governance.Content, error) {
	c := governance.Content{}
	if k == governance.KindSigners {
		s, err := readSigners(file)
		if err != nil {
			return nil, err
		}
		c[governance.SignersFile] = s.Marshal()
		return c, nil
	}
	if k == governance.KindAlgorithms {
		a, err := readReviewers(file)
		if err != nil {
			return nil, err
		}
		c[governance.AlgorithmsFile] = a.Marshal()
		return c, nil
	}
	if k == governance.KindLocations {
		l, err := readLocations(file)
		if err != nil {
			return nil, err
		}
		c[governance.LocationsFile] = l.Marshal()
		return c, nil
	}
	if name, ok := map[governance.Kind]string{governance.KindSchema: governance.SchemaFile, governance.KindFlows: governance.FlowsFile}[k]; ok {
		data, err := safefile.ReadCapped(file, governance.MaxContent)
		if err != nil {
			return nil, fmt.Errorf("couldn't read the %s: %w", k, err)
		}
		c[name] = data
		return c, nil
	}
	c, err := governance.ReadPolicyDir(dir)
	if err != nil {
		return nil, err
	}
	if len(c) == 0 {
		return nil, fmt.Errorf("%s holds no .cedar file: a policy proposal is the whole new set", dir)
	}
	return c, nil
}

// readReviewers reads a proposed reviewer set: a YAML file listing the
// reviewers' .vkey files (relative to it) and the approvals a bundle needs.
func readReviewers(file string) (governance.Algorithms, error) {
	data, err := safefile.ReadCapped(file, 64<<10)
	if err != nil {
		return governance.Algorithms{}, fmt.Errorf("couldn't read the reviewer set: %w", err)
	}
	var in struct {
		Reviewers []string `yaml:"reviewers"`
		Approvals int      `yaml:"approvals"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&in); err != nil {
		return governance.Algorithms{}, fmt.Errorf("%s: want \"reviewers: [FILE.vkey, ...]\" and \"approvals: N\": %w", file, err)
	}
	keys, err := readVkeys(file, in.Reviewers, "reviewer key")
	if err != nil {
		return governance.Algorithms{}, err
	}
	return governance.Algorithms{Reviewers: keys, Approvals: in.Approvals}, nil
}

// readLocations reads proposed permitted locations: a YAML file listing
// the storage location labels as custos.yaml does.
func readLocations(file string) (governance.Locations, error) {
	data, err := safefile.ReadCapped(file, 64<<10)
	if err != nil {
		return governance.Locations{}, fmt.Errorf("couldn't read the permitted locations: %w", err)
	}
	var in struct {
		Permitted []string `yaml:"permitted_locations"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&in); err != nil {
		return governance.Locations{}, fmt.Errorf("%s: want \"permitted_locations: [LABEL, ...]\": %w", file, err)
	}
	return governance.Locations{Permitted: in.Permitted}, nil
}

// readSigners reads a proposed signer set: a YAML file listing the
// signers' .vkey files (relative to it) by role, the roles required and
// the suspender role.
func readSigners(file string) (governance.Signers, error) {
	data, err := safefile.ReadCapped(file, 64<<10)
	if err != nil {
		return governance.Signers{}, fmt.Errorf("couldn't read the signer set: %w", err)
	}
	var in struct {
		Signers   map[string][]string `yaml:"signers"`
		Require   []string            `yaml:"require"`
		Suspender string              `yaml:"suspender"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&in); err != nil {
		return governance.Signers{}, fmt.Errorf("%s: want \"signers: {ROLE: [FILE.vkey, ...]}\", \"require: [ROLE, ...]\" and \"suspender: ROLE\": %w", file, err)
	}
	s := governance.Signers{Roles: map[string][]string{}, Require: in.Require, Suspender: in.Suspender}
	for role, paths := range in.Signers {
		keys, err := readVkeys(file, paths, "governance key")
		if err != nil {
			return governance.Signers{}, err
		}
		s.Roles[role] = keys
	}
	return s, nil
}

// readVkeys reads the note verifier keys in the files paths names,
// relative to the directory of file.
func readVkeys(file string, paths []string, what string) ([]string, error) {
	var out []string
	for _, p := range paths {
		if !filepath.IsAbs(p) {
			p = filepath.Join(filepath.Dir(file), p)
		}
		vkey, err := notekey.Read(p, what, false)
		if err != nil {
			return nil, err
		}
		out = append(out, vkey)
	}
	return out, nil
}

func (e *env) approve(ctx context.Context, args []string) error {
	fs := e.flags("approve", signUse+"\n\nExample:\n    custos approve --server http://127.0.0.1:8080 --token $MONITOR --key monitor/monitor-1.key --proposal 3f2a9c0d1e4b5a67")
	af := newAPIFlags(fs)
	keyPath := fs.String("key", "", "the signer's governance key file (custos governance keygen)")
	id := fs.String("proposal", "", "the proposal's id, as custos propose printed it")
	a, err := connect(fs, af, args, func() bool { return *keyPath == "" || *id == "" })
	if err != nil {
		return err
	}
	signer, err := notekey.ReadSigner(*keyPath, "governance key")
	if err != nil {
		return err
	}
	var v governance.View
	if err := a.do(ctx, "GET", "/v1/proposals/"+url.PathEscape(*id), nil, &v); err != nil {
		return err
	}
	p, err := checkProposal(*id, v)
	if err != nil {
		return fmt.Errorf("%w: nothing signed", err)
	}
	line, err := notekey.SignLine([]byte(v.Text), signer)
	if err != nil {
		return err
	}
	body, err := json.Marshal(map[string]string{"signature": line})
	if err != nil {
		return err
	}
	var r proposalReply
	if err := a.do(ctx, "POST", "/v1/proposals/"+url.PathEscape(*id)+"/signatures", body, &r); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "signed proposal %s (%s %s -> %s) as %s; audit index %d\n%s", r.ID, p.Kind, p.Current, p.Proposed, signer.Name(), r.AuditIndex, p.Diff)
	if r.State == governance.StateApplied {
		fmt.Fprintf(e.stdout, "applied: the proposed %s is in force\n", p.Kind)
	} else {
		fmt.Fprintf(e.stdout, "%s: waiting for a signature of %s\n", r.State, strings.Join(r.Missing, ", "))
	}
	return nil
}

// checkProposal checks, without trusting the server, that v is the
// proposal id names and that its files are the ones its text names.
func checkProposal(id string, v governance.View) (*governance.Proposal, error) {
	p, err := governance.ParseProposal([]byte(v.Text))
	if err != nil {
		return nil, fmt.Errorf("the server's proposal text: %w", err)
	}
	if governance.TextID([]byte(v.Text)) != id {
		return nil, fmt.Errorf("the server's proposal text is not proposal %s", id)
	}
	if governance.Digest(governance.ContentOf(v.Files)) != p.Proposed {
		return nil, fmt.Errorf("the server's proposed files are not the ones proposal %s names", id)
	}
	return p, nil
}

func (e *env) proposals(ctx context.Context, args []string) error {
	fs := e.flags("proposals", listPUse+"\n\nExample:\n    custos proposals --server http://127.0.0.1:8080 --token $MONITOR")
	af := newAPIFlags(fs)
	a, err := connect(fs, af, args, nil)
	if err != nil {
		return err
	}
	var list struct {
		Proposals []governance.View `json:"proposals"`
	}
	if err := a.do(ctx, "GET", "/v1/proposals", nil, &list); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tSTATE\tSIGNED BY\tWAITING FOR\tSUBMITTED\tPROPOSED")
	for _, p := range list.Proposals {
		var by []string
		for _, s := range p.Signers {
			by = append(by, s.Name+" ("+s.Role+")")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.ID, p.Kind, p.State, orDash(strings.Join(by, ", ")), orDash(strings.Join(p.Missing, ", ")), p.Submitted.Format(time.RFC3339), p.Proposed)
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// stringList is a flag that may be given several times.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func (e *env) suspend(ctx context.Context, args []string) error {
	return e.suspension(ctx, governance.Suspend, suspendUse, args)
}

func (e *env) lift(ctx context.Context, args []string) error {
	return e.suspension(ctx, governance.Lift, liftUse, args)
}

// suspension signs and posts a statement of action: it names the state it
// changes, as the server serves it, so that it applies once.
func (e *env) suspension(ctx context.Context, action, use string, args []string) error {
	fs := e.flags(action, use+"\n\nExample:\n    custos "+action+" --server http://127.0.0.1:8080 --token $MONITOR --key monitor/monitor-1.key --reason \"breach under review\"")
	af := newAPIFlags(fs)
	keyPath := fs.String("key", "", "the monitor's governance key file (custos governance keygen)")
	reason := fs.String("reason", "", "why, in one line; recorded on the audit log")
	var principals stringList
	fs.Var(&principals, "principal", "an operator principal's id; repeat for several; none for all of the operator's principals")
	a, err := connect(fs, af, args, func() bool { return *keyPath == "" || *reason == "" })
	if err != nil {
		return err
	}
	signer, err := notekey.ReadSigner(*keyPath, "governance key")
	if err != nil {
		return err
	}
	var cur governance.SuspensionState
	if err := a.do(ctx, "GET", "/v1/suspension", nil, &cur); err != nil {
		return err
	}
	st := governance.Suspension{Deployment: cur.Deployment, Action: action, Reason: *reason, Previous: cur.Digest, Time: time.Now().UTC()}
	if len(principals) > 0 {
		st.Principals = slices.Compact(slices.Sorted(slices.Values(principals)))
	}
	if err := st.Check(); err != nil {
		return fmt.Errorf("couldn't make the statement: %w", err)
	}
	msg, err := note.Sign(&note.Note{Text: string(st.Text())}, signer)
	if err != nil {
		return fmt.Errorf("couldn't sign the statement: %w", err)
	}
	body, err := json.Marshal(map[string]string{"statement": string(msg)})
	if err != nil {
		return err
	}
	var now struct {
		governance.SuspensionState
		AuditIndex uint64 `json:"audit_index"`
	}
	if err := a.do(ctx, "POST", "/v1/suspension", body, &now); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s signed by %s; suspended now: %s; audit index %d\n", action, signer.Name(), suspendedLine(now.SuspensionState), now.AuditIndex)
	return nil
}

// suspendedLine says who is suspended.
func suspendedLine(s governance.SuspensionState) string {
	switch {
	case s.All:
		return "every principal of the operator"
	case len(s.Principals) > 0:
		return strings.Join(s.Principals, ", ")
	}
	return "no one"
}
