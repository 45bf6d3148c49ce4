package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/lbd-project/lbd/internal/api"
	"github.com/lbd-project/lbd/pkg/config"
)

// Exit codes.
const (
	exitOK          = 0
	exitFailed      = 1
	exitUsage       = 2
	exitUnreachable = 3
	exitInvalid     = 4
)

// app is one lbctl invocation: its environment and global flags.
type app struct {
	stdin    io.Reader
	stdout   io.Writer
	stderr   io.Writer
	getenv   func(string) string
	stdinTTY bool
	now      func() time.Time

	g globals
	c *api.Client // the client of this invocation, once made
}

// globals are the flags every command accepts.
type globals struct {
	socket string
	server string
	token  string
	cacert string
	output string
	wait   time.Duration
}

// usageError is a mistake on the command line (exit 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// run runs the command line and returns the exit code.
func (a *app) run(ctx context.Context, args []string) int {
	err := a.dispatch(ctx, args)
	if err == nil {
		return exitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	code := exitCode(err)
	fmt.Fprintln(a.stderr, "lbctl:", err)
	if code == exitUsage {
		fmt.Fprintln(a.stderr, "Run 'lbctl help' for usage.")
	}
	return code
}

// exitCode maps an error to lbctl's exit codes.
func exitCode(err error) int {
	var ue *usageError
	var ce *config.Error
	var ae *api.Error
	var ie importError
	switch {
	case errors.As(err, &ie) && ie.invalid():
		return exitInvalid
	case errors.As(err, &ue):
		return exitUsage
	case errors.Is(err, api.ErrUnreachable):
		return exitUnreachable
	case errors.Is(err, api.ErrNoLeader):
		return exitNoLeader
	case errors.Is(err, errNotEverywhere):
		return exitNotEverywhere
	case errors.As(err, &ce):
		return exitInvalid
	case errors.As(err, &ae) && len(ae.Problems) > 0:
		return exitInvalid
	}
	return exitFailed
}

// dispatch finds the command and runs it.
func (a *app) dispatch(ctx context.Context, args []string) error {
	// Global flags may come before the verb too.
	fs := a.flags(&command{path: "lbctl", usage: "lbctl [global flags] COMMAND [args]"})
	fs.Usage = func() { a.printHelp(a.stdout, nil) }
	if err := fs.Parse(args); err != nil {
		return flagErr(err)
	}
	args = fs.Args()
	if len(args) == 0 {
		a.printHelp(a.stderr, nil)
		return usagef("no command")
	}
	cmd, rest, err := findCommand(commands(), args)
	if err != nil {
		return err
	}
	if cmd.run == nil {
		a.printHelp(a.stderr, cmd)
		name := strings.TrimPrefix(cmd.path, "lbctl ")
		if len(rest) == 0 {
			return usagef("%s: which one?", name)
		}
		return usagef("%s: unknown command %q", name, rest[0])
	}
	if err := cmd.run(ctx, a, cmd, rest); err != nil {
		return err
	}
	return a.reportApplied(ctx)
}

// flags returns cmd's flag set with the global flags registered.
func (a *app) flags(cmd *command) *flag.FlagSet {
	fs := flag.NewFlagSet(cmd.path, flag.ContinueOnError)
	fs.SetOutput(a.stderr)
	sock := a.getenv("LBD_SOCKET")
	if sock == "" {
		sock = config.DefaultSocket
	}
	if a.g.socket != "" {
		sock = a.g.socket
	}
	tok := a.g.token
	if tok == "" {
		tok = a.getenv("LBD_TOKEN")
	}
	srv := a.g.server
	if srv == "" {
		srv = a.getenv("LBD_SERVER")
	}
	out := a.g.output
	if out == "" {
		out = "table"
	}
	fs.StringVar(&a.g.socket, "socket", sock, "lbd's unix `socket` (env LBD_SOCKET)")
	fs.StringVar(&a.g.server, "server", srv, "lbd's TCP API `URL`, e.g. https://lb1:8443 (env LBD_SERVER); overrides --socket")
	fs.StringVar(&a.g.token, "token", tok, "bearer `token` for --server (env LBD_TOKEN)")
	fs.StringVar(&a.g.cacert, "cacert", a.g.cacert, "CA certificate `file` to verify an https --server")
	fs.DurationVar(&a.g.wait, "wait", a.g.wait, "after a change, wait up to `DURATION` until every node has applied it (exit 6 if not)")
	if !cmd.ownO {
		fs.StringVar(&a.g.output, "o", out, "output `format`: table, json or yaml")
	}
	fs.Usage = func() {
		fmt.Fprintf(a.stderr, "usage: %s\n\nflags:\n", cmd.usage)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags and positional arguments in any order; "--" ends the
// flags.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, flagErr(err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		// flag stops at "--" (consumed) or the first positional.
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func flagErr(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	return &usageError{err.Error()}
}

// nargs checks the number of positional arguments.
func nargs(cmd *command, args []string, min, max int) error {
	if len(args) < min || (max >= 0 && len(args) > max) {
		return usagef("usage: %s", cmd.usage)
	}
	return nil
}

// parseArgs parses cmd's flags and positional arguments, in any order, and
// checks that there are min to max (-1: any number) positional arguments,
// which it returns. define, if not nil, registers the command's own flags.
func (a *app) parseArgs(cmd *command, args []string, min, max int, define func(fs *flag.FlagSet)) ([]string, error) {
	fs := a.flags(cmd)
	if define != nil {
		define(fs)
	}
	pos, err := parse(fs, args)
	if err != nil {
		return nil, err
	}
	if err := nargs(cmd, pos, min, max); err != nil {
		return nil, err
	}
	return pos, nil
}

// begin is parseArgs followed by client: the start of every verb that
// talks to lbd without checking anything else first.
func (a *app) begin(cmd *command, args []string, min, max int, define func(fs *flag.FlagSet)) ([]string, *api.Client, error) {
	pos, err := a.parseArgs(cmd, args, min, max, define)
	if err != nil {
		return nil, nil, err
	}
	c, err := a.client()
	if err != nil {
		return nil, nil, err
	}
	return pos, c, nil
}

// client connects to lbd as the global flags say.
func (a *app) client() (*api.Client, error) {
	if err := a.checkOutput(); err != nil {
		return nil, err
	}
	if a.c != nil {
		return a.c, nil
	}
	if a.g.server == "" {
		c, err := api.NewClient(a.g.socket, "")
		a.c = c
		return c, err
	}
	if a.g.token == "" {
		return nil, usagef("--server needs --token (or LBD_TOKEN)")
	}
	var opts []api.ClientOption
	if a.g.cacert != "" {
		pem, err := os.ReadFile(a.g.cacert)
		if err != nil {
			return nil, fmt.Errorf("read --cacert: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, usagef("--cacert %s: no PEM certificate", a.g.cacert)
		}
		opts = append(opts, api.WithTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}))
	}
	c, err := api.NewClient(a.g.server, a.g.token, opts...)
	if err != nil {
		return nil, usagef("%v", err)
	}
	a.c = c
	return c, nil
}

func (a *app) checkOutput() error {
	switch strings.ToLower(a.g.output) {
	case "", "table", "json", "yaml":
		return nil
	}
	return usagef("-o %q: want table, json or yaml", a.g.output)
}
