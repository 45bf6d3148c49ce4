// Command lbctl is the operator's CLI for lbd: status like ipvsadm -Ln,
// virtual and real servers, configuration apply/diff/validate, tenants and
// their allow-lists, KVS counters, events, and keepalived import.
//
// Exit codes: 0 ok, 1 the operation failed, 2 usage error, 3 cannot reach
// lbd, 4 invalid configuration, 5 the cluster has no leader (nothing was
// written), 6 a change not applied on every node within --wait.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a := &app{
		stdin:    os.Stdin,
		stdout:   os.Stdout,
		stderr:   os.Stderr,
		getenv:   os.Getenv,
		stdinTTY: isTerminal(os.Stdin),
		now:      time.Now,
	}
	os.Exit(a.run(ctx, os.Args[1:]))
}
