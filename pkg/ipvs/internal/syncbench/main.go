// Command syncbench measures how many established connections survive a
// director failover and the failback, with the kernel's IPVS connection
// sync run by lbd (vrrp.lvs_sync_daemon) and by keepalived (lvs_sync_daemon),
// on the same kernel in the same run. It needs root and kernel IPVS
// (scripts/bench-vrrp.sh runs it in the VM).
//
// For each implementation it builds a LAN of network namespaces (a client,
// two directors, two memcached real servers in DR, rr), holds -conns
// connections through the VIP, kills the master director's daemon with
// SIGKILL, counts the connections that still answer on the backup, opens
// -more connections through the backup, restarts the first director
// (which preempts) and counts again. Everything it creates is removed.
// Adverts go every second: the figures are shares, not times, and at 100ms
// the emulated VM on a loaded host misses adverts and flaps.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netns"
)

func main() {
	lbd := flag.String("lbd", "bin/lbd", "lbd binary")
	ka := flag.String("keepalived", "/usr/sbin/keepalived", "keepalived binary (\"\" to skip)")
	conns := flag.Int("conns", 50, "connections held through the failover")
	more := flag.Int("more", 20, "connections opened through the backup before the failback")
	flag.Parse()
	impls := []string{"lbd"}
	if _, err := os.Stat(*ka); *ka != "" && err == nil {
		impls = append(impls, "keepalived")
	}
	fmt.Printf("%-11s %10s %10s %10s %10s\n", "impl", "synced", "failover", "failback", "new->back")
	for _, impl := range impls {
		r, err := run(impl, *lbd, *ka, *conns, *more)
		if err != nil {
			fmt.Fprintf(os.Stderr, "syncbench: %s: %v\n", impl, err)
			os.Exit(1)
		}
		fmt.Printf("%-11s %10s %10s %10s %10s\n", impl, r.synced, r.failover, r.failback, r.newBack)
	}
}

type result struct{ synced, failover, failback, newBack string }

func share(n, of int) string { return fmt.Sprintf("%d/%d", n, of) }

// lab is the namespaces of one run.
type lab struct {
	prefix string
	dir    string
	spaces []string
	procs  map[string]*exec.Cmd
}

const vip = "10.96.0.100"

func (l *lab) ns(name string) string { return l.prefix + "-" + name }

func (l *lab) sh(name, cmd string) (string, error) {
	out, err := exec.Command("ip", "netns", "exec", l.ns(name), "sh", "-c", cmd).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %s: %w: %s", name, cmd, err, out)
	}
	return string(out), nil
}

func (l *lab) must(name, cmd string) string {
	out, err := l.sh(name, cmd)
	if err != nil {
		panic(err)
	}
	return out
}

func (l *lab) host(name, addr string) {
	if err := exec.Command("ip", "netns", "add", l.ns(name)).Run(); err != nil {
		panic(fmt.Errorf("netns add %s: %w", l.ns(name), err))
	}
	l.spaces = append(l.spaces, l.ns(name))
	l.must(name, "ip link set lo up")
	if name == "sw" {
		l.must("sw", "ip link add br0 type bridge && ip link set br0 up")
		return
	}
	l.must("sw", fmt.Sprintf("ip link add v%s type veth peer name eth0 netns %s && ip link set v%s master br0 up", name, l.ns(name), name))
	l.must(name, fmt.Sprintf("ip addr add %s/24 dev eth0 && ip link set eth0 up", addr))
}

func (l *lab) start(name string, args ...string) {
	c := exec.Command("ip", append([]string{"netns", "exec", l.ns(name)}, args...)...)
	logf, _ := os.Create(filepath.Join(l.dir, name+".log"))
	c.Stdout, c.Stderr = logf, logf
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.Start(); err != nil {
		panic(err)
	}
	l.procs[name] = c
}

// kill9 kills the process group of name's daemon (keepalived's children
// too) with SIGKILL, as a crash would.
func (l *lab) kill9(name string) {
	if c := l.procs[name]; c != nil {
		syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
		c.Wait()
		delete(l.procs, name)
	}
}

func (l *lab) close() {
	for name := range l.procs {
		l.kill9(name)
	}
	for _, ns := range l.spaces {
		exec.Command("ip", "netns", "del", ns).Run()
	}
	os.RemoveAll(l.dir)
}

