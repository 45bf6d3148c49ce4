//go:build integration || vm

// The lab of lbd's end-to-end tests: network namespaces on a bridge, each
// named uniquely for the run and removed afterwards, with real lbd
// processes (bin/lbd from make build, or $LBD_BIN) and a probe client.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lbd-project/lbd/internal/api"
	"github.com/lbd-project/lbd/internal/testutil/netnstest"
)

// lab is a bridge with namespaces hanging off it.
type lab struct {
	t      *testing.T
	dir    string
	bin    string
	spaces map[string]string // lab name ("lb1") -> namespace (unique per run)
}

func newLab(t *testing.T) *lab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (run by make vmtest)")
	}
	bin := os.Getenv("LBD_BIN")
	if bin == "" {
		bin, _ = filepath.Abs("../../bin/lbd")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("lbd binary %s: %v (run make build)", bin, err)
	}
	exec.Command("modprobe", "ip_vs").Run()
	l := &lab{t: t, dir: t.TempDir(), bin: bin, spaces: map[string]string{}}
	l.ns("sw")
	l.sh("sw", "ip link add br0 type bridge && ip link set br0 up")
	return l
}

// ns creates the lab's namespace called name (removed when the test ends).
func (l *lab) ns(name string) string {
	full := netnstest.New(l.t, "lbe"+name)
	l.spaces[name] = full
	return full
}

// full is the namespace behind a lab name.
func (l *lab) full(name string) string { return l.spaces[name] }

// host adds a namespace with one interface eth0 on the bridge.
func (l *lab) host(name, addr string) {
	l.ns(name)
	peer := "v" + name
	l.sh("sw", fmt.Sprintf("ip link add %s type veth peer name eth0 netns %s && ip link set %s master br0 up", peer, l.full(name), peer))
	l.sh(name, fmt.Sprintf("ip addr add %s/24 dev eth0 && ip link set eth0 up", addr))
}

// sh runs a shell command inside namespace name and returns its output.
func (l *lab) sh(name, cmd string) string {
	l.t.Helper()
	return netnstest.Exec(l.t, "ip", "netns", "exec", l.full(name), "sh", "-c", cmd)
}

// config writes the lab's configuration file and returns its path; the
// daemons read it at start and on SIGHUP.
func (l *lab) config(yaml string) string {
	l.t.Helper()
	cfg := filepath.Join(l.dir, "lbd.yaml")
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		l.t.Fatal(err)
	}
	return cfg
}

// lbd is one running daemon.
type lbd struct {
	cmd  *exec.Cmd
	node string
	sock string
	log  string
}

func (l *lab) start(node, cfg string) *lbd {
	l.t.Helper()
	state := filepath.Join(l.dir, "state-"+node)
	d := &lbd{node: node, sock: filepath.Join(l.dir, node+".sock"), log: filepath.Join(l.dir, node+".log")}
	logf, err := os.OpenFile(d.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		l.t.Fatal(err)
	}
	d.cmd = exec.Command("ip", "netns", "exec", l.full(node), l.bin, "-f", cfg, "--node", node,
		"--state-dir", state, "--socket", d.sock, "--log-level", "debug")
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	if err := d.cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() { d.stop(syscall.SIGKILL); logf.Close() })
	l.t.Cleanup(func() {
		if l.t.Failed() {
			b, _ := os.ReadFile(d.log)
			l.t.Logf("--- log of lbd %s ---\n%s", node, b)
		}
	})
	return d
}

func (d *lbd) stop(sig syscall.Signal) {
	if d.cmd.Process == nil || d.cmd.ProcessState != nil {
		return
	}
	d.cmd.Process.Signal(sig)
	d.cmd.Wait()
}

// status asks the daemon's API; it fails the test only after waiting.
func (d *lbd) status(t *testing.T) api.Status {
	t.Helper()
	var st api.Status
	eventually(t, 60*time.Second, "status of "+d.node, func() bool {
		c := http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", d.sock)
		}}, Timeout: 10 * time.Second}
		resp, err := c.Get("http://lbd/v1/status")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		return resp.StatusCode == 200 && json.NewDecoder(resp.Body).Decode(&st) == nil
	})
	return st
}

// eventually polls cond until it holds or the deadline passes. The deadline
// is a safety net for a stuck test, not a speed requirement.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// The test binary doubles as the client inside namespaces: run with
// LBD_E2E_PROBE=addr it connects there and, with LBD_E2E_CMD, sends one
// command and prints the reply; without, it relays stdin and stdout.
func TestMain(m *testing.M) {
	if addr := os.Getenv("LBD_E2E_PROBE"); addr != "" {
		os.Exit(probe(addr, os.Getenv("LBD_E2E_CMD")))
	}
	if addr := os.Getenv("LBD_E2E_LISTEN"); addr != "" {
		os.Exit(serveHello(addr))
	}
	os.Exit(m.Run())
}

// serveHello is the listener of listen.
func serveHello(addr string) int {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			return 1
		}
		go func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			buf := make([]byte, 512)
			if _, err := c.Read(buf); err == nil {
				c.Write([]byte("hello\r\n"))
			}
		}()
	}
}

func probe(addr, cmd string) int {
	if kvsClient != nil && strings.HasPrefix(cmd, "KVS ") {
		return kvsClient(addr, cmd)
	}
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer c.Close()
	if cmd == "" {
		go func() { io.Copy(c, os.Stdin); c.Close() }()
		io.Copy(os.Stdout, c)
		return 0
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "%s\r\n", cmd)
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		os.Stdout.WriteString(line)
		if err != nil {
			return 1
		}
		if cmd != "stats" || line == "END\r\n" {
			return 0
		}
	}
}

// kvsClient, if set (by a test file of the integration build), serves the
// probe's "KVS ..." commands.
var kvsClient func(addrs, cmd string) int

// nc runs the probe in namespace ns: one command to addr, its reply.
func (l *lab) nc(ns, addr, cmd string) (string, error) {
	c := exec.Command("ip", "netns", "exec", l.full(ns), os.Args[0])
	c.Env = append(os.Environ(), "LBD_E2E_PROBE="+addr, "LBD_E2E_CMD="+cmd)
	var stderr strings.Builder
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		err = fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return string(out), err
}

// heldConn is a connection kept open from a namespace through the probe
// in relay mode.
type heldConn struct {
	cmd *exec.Cmd
	in  *os.File
	out *bufio.Reader
}

func (l *lab) openConn(ns, addr string) *heldConn {
	l.t.Helper()
	c := exec.Command("ip", "netns", "exec", l.full(ns), os.Args[0])
	c.Env = append(os.Environ(), "LBD_E2E_PROBE="+addr)
	inR, inW, _ := os.Pipe()
	outR, outW, _ := os.Pipe()
	c.Stdin, c.Stdout, c.Stderr = inR, outW, outW
	if err := c.Start(); err != nil {
		l.t.Fatal(err)
	}
	inR.Close()
	outW.Close()
	return &heldConn{cmd: c, in: inW, out: bufio.NewReader(outR)}
}

func (h *heldConn) roundTrip(t *testing.T, cmd string) string {
	t.Helper()
	fmt.Fprintf(h.in, "%s\r\n", cmd)
	line, err := h.out.ReadString('\n')
	if err != nil {
		return "error: " + err.Error()
	}
	return strings.TrimSpace(line)
}

func (h *heldConn) close() {
	h.in.Close()
	h.cmd.Process.Kill()
	h.cmd.Wait()
}
