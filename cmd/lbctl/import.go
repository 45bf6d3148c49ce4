package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/lbd-project/lbd/internal/keepalived"
	"github.com/lbd-project/lbd/pkg/config"
)

// runImportKeepalived converts a keepalived.conf: the YAML goes to stdout
// (or -o FILE), the warnings to stderr. The result always passes
// config.Parse, so it can be fed to `lbctl validate` and `lbctl apply`.
func runImportKeepalived(_ context.Context, a *app, cmd *command, args []string) error {
	var (
		out  string
		opts keepalived.Options
	)
	pos, err := a.parseArgs(cmd, args, 1, 1, func(fs *flag.FlagSet) {
		fs.StringVar(&out, "o", "", "write the YAML to `FILE` instead of stdout")
		fs.StringVar(&opts.NodeName, "node", "", "name of the director node (default "+keepalived.DefaultNodeName+")")
		fs.StringVar(&opts.NodeAddress, "address", "", "the director's own `address` (default from the vrrp_instance)")
	})
	if err != nil {
		return err
	}
	res, err := keepalived.ConvertFile(pos[0], opts)
	if err != nil {
		return importError{err}
	}
	for _, w := range res.Warnings {
		fmt.Fprintln(a.stderr, "warning:", w)
	}
	if out == "" {
		_, err := a.stdout.Write(res.YAML)
		return err
	}
	if err := os.WriteFile(out, res.YAML, 0o644); err != nil {
		return fmt.Errorf("import: %w", err)
	}
	fmt.Fprintf(a.stderr, "wrote %s (%d services, %d warnings)\n", out, len(res.Config.Services()), len(res.Warnings))
	return nil
}

// importError is a keepalived.conf that cannot be converted.
type importError struct{ err error }

func (e importError) Error() string { return e.err.Error() }
func (e importError) Unwrap() error { return e.err }

// invalid reports whether the file itself is at fault (exit 4), rather
// than reading it.
func (e importError) invalid() bool {
	var se *keepalived.SyntaxError
	var ce *config.Error
	return errors.As(e.err, &se) || errors.As(e.err, &ce)
}
