package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/custos/custos/internal/auditlog"
	"github.com/custos/custos/internal/notekey"
	"github.com/custos/custos/internal/safefile"
	"github.com/custos/custos/internal/verifier"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

const auditUse = `custos audit verify --log URL --key FILE [--state FILE] [--witness FILE ...] [--quorum N]
    custos audit prove --log URL --key FILE --index N [--witness FILE ...] [--quorum N]
    custos audit report --log URL --key FILE [--state FILE] [--format text|json|csv]`

func (e *env) audit(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprintf(e.stderr, "Usage: %s\n", auditUse)
		return errUsage
	}
	switch args[0] {
	case "verify":
		return e.auditVerify(ctx, args[1:], false)
	case "report":
		return e.auditVerify(ctx, args[1:], true)
	case "prove":
		return e.auditProve(ctx, args[1:])
	}
	fmt.Fprintf(e.stderr, "Usage: %s\n", auditUse)
	return errUsage
}

// repeated is a flag that may be given several times.
type repeated []string

func (r *repeated) String() string     { return strings.Join(*r, ",") }
func (r *repeated) Set(s string) error { *r = append(*r, s); return nil }

// readKeyFile returns the one line of a public key file.
func readKeyFile(path string) (string, error) { return notekey.Read(path, "key file", false) }

// witnessVerifiers reads witnesses' verifier key files (cosignature/v1).
func witnessVerifiers(paths []string) ([]note.Verifier, error) {
	var vs []note.Verifier
	for _, path := range paths {
		k, err := readKeyFile(path)
		if err != nil {
			return nil, fmt.Errorf("couldn't read a witness key: %w", err)
		}
		v, err := fnote.NewVerifierForCosignatureV1(k)
		if err != nil {
			return nil, fmt.Errorf("%s is not a cosignature/v1 verifier key: %w", path, err)
		}
		vs = append(vs, v)
	}
	return vs, nil
}

func (e *env) auditVerify(ctx context.Context, args []string, report bool) error {
	name, use := "audit verify", "custos audit verify --log URL --key FILE [--state FILE] [--witness FILE ...] [--quorum N]"
	if report {
		name, use = "audit report", "custos audit report --log URL --key FILE [--state FILE] [--format text|json|csv]"
	}
	fs := e.flags(name, use)
	logURL := fs.String("log", "", "base URL of the log, such as http://127.0.0.1:8080/log/")
	keyPath := fs.String("key", "", "the log's verifier key file (log.vkey)")
	statePath := fs.String("state", "", "file keeping the last verified checkpoint; updated when all holds")
	var witnesses repeated
	fs.Var(&witnesses, "witness", "a witness's verifier key file (cosignature/v1); may be repeated")
	quorum := fs.Int("quorum", 0, "witness cosignatures required (default: every --witness)")
	format := fs.String("format", "text", "report format: text, json or csv")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *logURL == "" || *keyPath == "" {
		fs.Usage()
		return errUsage
	}
	cfg := verifier.Config{LogURL: *logURL, Quorum: *quorum}
	var err error
	if cfg.Verifier, err = auditlog.ReadVerifier(*keyPath); err != nil {
		return err
	}
	if cfg.Witnesses, err = witnessVerifiers(witnesses); err != nil {
		return err
	}
	if *statePath != "" {
		st, err := os.ReadFile(*statePath)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("couldn't read the state file: %w", err)
		}
		cfg.State = st
	}
	var rep verifier.Report
	if report {
		cfg.Each = rep.Add
	}
	res, err := verifier.Verify(ctx, cfg)
	if err != nil {
		return fmt.Errorf("the log does not verify: %w", err)
	}
	if *statePath != "" {
		if err := safefile.Replace(*statePath, res.NewState, 0o600); err != nil {
			return fmt.Errorf("couldn't save the state: %w", err)
		}
	}
	if report {
		switch *format {
		case "json":
			return verifier.WriteJSON(e.stdout, rep)
		case "csv":
			return verifier.WriteCSV(e.stdout, rep)
		case "text":
			return verifier.WriteText(e.stdout, rep)
		}
		return fmt.Errorf("--format must be text, json or csv")
	}
	fmt.Fprintf(e.stdout, "log verified: size %d, %d new entries checked from %d, root %x", res.Size, res.Entries, res.From, res.Root)
	if len(res.Witnesses) > 0 {
		fmt.Fprintf(e.stdout, ", cosigned by %s", strings.Join(res.Witnesses, ", "))
	}
	fmt.Fprintln(e.stdout)
	return nil
}

func (e *env) auditProve(ctx context.Context, args []string) error {
	fs := e.flags("audit prove", "custos audit prove --log URL --key FILE --index N [--witness FILE ...] [--quorum N]")
	logURL := fs.String("log", "", "base URL of the log")
	keyPath := fs.String("key", "", "the log's verifier key file (log.vkey)")
	index := fs.Int64("index", -1, "the audit index to prove, as given in Custos-Audit-Index")
	var witnesses repeated
	fs.Var(&witnesses, "witness", "a witness's verifier key file (cosignature/v1) that must have cosigned; may be repeated")
	quorum := fs.Int("quorum", 0, "witness cosignatures required (default: every --witness)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *logURL == "" || *keyPath == "" || *index < 0 {
		fs.Usage()
		return errUsage
	}
	v, err := auditlog.ReadVerifier(*keyPath)
	if err != nil {
		return err
	}
	p, err := verifier.Prove(ctx, *logURL, v, uint64(*index))
	if err != nil {
		return fmt.Errorf("no proof of entry %d: %w", *index, err)
	}
	// The log's key alone is the custodian's word: with witnesses, the
	// checkpoint the proof is against must carry their cosignatures.
	if len(witnesses) > 0 {
		ws, err := witnessVerifiers(witnesses)
		if err != nil {
			return err
		}
		n, err := note.Open(p.Checkpoint, note.VerifierList(append(ws, v)...))
		if err != nil {
			return fmt.Errorf("the checkpoint of the proof does not verify: %w", err)
		}
		cosigners := map[uint32]bool{}
		for _, sig := range n.Sigs {
			if sig.Name != v.Name() || sig.Hash != v.KeyHash() {
				cosigners[sig.Hash] = true
			}
		}
		got := len(cosigners)
		need := *quorum
		if need == 0 {
			need = len(witnesses)
		}
		if got < need {
			return fmt.Errorf("witness quorum not met on the proof's checkpoint: %d of %d", got, need)
		}
	}
	fmt.Fprintf(e.stdout, "entry %d is in the log of size %d (inclusion proof of %d hashes verified)\n%s\n", p.Index, p.Size, len(p.Proof), p.Entry)
	return nil
}
