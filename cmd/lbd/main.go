// Command lbd is the lbd daemon: it turns one YAML file into kernel IPVS
// services, health checks, VRRP failover, tenant allow-lists and the bundled
// memcached-compatible KVS, according to this node's role.
//
//	lbd -f /etc/lbd/lbd.yaml [--node NAME]   run the daemon
//	lbd -t -f /etc/lbd/lbd.yaml              check a file, like keepalived -t
//	lbd kvs --listen :11211                  one standalone KVS instance
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
	"runtime"
	"strings"
	"syscall"

	"github.com/sirupsen/logrus"

	"github.com/lbd-project/lbd/internal/daemon"
	"github.com/lbd-project/lbd/pkg/config"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run dispatches to a subcommand and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "kvs" {
		return runKVS(ctx, args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("lbd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		file      = fs.String("f", "/etc/lbd/lbd.yaml", "configuration `file`")
		check     = fs.Bool("t", false, "check the configuration file and exit (like keepalived -t)")
		node      = fs.String("node", "", "this node's `name` in the file (default: the hostname)")
		stateDir  = fs.String("state-dir", "", "state `directory` (default: the file's daemon.state_dir)")
		socket    = fs.String("socket", "", "control API unix socket `path` (default: the file's daemon.socket; - disables)")
		logLevel  = fs.String("log-level", "info", "log `level`: debug, info, warn, error")
		logFormat = fs.String("log-format", "text", "log `format`: text or json")
		kvsOpts   = eventLoopFlags(fs, "kvs-", "storage nodes' KVS: ")
	)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: lbd [flags]          run the daemon\n       lbd -t -f FILE     check a configuration file\n       lbd kvs [flags]    run one standalone KVS instance\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "lbd: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *check {
		return interruptible(ctx, stderr, func() int { return checkConfig(*file, *node, stdout, stderr) })
	}
	logger, err := newLogger(stderr, *logLevel, *logFormat)
	if err != nil {
		fmt.Fprintln(stderr, "lbd:", err)
		return 2
	}
	spareProcs()
	// github.com/moby/ipvs logs through logrus' global logger; lbd reports
	// the same failures itself, through slog, with context.
	logrus.SetOutput(io.Discard)
	var d *daemon.Daemon
	if code := interruptible(ctx, stderr, func() int {
		d, err = daemon.New(daemon.Options{
			ConfigPath: *file, Node: *node, StateDir: *stateDir, Socket: *socket, Logger: logger,
			KVS: kvsOpts(),
		})
		if err != nil {
			fmt.Fprintln(stderr, "lbd:", err)
			return 1
		}
		return 0
	}); code != 0 {
		return code
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if err := d.Reload(ctx); err != nil {
					logger.Error("reload failed; running state unchanged", "error", err)
				}
			}
		}
	}()
	if err := d.Run(ctx); err != nil {
		logger.Error("lbd failed", "error", err)
		return 1
	}
	return 0
}

// spareProcs doubles GOMAXPROCS unless the operator set it. The KVS
// event loops (one per CPU, each on its own thread) spend their idle time
// blocked in epoll_wait; with a spare P, a loop woken by the kernel runs at
// once instead of waiting for the scheduler to hand it one.
func spareProcs() {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(2 * runtime.GOMAXPROCS(0))
	}
}

// interruptible runs fn, which reads the configuration, and returns its
// exit code, or 1 as soon as ctx ends (SIGINT or SIGTERM): reading a file
// never holds lbd against a signal.
func interruptible(ctx context.Context, stderr io.Writer, fn func() int) int {
	done := make(chan int, 1)
	go func() { done <- fn() }()
	select {
	case code := <-done:
		return code
	case <-ctx.Done():
		fmt.Fprintln(stderr, "lbd: interrupted while reading the configuration")
		return 1
	}
}

// checkConfig implements -t: every problem with file:line, exit 1 if any.
func checkConfig(file, node string, stdout, stderr io.Writer) int {
	cfg, err := config.Load(file)
	if err != nil {
		fmt.Fprintln(stderr, err)
		var ce *config.Error
		if errors.As(err, &ce) {
			fmt.Fprintf(stderr, "%s: %d problem(s)\n", file, len(ce.Problems))
		}
		return 1
	}
	if node != "" {
		if _, ok := cfg.NodeByName(node); !ok {
			fmt.Fprintf(stderr, "%s: node %q is not defined\n", file, node)
			return 1
		}
	}
	for _, w := range cfg.Warnings() {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	fmt.Fprintf(stdout, "%s: configuration OK (%d nodes, %d services)\n", file, len(cfg.Nodes), len(cfg.Services()))
	return 0
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("bad -log-level %q", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("bad -log-format %q (want text or json)", format)
}
