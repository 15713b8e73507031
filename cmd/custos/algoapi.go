package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/custos/custos"
	"github.com/custos/custos/internal/algo"
	"github.com/custos/custos/internal/custody"
	"github.com/custos/custos/internal/notekey"
	"github.com/custos/custos/internal/registry"
	"github.com/custos/custos/internal/safefile"
)

// The commands that work on a server's registry of algorithms.

const (
	submitUse  = "custos algo submit --server URL --token TOKEN|--token-file FILE --bundle FILE"
	approveUse = "custos algo approve --server URL --token TOKEN|--token-file FILE --key FILE --name NAME[@VERSION|@sha256:DIGEST] [--module FILE]"
	listUse    = "custos algo list --server URL --token TOKEN|--token-file FILE"
	retireUse  = "custos algo retire --server URL --token TOKEN|--token-file FILE --name NAME[@VERSION|@sha256:DIGEST]"
)

// maxReply bounds what the CLI reads of a server's answer.
const maxReply = 16 << 20

// api is a client of a custos server's API, as one principal.
type api struct {
	server *url.URL
	token  string
	http   *http.Client
}

// apiFlags are the flags of every command that talks to a server.
type apiFlags struct {
	server, token, tokenFile *string
}

func newAPIFlags(fs *flag.FlagSet) apiFlags {
	return apiFlags{
		server:    fs.String("server", "", "the custos server, such as http://127.0.0.1:8080"),
		token:     fs.String("token", "", "a bearer token of the principal acting (custos token mint, or the identity provider's)"),
		tokenFile: fs.String("token-file", "", "a file holding the token, instead of --token (keeps it out of the process list)"),
	}
}

// set reports whether the flags name a server and a token.
func (f apiFlags) set() bool { return *f.server != "" && (*f.token != "") != (*f.tokenFile != "") }

// api returns the client the flags describe.
func (f apiFlags) api() (*api, error) {
	u, err := url.Parse(*f.server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--server %q is not an http or https URL such as http://127.0.0.1:8080", *f.server)
	}
	tok := *f.token
	if *f.tokenFile != "" {
		b, err := safefile.ReadCapped(*f.tokenFile, 64<<10)
		if err != nil {
			return nil, fmt.Errorf("couldn't read --token-file: %w", err)
		}
		tok = string(b)
	}
	return &api{server: u, token: strings.TrimSpace(tok), http: &http.Client{Timeout: 5 * time.Minute}}, nil
}

// connect parses a command's args and returns the client its flags
// describe. Without a server and one token, or when bad (given) says the
// command's own flags are wrong, it prints the usage and returns errUsage.
func connect(fs *flag.FlagSet, af apiFlags, args []string, bad func() bool) (*api, error) {
	if _, err := parse(fs, args); err != nil {
		return nil, err
	}
	if !af.set() || bad != nil && bad() {
		fs.Usage()
		return nil, errUsage
	}
	return af.api()
}

// do sends a request and decodes a 2xx answer into out; any other answer
// is an error naming the server's code and detail, with a hint.
func (a *api) do(ctx context.Context, method, path string, body []byte, out any) error {
	resp, data, err := a.send(ctx, method, path, body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return problemError(resp.StatusCode, data)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("the server's answer is not what custos serves: %w", err)
	}
	return nil
}

// send sends a request and returns the answer, its body (at most
// maxReply bytes) read and closed, whatever its status.
func (a *api) send(ctx context.Context, method, path string, body []byte) (*http.Response, []byte, error) {
	path, query, _ := strings.Cut(path, "?")
	u := a.server.JoinPath(path)
	u.RawQuery = query
	req, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("couldn't reach the server: %w (is custos serve running at --server?)", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxReply))
	if err != nil {
		return nil, nil, fmt.Errorf("couldn't read the server's answer: %w", err)
	}
	return resp, data, nil
}

// hints say what to do about a refusal, by code.
var hints = map[string]string{
	custos.CodeUnauthenticated:  "check --token: mint one with custos token mint, or get one from the identity provider",
	custos.CodeForbidden:        "the token's principal may not do this under the deployment's policies or configuration",
	custos.CodeNotFound:         "check the name or id: custos algo list lists the algorithms, GET /v1/proposals the proposals",
	custos.CodeConflict:         "see the current state: custos algo list for a bundle, GET /v1/proposals/ID for a proposal, GET /v1/suspension for a suspension",
	custos.CodeInvalidSignature: "sign with a key the deployment lists in custos.yaml (under algorithms, or governance.signers), and change nothing after signing",
	custos.CodeTooLarge:         "the deployment caps bundles; ask the custodian",
	custos.CodeAuditUnavailable: "nothing changed; retry when the audit log is back",
	custos.CodeSuspended:        "the monitor has suspended this principal; see custos's GET /v1/suspension",
	custody.CodeAlgorithmFailed: "the algorithm failed or returned what may not leave; the server's log says why",
}

func problemError(status int, data []byte) error { return refusal(status, data, hints) }

// refusal is problemError with a hint from hints.
func refusal(status int, data []byte, hints map[string]string) error {
	var p struct {
		Code   string `json:"code"`
		Detail string `json:"detail"`
	}
	if json.Unmarshal(data, &p) != nil || p.Code == "" {
		return fmt.Errorf("the server answered %d %s", status, http.StatusText(status))
	}
	msg := fmt.Sprintf("the server refused (%d %s): %s", status, p.Code, p.Detail)
	if h, ok := hints[p.Code]; ok {
		msg += "\n  hint: " + h
	}
	return errors.New(msg)
}

// entryLine describes a bundle in one line.
func entryLine(en registry.Entry) string {
	return fmt.Sprintf("%s %s (sha256:%s): %s, %d of %d approvals", en.Name, en.Version, en.Digest, en.State, len(en.Approvers), en.Required)
}

