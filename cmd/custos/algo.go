package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/custos/custos/internal/algo"
	"github.com/custos/custos/internal/notekey"
	"github.com/custos/custos/internal/safefile"
)

const algoUse = `custos algo keygen --name NAME --dir DIR
    custos algo sign --key FILE --manifest FILE --module FILE --source FILE --out FILE
    custos algo submit --server URL --token TOKEN|--token-file FILE --bundle FILE
    custos algo approve --server URL --token TOKEN|--token-file FILE --key FILE --name NAME[@VERSION|@sha256:DIGEST] [--module FILE]
    custos algo list --server URL --token TOKEN|--token-file FILE
    custos algo retire --server URL --token TOKEN|--token-file FILE --name NAME[@VERSION|@sha256:DIGEST]
    custos algo train --server URL --token TOKEN|--token-file FILE --name NAME
    custos algo recommend --server URL --token TOKEN|--token-file FILE --name NAME --subject ID [--k N]
    custos algo replay --server URL --token TOKEN|--token-file FILE --index N`

// The operator signs its algorithm's bundles with its own key and submits
// them; reviewers approve them with theirs; a bundle runs once approved.
func (e *env) algo(ctx context.Context, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "keygen":
			return e.algoKeygen(args[1:])
		case "sign":
			return e.algoSign(args[1:])
		case "submit":
			return e.algoSubmit(ctx, args[1:])
		case "approve":
			return e.algoApprove(ctx, args[1:])
		case "list":
			return e.algoList(ctx, args[1:])
		case "retire":
			return e.algoRetire(ctx, args[1:])
		case "train":
			return e.algoTrain(ctx, args[1:])
		case "recommend":
			return e.algoRecommend(ctx, args[1:])
		case "replay":
			return e.algoReplay(ctx, args[1:])
		}
	}
	fmt.Fprintf(e.stderr, "Usage: %s\n", algoUse)
	return errUsage
}

func (e *env) algoKeygen(args []string) error {
	return e.keygen("algo", "the key's name, such as operator.example or a reviewer's name", args)
}

// keygen writes a note key pair: the algo and governance keygen commands.
func (e *env) keygen(cmd, nameUse string, args []string) error {
	fs := e.flags(cmd+" keygen", "custos "+cmd+" keygen --name NAME --dir DIR")
	name := fs.String("name", "", nameUse)
	dir := fs.String("dir", "", "directory for NAME.key (mode 0600) and NAME.vkey")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *name == "" || *dir == "" {
		fs.Usage()
		return errUsage
	}
	skey, vkey, err := notekey.Generate(*name, cmd+" key")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		return err
	}
	keyPath := filepath.Join(*dir, *name+".key")
	if err := safefile.Create(keyPath, []byte(skey+"\n"), 0o600); err != nil {
		return fmt.Errorf("couldn't write the key (it is never overwritten): %w", err)
	}
	vkeyPath := filepath.Join(*dir, *name+".vkey")
	if err := os.WriteFile(vkeyPath, []byte(vkey+"\n"), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "wrote %s and %s\n", keyPath, vkeyPath)
	return nil
}

func (e *env) algoSign(args []string) error {
	fs := e.flags("algo sign", "custos algo sign --key FILE --manifest FILE --module FILE --source FILE --out FILE")
	keyPath := fs.String("key", "", "the operator's signer key file")
	manifestPath := fs.String("manifest", "", "the manifest (JSON; its digests are filled in)")
	modulePath := fs.String("module", "", "the WebAssembly module")
	sourcePath := fs.String("source", "", "the archive of the module's source, for reviewers")
	out := fs.String("out", "", "the bundle file to write")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *keyPath == "" || *manifestPath == "" || *modulePath == "" || *sourcePath == "" || *out == "" {
		fs.Usage()
		return errUsage
	}
	signer, err := notekey.ReadSigner(*keyPath, "operator key")
	if err != nil {
		return err
	}
	raw, err := safefile.ReadCapped(*manifestPath, algo.MaxManifestSize)
	if err != nil {
		return err
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.DisallowUnknownFields()
	var m algo.Manifest
	if err := d.Decode(&m); err != nil {
		return fmt.Errorf("malformed manifest %s: %w", *manifestPath, err)
	}
	module, err := safefile.ReadCapped(*modulePath, algo.MaxModuleSize)
	if err != nil {
		return err
	}
	source, err := os.ReadFile(*sourcePath)
	if err != nil {
		return err
	}
	m.SourceSHA256 = algo.Digest(source)
	b, err := algo.Sign(m, module, signer)
	if err != nil {
		return err
	}
	enc, err := json.Marshal(b)
	if err != nil {
		return err
	}
	if err := safefile.Replace(*out, enc, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "wrote %s: %s %s, module sha256 %s, signed by %s\n", *out, m.Name, m.Version, algo.Digest(module), signer.Name())
	return nil
}