func wait(within time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			return errors.New("timed out waiting for " + what)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return nil
}

const lbdConfig = `
nodes:
  - {name: lb1, role: director, address: 10.96.0.2, interface: eth0, priority: 150}
  - {name: lb2, role: director, address: 10.96.0.3, interface: eth0, priority: 100}
vrrp:
  virtual_router_id: 71
  advert_interval: 1s
  vips: [10.96.0.100]
  lvs_sync_daemon: {}
defaults: {scheduler: rr, forward: dr, health: {type: tcp, connect_timeout: 1s, delay_loop: 1s, warmup: 0}}
virtual_services:
  - {vip: 10.96.0.100, port: 11211, reals: [{address: 10.96.0.11}, {address: 10.96.0.12}]}
`

const keepalivedConfig = `
global_defs {
    lvs_sync_daemon eth0 VI_1 id 71
}
vrrp_instance VI_1 {
    state BACKUP
    interface eth0
    virtual_router_id 71
    priority %d
    advert_int 1
    virtual_ipaddress {
        10.96.0.100/32
    }
}
virtual_server 10.96.0.100 11211 {
    delay_loop 1
    lb_algo rr
    lb_kind DR
    protocol TCP
    real_server 10.96.0.11 11211 {
        TCP_CHECK {
            connect_timeout 1
        }
    }
    real_server 10.96.0.12 11211 {
        TCP_CHECK {
            connect_timeout 1
        }
    }
}
`

func run(impl, lbdBin, kaBin string, nconns, nmore int) (res result, err error) {
	dir, err := os.MkdirTemp("", "syncbench")
	if err != nil {
		return res, err
	}
	l := &lab{prefix: fmt.Sprintf("lbdsb-%d-%s", os.Getpid(), impl[:2]), dir: dir, procs: map[string]*exec.Cmd{}}
	defer l.close()
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%v", p)
		}
		if err != nil {
			for _, n := range []string{"lb1", "lb2"} {
				b, _ := os.ReadFile(filepath.Join(dir, n+".log"))
				fmt.Fprintf(os.Stderr, "--- %s log ---\n%s\n", n, lastLines(string(b), 30))
			}
		}
	}()
	l.host("sw", "")
	l.host("cl", "10.96.0.10")
	l.host("lb1", "10.96.0.2")
	l.host("lb2", "10.96.0.3")
	for i, n := range []string{"st1", "st2"} {
		l.host(n, fmt.Sprintf("10.96.0.1%d", i+1))
		l.must(n, "sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 && ip addr add "+vip+"/32 dev lo")
		l.start(n, "memcached", "-u", "nobody", "-l", "0.0.0.0", "-p", "11211", "-U", "0")
	}
	start := map[string][]string{}
	switch impl {
	case "lbd":
		cfg := filepath.Join(dir, "lbd.yaml")
		os.WriteFile(cfg, []byte(lbdConfig), 0o600)
		for _, n := range []string{"lb1", "lb2"} {
			start[n] = []string{lbdBin, "-f", cfg, "--node", n, "--state-dir", filepath.Join(dir, "state-"+n),
				"--socket", filepath.Join(dir, n+".sock")}
		}
	default:
		for n, prio := range map[string]int{"lb1": 150, "lb2": 100} {
			cfg := filepath.Join(dir, n+".conf")
			os.WriteFile(cfg, []byte(fmt.Sprintf(keepalivedConfig, prio)), 0o600)
			start[n] = []string{kaBin, "-n", "-l", "-D", "-f", cfg, "-p", filepath.Join(dir, n+".pid"),
				"-r", filepath.Join(dir, n+"-vrrp.pid"), "-c", filepath.Join(dir, n+"-check.pid")}
		}
	}
	l.start("lb1", start["lb1"]...)
	if err := waitVIP(l, "lb1", false); err != nil {
		return res, err
	}
	l.start("lb2", start["lb2"]...)
	for _, n := range []string{"lb1", "lb2"} {
		if err := wait(60*time.Second, n+" programs both real servers", func() bool {
			out, _ := l.sh(n, "ipvsadm -Ln -t "+vip+":11211")
			return strings.Count(out, "Route") == 2
		}); err != nil {
			return res, err
		}
	}
	if probe, err := dial(l, 1); err == nil { // the client's neighbour entry for the VIP
		closeAll(probe)
	}
	if err := waitVIP(l, "lb1", true); err != nil {
		return res, err
	}
	conns, err := dial(l, nconns)
	if err != nil {
		return res, err
	}
	defer closeAll(conns)
	if n := round(conns); n != len(conns) {
		return res, fmt.Errorf("before the failover %d of %d answer", n, len(conns))
	}
	// Give the sync its chance (bounded): the backup's table.
	synced := 0
	wait(30*time.Second, "sync", func() bool { synced = known(l, "lb2", conns); return synced == len(conns) })
	res.synced = share(synced, len(conns))

	l.kill9("lb1")
	if err := waitVIP(l, "lb2", true); err != nil {
		return res, err
	}
	alive := alive(conns)
	res.failover = share(len(alive), len(conns))

	fresh, err := dial(l, nmore)
	if err != nil {
		return res, err
	}
	defer closeAll(fresh)
	round(fresh)
	time.Sleep(2 * time.Second) // the new connections' sync messages

	l.start("lb1", start["lb1"]...)
	if err := waitVIP(l, "lb1", true); err != nil {
		return res, err
	}
	if err := wait(30*time.Second, "lb2 gives the VIP up", func() bool {
		out, _ := l.sh("lb2", "ip -o addr show dev eth0")
		return !strings.Contains(out, vip+"/32")
	}); err != nil {
		return res, err
	}
	time.Sleep(time.Second) // the old master may still be handing over
	res.failback = share(round(alive), len(alive))
	res.newBack = share(round(fresh), len(fresh))
	return res, nil
}

