//go:build integration

package vrrp_test

// The helpers here build a small LAN out of network namespaces: one holding
// a bridge, and one per host with an eth0 veth into the bridge. They need
// root. Every namespace is named lbdvr-<pid>-<n>-<host> and removed in
// t.Cleanup; nothing is created in the root namespace.

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

const (
	vip      = "10.99.0.100"
	vip6     = "fd99::100"
	waitLong = 15 * time.Second // generous: tests poll, they never time
)

var (
	labSeq    atomic.Int32
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// vrrpdBin builds the test driver once per test binary.
func vrrpdBin(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "vrrpd-bin-")
		if buildErr != nil {
			return
		}
		// VRRPD_BUILDFLAGS=-race builds the driver with the race detector;
		// the tests then fail on any race report in its log.
		args := append([]string{"build"}, strings.Fields(os.Getenv("VRRPD_BUILDFLAGS"))...)
		args = append(args, "-o", filepath.Join(buildDir, "vrrpd"), "./internal/vrrpd")
		out, err := exec.Command("go", args...).CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build vrrpd: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(buildDir, "vrrpd")
}

func TestMain(m *testing.M) {
	if spec := os.Getenv(injectEnv); spec != "" {
		// Re-executed inside a namespace by (*lab).inject.
		if err := injectAdverts(spec); err != nil {
			fmt.Fprintln(os.Stderr, "inject:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces (run via make integration)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2's ip")
	}
}

// lab is a LAN of namespaces joined by a bridge.
type lab struct {
	t      *testing.T
	prefix string
	hosts  map[string]int // host -> last octet of 10.99.0.x
}

func run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// newLab creates the bridge namespace and one namespace per host; host n
// (from 1) gets 10.99.0.n/24 and fd99::n/64 on eth0 (and the kernel's
// link-local address, after duplicate address detection).
func newLab(t *testing.T, hosts ...string) *lab {
	t.Helper()
	requireRoot(t)
	l := &lab{t: t, prefix: fmt.Sprintf("lbdvr-%d-%d", os.Getpid(), labSeq.Add(1)), hosts: map[string]int{}}
	br := l.ns("br")
	run(t, "ip", "netns", "add", br)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", br).Run() })
	run(t, "ip", "-n", br, "link", "add", "br0", "type", "bridge")
	run(t, "ip", "-n", br, "link", "set", "br0", "up")
	for n, h := range hosts {
		ns := l.ns(h)
		run(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
		port := "p" + h
		run(t, "ip", "-n", br, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
		run(t, "ip", "-n", br, "link", "set", port, "master", "br0", "up")
		run(t, "ip", "-n", ns, "link", "set", "lo", "up")
		run(t, "ip", "-n", ns, "link", "set", "eth0", "up")
		run(t, "ip", "-n", ns, "addr", "add", fmt.Sprintf("10.99.0.%d/24", n+1), "dev", "eth0")
		run(t, "ip", "-n", ns, "addr", "add", fmt.Sprintf("fd99::%d/64", n+1), "dev", "eth0", "nodad")
		l.hosts[h] = n + 1
	}
	return l
}

func (l *lab) ns(host string) string { return l.prefix + "-" + host }

func (l *lab) addr(host string) string { return fmt.Sprintf("10.99.0.%d", l.hosts[host]) }

func (l *lab) addr6(host string) string { return fmt.Sprintf("fd99::%d", l.hosts[host]) }

// partition cuts host off the bridge without taking its link down.
func (l *lab) partition(host string) {
	run(l.t, "ip", "-n", l.ns("br"), "link", "set", "p"+host, "nomaster")
}

// heal puts host back on the bridge.
func (l *lab) heal(host string) {
	run(l.t, "ip", "-n", l.ns("br"), "link", "set", "p"+host, "master", "br0")
}

// hasVIP reports whether host has addr on eth0.
func (l *lab) hasVIP(host, addr string) bool {
	out, err := exec.Command("ip", "-n", l.ns(host), "-o", "addr", "show", "dev", "eth0").CombinedOutput()
	return err == nil && bytes.Contains(out, []byte(" "+addr+"/"))
}

// mac returns host's eth0 MAC address.
func (l *lab) mac(host string) string {
	out := run(l.t, "ip", "-n", l.ns(host), "-br", "link", "show", "dev", "eth0")
	f := strings.Fields(out)
	if len(f) < 3 {
		l.t.Fatalf("ip link: %q", out)
	}
	return f[2]
}

// neigh returns host's ARP or neighbour entry's MAC for ip ("" if none).
func (l *lab) neigh(host, ip string) string {
	out, _ := exec.Command("ip", "-n", l.ns(host), "neigh", "show", ip).CombinedOutput()
	f := strings.Fields(string(out))
	for i := range f {
		if f[i] == "lladdr" && i+1 < len(f) {
			return f[i+1]
		}
	}
	return ""
}

// dial connects from host to VIP:7777 and returns the director's answer.
func (l *lab) dial(host string) string { return l.dialAddr(host, vip) }

// dialAddr connects from host to addr:7777 and returns the answer.
func (l *lab) dialAddr(host, addr string) string {
	cmd := exec.Command("ip", "netns", "exec", l.ns(host), "timeout", "2", "bash", "-c",
		"exec 3<>/dev/tcp/"+addr+"/7777 && cat <&3")
	out, err := cmd.Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// proc is a process running in a namespace.
type proc struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

func (l *lab) start(host, name string, args ...string) *proc {
	l.t.Helper()
	logf := filepath.Join(l.t.TempDir(), name+".log")
	f, err := os.OpenFile(logf, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		l.t.Fatal(err)
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", l.ns(host)}, args...)...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		l.t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{t: l.t, name: name, cmd: cmd, log: logf, done: make(chan struct{})}
	go func() { cmd.Wait(); f.Close(); close(p.done) }()
	l.t.Cleanup(func() {
		p.signal(syscall.SIGKILL)
		<-p.done
		if strings.Contains(p.logText(), "DATA RACE") {
			l.t.Errorf("%s reported a data race", name)
		}
		if l.t.Failed() {
			b, _ := os.ReadFile(logf)
			l.t.Logf("--- log of %s:\n%s", name, b)
		}
	})
	return p
}

func (p *proc) signal(s syscall.Signal) {
	select {
	case <-p.done:
	default:
		p.cmd.Process.Signal(s)
	}
}

// kill9 kills the process and waits for it to be gone.
func (p *proc) kill9() {
	p.signal(syscall.SIGKILL)
	p.wait()
}

// stop asks for a clean stop and waits for the exit.
func (p *proc) stop() {
	p.signal(syscall.SIGTERM)
	p.wait()
}

func (p *proc) wait() {
	select {
	case <-p.done:
	case <-time.After(waitLong):
		p.t.Fatalf("%s did not exit", p.name)
	}
}

func (p *proc) logText() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// director runs vrrpd on host with a state file; extra flags are appended.
type director struct {
	*proc
	host, state string
}

func (l *lab) director(host string, prio int, extra ...string) *director {
	l.t.Helper()
	state := filepath.Join(l.t.TempDir(), host+".state")
	os.Remove(state)
	args := append([]string{vrrpdBin(l.t), "-name", host, "-iface", "eth0", "-vrid", "51",
		"-prio", fmt.Sprint(prio), "-int", "100ms", "-vip", vip, "-state-file", state,
		"-serve", ":7777", "-garp-delay", "-1s", "-debug"}, extra...)
	return &director{proc: l.start(host, host, args...), host: host, state: state}
}

// stateOf returns the director's current state ("" before it wrote one).
func (d *director) stateOf() string {
	b, err := os.ReadFile(d.state)
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return ""
	}
	return f[1]
}

// eventually polls cond until it holds or waitLong passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// holds checks that cond stays true for d (a stability check, not a
// timing assertion: it fails only if cond ever turns false).
func holds(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if !cond() {
			t.Fatalf("no longer true: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func readFile(p string) (string, error) {
	b, err := os.ReadFile(p)
	return string(b), err
}
