package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/custos/custos/internal/auditlog"
	"github.com/custos/custos/internal/safefile"
	"github.com/custos/custos/internal/witness"
)

const witnessUse = `custos witness keygen --name NAME --dir DIR
    custos witness serve --key FILE --log VKEYFILE [--log VKEYFILE ...] --state DIR [--listen 127.0.0.1:8090]`

// A witness is run by a monitor, apart from the custodian: its own key, its
// own state of the last checkpoint it cosigned of each log.
func (e *env) witness(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprintf(e.stderr, "Usage: %s\n", witnessUse)
		return errUsage
	}
	switch args[0] {
	case "keygen":
		return e.witnessKeygen(args[1:])
	case "serve":
		return e.witnessServe(ctx, args[1:])
	}
	fmt.Fprintf(e.stderr, "Usage: %s\n", witnessUse)
	return errUsage
}

func (e *env) witnessKeygen(args []string) error {
	fs := e.flags("witness keygen", "custos witness keygen --name NAME --dir DIR")
	name := fs.String("name", "", "the witness's name, such as witness.monitor.example")
	dir := fs.String("dir", "", "directory for witness.key (mode 0600) and witness.vkey")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *name == "" || *dir == "" {
		fs.Usage()
		return errUsage
	}
	skey, vkey, err := witness.GenerateKey(*name)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		return err
	}
	keyPath := filepath.Join(*dir, "witness.key")
	if err := safefile.Create(keyPath, []byte(skey+"\n"), 0o600); err != nil {
		return fmt.Errorf("couldn't write the witness key (it is never overwritten): %w", err)
	}
	if err := os.WriteFile(filepath.Join(*dir, "witness.vkey"), []byte(vkey+"\n"), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "wrote %s and %s\n", keyPath, filepath.Join(*dir, "witness.vkey"))
	return nil
}

func (e *env) witnessServe(ctx context.Context, args []string) error {
	fs := e.flags("witness serve", "custos witness serve --key FILE --log VKEYFILE [--log VKEYFILE ...] --state DIR [--listen 127.0.0.1:8090]")
	keyPath := fs.String("key", "", "the witness's signer key file (witness.key)")
	var logs repeated
	fs.Var(&logs, "log", "verifier key file (log.vkey) of a log to witness; may be repeated")
	state := fs.String("state", "", "directory keeping the last cosigned checkpoint of each log")
	listen := fs.String("listen", "127.0.0.1:8090", "address to listen on")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *keyPath == "" || len(logs) == 0 || *state == "" {
		fs.Usage()
		return errUsage
	}
	signer, err := witness.ReadSigner(*keyPath)
	if err != nil {
		return err
	}
	cfg := witness.Config{Signer: signer, StateDir: *state, Logger: e.log}
	for _, l := range logs {
		v, err := auditlog.ReadVerifier(l)
		if err != nil {
			return err
		}
		cfg.Logs = append(cfg.Logs, witness.Log{Origin: v.Name(), Verifier: v})
	}
	w, err := witness.New(cfg)
	if err != nil {
		return err
	}
	defer w.Close()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("couldn't listen: %w (pick another address with --listen)", err)
	}
	srv := &http.Server{Handler: w.Handler(), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	e.log.Info("witness serving", "addr", ln.Addr().String(), "logs", len(cfg.Logs))
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
