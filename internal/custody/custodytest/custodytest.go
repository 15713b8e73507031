// Package custodytest builds a custody.Service for tests over real parts: a
// SQLite store, a local keyring and a transparency log in the test's
// temporary directory, with the starter schema (or another) and the starter
// policies, for jurisdiction US. Nothing in it is for production use.
package custodytest

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/custos/custos"
	"github.com/custos/custos/internal/auditlog"
	"github.com/custos/custos/internal/custody"
	"github.com/custos/custos/internal/keys"
	"github.com/custos/custos/internal/policy"
	"github.com/custos/custos/internal/schema"
	"github.com/custos/custos/internal/starter"
	"github.com/custos/custos/internal/store/sqlite"
	"github.com/custos/custos/internal/token"
	"github.com/custos/custos/internal/vault"
	"golang.org/x/mod/sumdb/note"
)

// ReceiptKeyName names the custodian's key in the receipts of an Env.
const ReceiptKeyName = "custos-test-custodian"

// Options change an Env from its defaults.
type Options struct {
	// Schema is the schema file; the starter schema when nil.
	Schema []byte
	// Auditor, if set, makes the auditor from the log, such as a wrapper
	// that can be made to fail; the log itself when nil.
	Auditor func(*auditlog.Log) custos.Auditor
	// OnErase is custody's OnErase.
	OnErase func() error
}

// Env is a custody.Service and the parts it is made of.
type Env struct {
	Dir      string
	Service  *custody.Service
	Config   custody.Config // the Service's config, to build variants
	Store    *sqlite.Store
	Keyring  *keys.Local
	Log      *auditlog.Log
	LogKey   note.Verifier // verifies the log's checkpoints
	Receipts note.Verifier // verifies the Service's erasure receipts
}

// New builds an Env in t's temporary directory, closed when t ends.
func New(t testing.TB, o Options) *Env {
	t.Helper()
	e := &Env{Dir: t.TempDir()}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	kp := filepath.Join(e.Dir, "keyring.json")
	must(keys.Create(kp, "US"))
	var err error
	e.Keyring, err = keys.Open(kp)
	must(err)
	e.Store, err = sqlite.Open(filepath.Join(e.Dir, "custos.db"), "us-local")
	must(err)
	t.Cleanup(func() { e.Store.Close() })
	skey, vkey, err := auditlog.GenerateKey("custos/test")
	must(err)
	logSigner, err := note.NewSigner(skey)
	must(err)
	e.LogKey, err = note.NewVerifier(vkey)
	must(err)
	e.Log, err = auditlog.Open(context.Background(), auditlog.Config{
		Dir: filepath.Join(e.Dir, "log"), Origin: "custos/test", Signer: logSigner,
		BatchMaxAge: auditlog.MinBatchMaxAge, CheckpointInterval: 100 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler),
	})
	must(err)
	t.Cleanup(func() { e.Log.Close() })
	var auditor custos.Auditor = e.Log
	if o.Auditor != nil {
		auditor = o.Auditor(e.Log)
	}
	if o.Schema == nil {
		o.Schema = starter.Schema()
	}
	sc, err := schema.Parse("schema.yaml", o.Schema)
	must(err)
	set, err := policy.Parse(starter.Policies())
	must(err)
	tok, err := token.New(e.Keyring.TokenKey())
	must(err)
	signer, err := e.Keyring.Signer(ReceiptKeyName)
	must(err)
	e.Receipts, err = e.Keyring.Verifier(ReceiptKeyName)
	must(err)
	e.Config = custody.Config{
		Jurisdiction: "US", Schema: sc, Policy: policy.NewEngine(set, "US"),
		Vault: vault.New(e.Keyring, "US"), Store: e.Store, Tokens: tok,
		Audiences: []string{custos.OrgCustodian, custos.OrgOperator}, Auditor: auditor, History: e.Log,
		Receipts: signer, KEK: e.Keyring.Current, OnErase: o.OnErase,
	}
	e.Service, err = custody.New(e.Config)
	must(err)
	return e
}

// With returns a Service like e's with change applied to its config.
func (e *Env) With(t testing.TB, change func(*custody.Config)) *custody.Service {
	t.Helper()
	cfg := e.Config
	change(&cfg)
	svc, err := custody.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// Entries returns every entry on the log, decoded.
func (e *Env) Entries(t testing.TB) []custos.AuditEntry {
	t.Helper()
	var out []custos.AuditEntry
	err := e.Log.Entries(context.Background(), 0, e.Log.Size(), func(_ uint64, b []byte) bool {
		en, err := custos.ParseAuditEntry(b)
		if err != nil {
			t.Fatalf("entry %d does not parse: %v", len(out), err)
		}
		out = append(out, en)
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