// change is a bundle with the audit entry of a change to it.
type change struct {
	registry.Entry
	AuditIndex uint64 `json:"audit_index"`
}

func (e *env) algoSubmit(ctx context.Context, args []string) error {
	fs := e.flags("algo submit", submitUse+"\n\nExample:\n    custos algo submit --server http://127.0.0.1:8080 --token $OPERATOR --bundle covisit.bundle")
	af := newAPIFlags(fs)
	path := fs.String("bundle", "", "the bundle file custos algo sign wrote")
	a, err := connect(fs, af, args, func() bool { return *path == "" })
	if err != nil {
		return err
	}
	body, err := safefile.ReadCapped(*path, algo.MaxBundleSize)
	if err != nil {
		return fmt.Errorf("couldn't read the bundle: %w (write it with custos algo sign)", err)
	}
	var c change
	if err := a.do(ctx, "POST", "/v1/algorithms", body, &c); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "submitted %s; audit index %d\n", entryLine(c.Entry), c.AuditIndex)
	return nil
}

func (e *env) algoApprove(ctx context.Context, args []string) error {
	fs := e.flags("algo approve", approveUse+"\n\nExample:\n    custos algo approve --server http://127.0.0.1:8080 --token $CUSTODIAN --key alice/alice.key --name covisit@1.0.0")
	af := newAPIFlags(fs)
	keyPath := fs.String("key", "", "the reviewer's signer key file (custos algo keygen)")
	ref := fs.String("name", "", "the bundle: NAME, NAME@VERSION or NAME@sha256:DIGEST")
	modPath := fs.String("module", "", "optional: the module reviewed, which must be the one the manifest names")
	a, err := connect(fs, af, args, func() bool { return *keyPath == "" || *ref == "" })
	if err != nil {
		return err
	}
	_, _, digest, err := registry.ParseRef(*ref)
	if err != nil {
		return fmt.Errorf("--name %q: %s", *ref, custos.ErrorDetail(err))
	}
	signer, err := notekey.ReadSigner(*keyPath, "reviewer key")
	if err != nil {
		return err
	}
	var en registry.Entry
	if err := a.do(ctx, "GET", "/v1/algorithms/"+url.PathEscape(*ref), nil, &en); err != nil {
		return err
	}
	// What is signed is checked here, not taken from the server: the text
	// must be the digest's, and the digest the one asked for.
	text := []byte(en.Manifest)
	if algo.Digest(text) != en.Digest || (digest != "" && digest != en.Digest) {
		return fmt.Errorf("the server's manifest text for %s is not the bundle asked for: nothing signed", *ref)
	}
	m, err := algo.ParseManifest(text)
	if err != nil {
		return fmt.Errorf("the server's manifest for %s: %w: nothing signed", *ref, err)
	}
	if *modPath != "" {
		mod, err := safefile.ReadCapped(*modPath, algo.MaxModuleSize)
		if err != nil {
			return err
		}
		if got := algo.Digest(mod); got != m.ModuleSHA256 {
			return fmt.Errorf("%s has sha256 %s, the manifest names %s: it is not the module reviewed; nothing signed", *modPath, got, m.ModuleSHA256)
		}
	}
	line, err := algo.Approve(text, signer)
	if err != nil {
		return err
	}
	body, err := json.Marshal(map[string]string{"signature": line})
	if err != nil {
		return err
	}
	var c change
	if err := a.do(ctx, "POST", "/v1/algorithms/"+url.PathEscape(en.Ref())+"/approvals", body, &c); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "approved as %s: %s, module sha256:%s; audit index %d\n", signer.Name(), entryLine(c.Entry), m.ModuleSHA256, c.AuditIndex)
	return nil
}

func (e *env) algoList(ctx context.Context, args []string) error {
	fs := e.flags("algo list", listUse+"\n\nExample:\n    custos algo list --server http://127.0.0.1:8080 --token $CUSTODIAN")
	af := newAPIFlags(fs)
	a, err := connect(fs, af, args, nil)
	if err != nil {
		return err
	}
	var list struct {
		Algorithms []registry.Entry `json:"algorithms"`
	}
	if err := a.do(ctx, "GET", "/v1/algorithms", nil, &list); err != nil {
		return err
	}
	return writeList(e.stdout, list.Algorithms)
}

func writeList(w io.Writer, es []registry.Entry) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVERSION\tSTATE\tAPPROVALS\tAPPROVERS\tOPERATOR\tDIGEST\tMODULE")
	for _, en := range es {
		approvers := strings.Join(en.Approvers, ",")
		if approvers == "" {
			approvers = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%s\t%s\tsha256:%s\tsha256:%s\n", en.Name, en.Version, en.State, len(en.Approvers), en.Required, approvers, en.Operator, en.Digest, en.ModuleSHA256)
	}
	return tw.Flush()
}

func (e *env) algoRetire(ctx context.Context, args []string) error {
	fs := e.flags("algo retire", retireUse+"\n\nExample:\n    custos algo retire --server http://127.0.0.1:8080 --token $CUSTODIAN --name covisit@1.0.0")
	af := newAPIFlags(fs)
	ref := fs.String("name", "", "the bundle: NAME, NAME@VERSION or NAME@sha256:DIGEST")
	a, err := connect(fs, af, args, func() bool { return *ref == "" })
	if err != nil {
		return err
	}
	var c change
	if err := a.do(ctx, "POST", "/v1/algorithms/"+url.PathEscape(*ref)+"/retire", nil, &c); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "retired %s; audit index %d\n", entryLine(c.Entry), c.AuditIndex)
	return nil
}