// waitVIP waits until director n holds the VIP and, with neigh, the
// client's neighbour entry points at it.
func waitVIP(l *lab, n string, neigh bool) error {
	if err := wait(60*time.Second, n+" holds the VIP", func() bool {
		out, _ := l.sh(n, "ip -o addr show dev eth0")
		return strings.Contains(out, vip+"/32")
	}); err != nil {
		return err
	}
	if !neigh {
		return nil
	}
	mac := strings.TrimSpace(l.must(n, "cat /sys/class/net/eth0/address"))
	return wait(60*time.Second, "the client's neighbour entry points at "+n, func() bool {
		out, _ := l.sh("cl", "ip neigh show "+vip)
		return strings.Contains(out, mac)
	})
}

type conn struct {
	c net.Conn
	r *bufio.Reader
}

// dial opens n connections from the client namespace to the VIP.
func dial(l *lab, n int) ([]*conn, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return nil, err
	}
	defer orig.Close()
	h, err := netns.GetFromName(l.ns("cl"))
	if err != nil {
		return nil, err
	}
	defer h.Close()
	if err := netns.Set(h); err != nil {
		return nil, err
	}
	defer netns.Set(orig)
	var out []*conn
	for i := 0; i < n; i++ {
		c, err := net.DialTimeout("tcp", vip+":11211", 5*time.Second)
		if err != nil {
			closeAll(out)
			return nil, err
		}
		out = append(out, &conn{c: c, r: bufio.NewReader(c)})
	}
	return out, nil
}

func closeAll(cs []*conn) {
	for _, c := range cs {
		c.c.Close()
	}
}

// ask sends one request on c and reports whether its answer came.
func ask(c *conn) bool {
	c.c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := fmt.Fprintf(c.c, "version\r\n"); err != nil {
		return false
	}
	line, err := c.r.ReadString('\n')
	return err == nil && strings.HasPrefix(line, "VERSION")
}

func round(cs []*conn) int {
	n := 0
	for _, c := range cs {
		if ask(c) {
			n++
		}
	}
	return n
}

// alive returns the connections that still answer.
func alive(cs []*conn) []*conn {
	var out []*conn
	for _, c := range cs {
		if ask(c) {
			out = append(out, c)
		}
	}
	return out
}

// known counts the connections director n's kernel has an entry for.
func known(l *lab, n string, cs []*conn) int {
	out, _ := l.sh(n, "ipvsadm -Lnc")
	k := 0
	for _, c := range cs {
		if strings.Contains(out, " "+c.c.LocalAddr().String()+" ") {
			k++
		}
	}
	return k
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
