package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/lbd-project/lbd/internal/api"
	"github.com/lbd-project/lbd/pkg/config"
)

// readConfigFile reads -f FILE ("-" is stdin), bounded like config.Load.
func (a *app) readConfigFile(file string) ([]byte, string, error) {
	if file == "" {
		return nil, "", usagef("-f FILE is required")
	}
	r := a.stdin
	name := "stdin"
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return nil, "", fmt.Errorf("read configuration: %w", err)
		}
		defer f.Close()
		r, name = f, file
	}
	data, err := io.ReadAll(io.LimitReader(r, config.MaxFileSize+1))
	if err != nil {
		return nil, "", fmt.Errorf("read %s: %w", file, err)
	}
	if len(data) > config.MaxFileSize {
		return nil, "", fmt.Errorf("%s is larger than %d bytes", file, config.MaxFileSize)
	}
	return data, name, nil
}

// fileFlag registers -f FILE, the configuration file to read.
func fileFlag(fs *flag.FlagSet, file *string) {
	fs.StringVar(file, "f", "", "configuration `file` (- for stdin)")
}

// configInput is the configuration file a verb was given with -f.
type configInput struct {
	file string // as given: a path or "-"
	name string // what to call it in errors
	data []byte
}

// readConfigArgs parses the flags of a verb that takes -f FILE and no
// positional arguments, then reads the file; define, if not nil,
// registers the verb's other flags.
func (a *app) readConfigArgs(cmd *command, args []string, define func(fs *flag.FlagSet)) (configInput, error) {
	var in configInput
	_, err := a.parseArgs(cmd, args, 0, 0, func(fs *flag.FlagSet) {
		fileFlag(fs, &in.file)
		if define != nil {
			define(fs)
		}
	})
	if err != nil {
		return in, err
	}
	in.data, in.name, err = a.readConfigFile(in.file)
	return in, err
}

func runDiff(ctx context.Context, a *app, cmd *command, args []string) error {
	in, err := a.readConfigArgs(cmd, args, nil)
	if err != nil {
		return err
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	d, err := c.Diff(ctx, in.data, in.name)
	if err != nil {
		return err
	}
	return a.emit(d, func(w io.Writer) { printDiff(w, d) })
}

func runApply(ctx context.Context, a *app, cmd *command, args []string) error {
	var yes, dry bool
	in, err := a.readConfigArgs(cmd, args, func(fs *flag.FlagSet) {
		fs.BoolVar(&yes, "yes", false, "apply without asking")
		fs.BoolVar(&dry, "dry-run", false, "only show what would change")
	})
	if err != nil {
		return err
	}
	if in.file == "-" && !yes && !dry {
		return usagef("apply -f - reads the file from stdin, so it cannot ask: add --yes")
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	d, err := c.Diff(ctx, in.data, in.name)
	if err != nil {
		return err
	}
	human := a.g.output == "" || a.g.output == "table"
	if human {
		printDiff(a.stdout, d)
	}
	if dry || len(d.Changes) == 0 {
		if !human {
			return a.emit(d, nil)
		}
		return nil
	}
	if !yes {
		if !a.stdinTTY {
			return usagef("not a terminal: cannot ask for confirmation; use --yes (or --dry-run)")
		}
		if !a.confirm(fmt.Sprintf("Apply %d change(s)? [y/N] ", len(d.Changes))) {
			return errors.New("not applied")
		}
	}
	applied, err := c.Apply(ctx, in.data, in.name)
	if err != nil {
		return err
	}
	if !human {
		return a.emit(applied, nil)
	}
	fmt.Fprintf(a.stdout, "applied %d change(s)\n", len(applied.Changes))
	return nil
}

// confirm asks a yes/no question on the terminal; anything but yes,
// end of input included, is no.
func (a *app) confirm(q string) bool {
	fmt.Fprint(a.stderr, q)
	line, _ := bufio.NewReader(a.stdin).ReadString('\n')
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true
	}
	return false
}

// printDiff prints one line per change, like diff: + added, - removed,
// ~ changed.
func printDiff(w io.Writer, d api.Diff) {
	if len(d.Changes) == 0 {
		fmt.Fprintln(w, "no changes")
		return
	}
	for _, ch := range d.Changes {
		sym := "~"
		switch ch.Op {
		case "add":
			sym = "+"
		case "del":
			sym = "-"
		}
		line := fmt.Sprintf("%s %s %s", sym, ch.Kind, ch.Name)
		if ch.Detail != "" {
			line += ": " + ch.Detail
		}
		fmt.Fprintln(w, line)
	}
}

func runValidate(ctx context.Context, a *app, cmd *command, args []string) error {
	var (
		file, node string
		remote     bool
	)
	_, err := a.parseArgs(cmd, args, 0, 0, func(fs *flag.FlagSet) {
		fileFlag(fs, &file)
		fs.BoolVar(&remote, "remote", false, "ask the running lbd instead of checking locally")
		fs.StringVar(&node, "node", "", "also check that node `NAME` is defined")
	})
	if err != nil {
		return err
	}
	if remote {
		data, name, err := a.readConfigFile(file)
		if err != nil {
			return err
		}
		c, err := a.client()
		if err != nil {
			return err
		}
		if err := c.Validate(ctx, data, name); err != nil {
			return err
		}
		return a.validOK(file, nil)
	}
	if err := a.checkOutput(); err != nil {
		return err
	}
	var cfg *config.Config
	switch file {
	case "", "-": // stdin, or readConfigFile's usage error
		var data []byte
		var name string
		if data, name, err = a.readConfigFile(file); err == nil {
			cfg, err = config.Parse(data, name)
		}
	default:
		cfg, err = config.Load(file)
	}
	if err != nil {
		return err
	}
	if node != "" {
		if _, ok := cfg.NodeByName(node); !ok {
			return &config.Error{Problems: []config.Problem{{File: file, Msg: fmt.Sprintf("node %q is not defined", node)}}}
		}
	}
	return a.validOK(file, cfg)
}

// validOK reports a valid file.
func (a *app) validOK(file string, cfg *config.Config) error {
	type result struct {
		File     string `json:"file"`
		OK       bool   `json:"ok"`
		Nodes    int    `json:"nodes,omitempty"`
		Tenants  int    `json:"tenants,omitempty"`
		Services int    `json:"services,omitempty"`
	}
	r := result{File: file, OK: true}
	if cfg != nil {
		r.Nodes, r.Tenants, r.Services = len(cfg.Nodes), len(cfg.Tenants), len(cfg.Services())
	}
	return a.emit(r, func(w io.Writer) {
		if cfg == nil {
			fmt.Fprintf(w, "%s: configuration OK\n", file)
			return
		}
		fmt.Fprintf(w, "%s: configuration OK (%d nodes, %d tenants, %d services)\n", file, r.Nodes, r.Tenants, r.Services)
	})
}

func runReload(ctx context.Context, a *app, cmd *command, args []string) error {
	_, c, err := a.begin(cmd, args, 0, 0, nil)
	if err != nil {
		return err
	}
	if err := c.Reload(ctx); err != nil {
		return err
	}
	return a.done("reloaded")
}
