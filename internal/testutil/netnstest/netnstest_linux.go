// Package netnstest creates throwaway Linux network namespaces for tests
// and runs code inside them. Every namespace is named uniquely for the test
// process and deleted when the test ends; nothing here changes the
// namespace the test process itself runs in. It is for _test.go files only.
package netnstest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/vishvananda/netns"
)

var seq atomic.Int32

// New creates a network namespace named <prefix>-<pid>-<n>, unique within
// the run, brings its lo up and deletes it in t.Cleanup, reporting a failed
// deletion with t.Errorf. It fails the test if the namespace cannot be
// made. The caller checks for root and iproute2 beforehand.
func New(t testing.TB, prefix string) string {
	t.Helper()
	name := fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), seq.Add(1))
	Exec(t, "ip", "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	Exec(t, "ip", "-n", name, "link", "set", "lo", "up")
	return name
}

// Path returns the file under /run/netns that names the namespace.
func Path(name string) string { return filepath.Join("/run/netns", name) }

// Do runs fn on a fresh OS thread switched into the named namespace and
// returns its error (or the error of entering the namespace). Sockets fn
// creates stay in that namespace. The thread is never handed back to the
// runtime, so a failure to switch back cannot leak the namespace. fn runs
// on another goroutine: it must report failure by its result, not with
// t.Fatal.
func Do(name string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		h, err := netns.GetFromPath(Path(name))
		if err != nil {
			errc <- err
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			errc <- fmt.Errorf("enter network namespace %s: %w", name, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// Exec runs the command args[0] with arguments args[1:] (for example
// "ip", "-n", ns, ...) and returns its combined output, failing the test
// with that output if the command fails.
func Exec(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}
