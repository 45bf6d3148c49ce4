//go:build integration

package kvs

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// freePort returns a loopback port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// waitListening polls until addr accepts connections.
func waitListening(t testing.TB, addr string, proc *exec.Cmd) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if proc != nil && proc.ProcessState != nil {
			t.Fatalf("%s exited: %v", proc.Path, proc.ProcessState)
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s not listening after 30s", addr)
}

// kill9 kills proc with SIGKILL and waits until it has exited (its
// sockets closed): a restart on its address must not find its listener
// still accepting connections that it then resets.
func kill9(t testing.TB, proc *exec.Cmd) {
	t.Helper()
	if err := proc.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9: %v", err)
	}
	stat := fmt.Sprintf("/proc/%d/stat", proc.Process.Pid)
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := os.ReadFile(stat) // "PID (COMM) STATE ...": Z once exited
		if i := bytes.LastIndexByte(b, ')'); err != nil || i >= 0 && len(b) > i+2 && b[i+2] == 'Z' {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d still running 30s after kill -9", proc.Process.Pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// startProcess starts a command killed at cleanup.
func startProcess(t testing.TB, name string, args ...string) *exec.Cmd {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout = testWriter{t}
	cmd.Stderr = testWriter{t}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return cmd
}

// startMemcached runs the Debian memcached 1.6 on a loopback port with the
// given memory in MiB.
func startMemcached(t testing.TB, mib int) string {
	t.Helper()
	path, err := exec.LookPath("memcached")
	if err != nil {
		t.Fatalf("memcached not installed (Debian package memcached): %v", err)
	}
	port := freePort(t)
	args := []string{"-l", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "0", "-t", "2", "-m", strconv.Itoa(mib)}
	if os.Geteuid() == 0 {
		args = append(args, "-u", "root")
	}
	cmd := startProcess(t, path, args...)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	waitListening(t, addr, cmd)
	return addr
}
