// Command lbd is the lbd daemon: it turns one YAML file into kernel IPVS
// services, health checks, VRRP failover, tenant allow-lists and the bundled
// memcached-compatible KVS, according to this node's role.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
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
	fmt.Fprintln(stderr, "lbd: daemon not wired yet")
	return 2
}
