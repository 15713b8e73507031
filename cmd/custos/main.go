// Command custos is a trusted data custodian: it holds a jurisdiction's user
// data sealed, releases each field in the form the custodian's policies
// allow, and records every decision before data leaves.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/custos/custos/internal/sandbox/worker"
	"k8s.io/klog/v2"
)

const usage = `custos is a trusted data custodian.

Usage:
    custos init DIR [--jurisdiction US] [--location LABEL] [--name NAME]
    custos serve --config DIR/custos.yaml [--listen 127.0.0.1:8080]
    custos demo [--listen 127.0.0.1:8080] [--dir DIR] [--users N] [--videos N] [--events N] [--seed S] [--script]
    custos load --server URL --token TOKEN [--users N] [--videos N] [--events N] [--seed S] [--concurrency C] [--jurisdiction CC]
    custos token mint --config DIR/custos.yaml --sub ID --org ORG --loc CC [--roles a,b] [--vetted] [--ttl 1h]
    custos keys rotate --config DIR/custos.yaml
    custos policy test [--config DIR/custos.yaml] FILE
    custos audit verify --log URL --key FILE [--state FILE] [--witness FILE ...] [--quorum N]
    custos audit prove --log URL --key FILE --index N [--witness FILE ...] [--quorum N]
    custos audit report --log URL --key FILE [--state FILE] [--format text|json|csv]
    custos witness keygen --name NAME --dir DIR
    custos witness serve --key FILE --log VKEYFILE [--log ...] --state DIR [--listen ADDR]
    custos algo keygen --name NAME --dir DIR
    custos algo sign --key FILE --manifest FILE --module FILE --source FILE --out FILE
    custos algo submit --server URL --token TOKEN --bundle FILE
    custos algo approve --server URL --token TOKEN --key FILE --name NAME[@VERSION] [--module FILE]
    custos algo list --server URL --token TOKEN
    custos algo retire --server URL --token TOKEN --name NAME[@VERSION]
    custos algo train --server URL --token TOKEN --name NAME
    custos algo recommend --server URL --token TOKEN --name NAME --subject ID [--k N]
    custos algo replay --server URL --token TOKEN --index N
    custos governance keygen --name NAME --dir DIR
    custos propose --server URL --token TOKEN --kind policy --dir NEWDIR | --kind schema|algorithms|signers|flows|locations --file NEWFILE
    custos approve --server URL --token TOKEN --key FILE --proposal ID
    custos proposals --server URL --token TOKEN
    custos suspend --server URL --token TOKEN --key FILE [--principal ID ...] --reason TEXT
    custos lift --server URL --token TOKEN --key FILE [--principal ID ...] --reason TEXT
    custos flow list --server URL --token TOKEN
    custos flow export --server URL --token TOKEN --name NAME [--cursor-file FILE] [--limit N] [--out FILE]
    custos flow samples --server URL --token TOKEN --name NAME [--after INDEX]
    custos bench [--duration 2s] [--concurrency 1,16] [--scenarios REGEXP|NAME,NAME] [--users N] [--json]
    custos bench --scale 1000,10000,100000 [--duration 2s] [--json]

Example:
    $ custos init ./us && custos serve --config ./us/custos.yaml --listen 127.0.0.1:8080
`

// env is what a run of the program sees of the world.
type env struct {
	stdout, stderr io.Writer
	log            *slog.Logger
}

func main() {
	worker.MaybeRun()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(Main(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// errUsage is a command-line mistake; usage has been printed.
var errUsage = errors.New("usage")

// Main runs custos with args and returns the exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	// The log library reports through klog; custos reports through slog.
	klog.LogToStderr(false)
	klog.SetOutput(io.Discard)
	e := &env{stdout: stdout, stderr: stderr, log: newLogger(stderr)}
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "init":
		err = e.init(rest)
	case "serve":
		err = e.serve(ctx, rest)
	case "demo":
		err = e.demo(ctx, rest)
	case "load":
		err = e.load(ctx, rest)
	case "token":
		err = e.token(rest)
	case "keys":
		err = e.keys(ctx, rest)
	case "policy":
		err = e.policy(rest)
	case "audit":
		err = e.audit(ctx, rest)
	case "witness":
		err = e.witness(ctx, rest)
	case "algo":
		err = e.algo(ctx, rest)
	case "governance":
		err = e.governance(rest)
	case "propose":
		err = e.propose(ctx, rest)
	case "approve":
		err = e.approve(ctx, rest)
	case "proposals":
		err = e.proposals(ctx, rest)
	case "suspend":
		err = e.suspend(ctx, rest)
	case "lift":
		err = e.lift(ctx, rest)
	case "flow":
		err = e.flow(ctx, rest)
	case "bench":
		err = e.bench(ctx, rest)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "custos: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errUsage), errors.Is(err, flag.ErrHelp):
		return 2
	case errors.Is(err, errFailed):
		return 1
	}
	fmt.Fprintf(stderr, "custos: %v\n", err)
	return 1
}

// errFailed is a run that said what failed already.
var errFailed = errors.New("failed")

func newLogger(w io.Writer) *slog.Logger {
	if isTerminal(w) {
		return slog.New(slog.NewTextHandler(w, nil))
	}
	return slog.New(slog.NewJSONHandler(w, nil))
}

// flags returns a FlagSet for a subcommand that prints its usage line.
func (e *env) flags(name, use string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "Usage: %s\n", use)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args, allowing positional arguments before flags, and
// returns the positional ones.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, errUsage
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}
