package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// `lbd -t -f FIFO` answers at once that a FIFO is no configuration file,
// instead of waiting for a writer.
func TestCheckRefusesFIFO(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"-t", "-f", fifo}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "not a regular file") {
		t.Fatalf("lbd -t -f fifo: exit %d, stderr %q", code, errb.String())
	}
}

// A signal (ctx ending) stops lbd while it is still reading its
// configuration: fn here never returns on its own.
func TestInterruptible(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	block := make(chan struct{})
	defer close(block)
	done := make(chan int)
	var errb bytes.Buffer
	go func() { done <- interruptible(ctx, &errb, func() int { <-block; return 0 }) }()
	cancel()
	if code := <-done; code != 1 || !strings.Contains(errb.String(), "interrupted") {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
}

// `lbd kvs --store durable --memory 1000TiB` is refused at once with the
// reason, instead of dying out of memory.
func TestKVSRefusesMemoryBeyondMachine(t *testing.T) {
	var out, errb bytes.Buffer
	args := []string{"kvs", "--listen", "127.0.0.1:0", "--store", "durable", "--dir", t.TempDir(), "--memory", "1000TiB"}
	if code := run(context.Background(), args, &out, &errb); code != 1 || !strings.Contains(errb.String(), "more than this machine's memory") {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
}
