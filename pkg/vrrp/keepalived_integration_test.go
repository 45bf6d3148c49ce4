//go:build integration

package vrrp_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const keepalivedBin = "/usr/sbin/keepalived"

// keepalived is keepalived 2.2 running VRRP only, in the foreground, in a
// namespace, with its config and pid files in the test's temp dir.
type keepalived struct {
	*proc
	l       *lab
	host    string
	vrrpPid string
}

// keepalivedConf is a vrrp_instance like the one the tests give vrrpd,
// with the virtual address vipPrefix.
func keepalivedConf(host string, prio int, extra, vipPrefix string) string {
	return fmt.Sprintf(`global_defs {
  router_id %s
  vrrp_version 3
  vrrp_garp_master_delay 0
}
vrrp_instance VI {
  state BACKUP
  interface eth0
  virtual_router_id 51
  priority %d
  advert_int 0.1
  %s
  virtual_ipaddress {
    %s
  }
}
`, host, prio, extra, vipPrefix)
}

func (l *lab) keepalived(host string, prio int, extra string) *keepalived {
	l.t.Helper()
	return l.keepalivedVIP(host, prio, extra, vip+"/32")
}

// keepalivedVIP runs keepalived with the virtual address vipPrefix (an
// IPv6 one makes it speak VRRPv3 over IPv6).
func (l *lab) keepalivedVIP(host string, prio int, extra, vipPrefix string) *keepalived {
	l.t.Helper()
	if _, err := os.Stat(keepalivedBin); err != nil {
		l.t.Skipf("needs keepalived (Debian package keepalived): %v", err)
	}
	dir := l.t.TempDir()
	conf := filepath.Join(dir, "keepalived.conf")
	if err := os.WriteFile(conf, []byte(keepalivedConf(host, prio, extra, vipPrefix)), 0o644); err != nil {
		l.t.Fatal(err)
	}
	if strings.Contains(vipPrefix, ":") {
		// keepalived sends IPv6 adverts from the link-local address and
		// fails (EINVAL) while duplicate address detection still holds it
		// tentative; lbd waits for it, keepalived does not.
		eventually(l.t, host+"'s link-local address passed DAD", func() bool {
			out := run(l.t, "ip", "-n", l.ns(host), "-6", "addr", "show", "dev", "eth0", "scope", "link")
			return strings.Contains(out, "fe80::") && !strings.Contains(out, "tentative")
		})
	}
	k := &keepalived{l: l, host: host, vrrpPid: filepath.Join(dir, "vrrp.pid")}
	k.proc = l.start(host, "keepalived-"+host, keepalivedBin, "-f", conf,
		"-p", filepath.Join(dir, "keepalived.pid"), "-r", k.vrrpPid, "-c", filepath.Join(dir, "checkers.pid"),
		"--dont-fork", "--log-console", "--vrrp", "--dont-respawn", "--log-detail")
	eventually(l.t, "keepalived's VRRP child started", func() bool { return k.childPid() > 0 })
	return k
}

func (k *keepalived) childPid() int {
	b, err := os.ReadFile(k.vrrpPid)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

// kill9 kills keepalived's VRRP process (the one that speaks the
// protocol) and then its parent, as a crash of the box would.
func (k *keepalived) kill9() {
	if pid := k.childPid(); pid > 0 {
		syscall.Kill(pid, syscall.SIGKILL)
		eventually(k.l.t, "keepalived VRRP child gone", func() bool {
			return syscall.Kill(pid, 0) != nil
		})
	}
	k.proc.kill9()
}

func (k *keepalived) entered(state string) bool {
	return strings.Contains(k.logText(), "Entering "+state+" STATE")
}

func (k *keepalived) lastState() string {
	log := k.logText()
	i := strings.LastIndex(log, "Entering ")
	if i < 0 {
		return ""
	}
	f := strings.Fields(log[i+len("Entering "):])
	return f[0]
}

// noInvalid checks that vrrpd never dropped keepalived's adverts as invalid.
func noInvalid(t *testing.T, d *director) {
	t.Helper()
	if strings.Contains(d.logText(), "invalid advert") || strings.Contains(d.logText(), "TTL != 255") {
		t.Fatalf("vrrpd dropped keepalived adverts:\n%s", d.logText())
	}
}

func TestKeepalivedInteropLbdMaster(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath(keepalivedBin); err != nil {
		t.Skip("needs keepalived")
	}
	l := newLab(t, "d1", "ka", "c")
	d1 := l.director("d1", 150)
	ka := l.keepalived("ka", 100, "")
	eventually(t, "lbd MASTER, keepalived BACKUP", func() bool {
		return d1.stateOf() == "MASTER" && l.hasVIP("d1", vip) && ka.lastState() == "BACKUP" && !l.hasVIP("ka", vip)
	})
	l.waitClientReaches("c", "d1")

	// lbd dies: keepalived takes over.
	d1.kill9()
	eventually(t, "keepalived MASTER with VIP", func() bool { return ka.lastState() == "MASTER" && l.hasVIP("ka", vip) })

	// lbd returns and preempts keepalived.
	d1 = l.director("d1", 150)
	eventually(t, "lbd MASTER again, keepalived BACKUP", func() bool {
		return d1.stateOf() == "MASTER" && l.hasVIP("d1", vip) && ka.lastState() == "BACKUP" && !l.hasVIP("ka", vip)
	})
	l.waitClientReaches("c", "d1")

	// lbd stops cleanly: keepalived takes over on priority 0.
	d1.stop()
	eventually(t, "keepalived MASTER after lbd's priority 0", func() bool {
		return ka.lastState() == "MASTER" && l.hasVIP("ka", vip)
	})
	noInvalid(t, d1)
}

func TestKeepalivedInteropKeepalivedMaster(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath(keepalivedBin); err != nil {
		t.Skip("needs keepalived")
	}
	l := newLab(t, "ka", "d2")
	ka := l.keepalived("ka", 150, "")
	d2 := l.director("d2", 100)
	eventually(t, "keepalived MASTER, lbd BACKUP", func() bool {
		return ka.lastState() == "MASTER" && l.hasVIP("ka", vip) && d2.stateOf() == "BACKUP" && !l.hasVIP("d2", vip)
	})
	holds(t, "lbd stays BACKUP under keepalived", time.Second, func() bool { return d2.stateOf() == "BACKUP" })

	// keepalived dies: lbd takes over.
	ka.kill9()
	eventually(t, "lbd MASTER with VIP", func() bool { return d2.stateOf() == "MASTER" && l.hasVIP("d2", vip) })

	// keepalived returns and preempts lbd.
	ka = l.keepalived("ka", 150, "")
	eventually(t, "keepalived MASTER again, lbd BACKUP", func() bool {
		return ka.lastState() == "MASTER" && l.hasVIP("ka", vip) && d2.stateOf() == "BACKUP" && !l.hasVIP("d2", vip)
	})

	// keepalived stops cleanly (SIGTERM): lbd takes over on priority 0.
	ka.stop()
	eventually(t, "lbd MASTER after keepalived's stop", func() bool { return d2.stateOf() == "MASTER" && l.hasVIP("d2", vip) })
	if !strings.Contains(d2.logText(), "to=MASTER") {
		t.Fatal("no takeover logged")
	}
	noInvalid(t, d2)
}

// Unicast adverts carry the peer's address in the checksum's pseudo-header
// instead of the group's; both sides must agree on it.
func TestKeepalivedInteropUnicast(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath(keepalivedBin); err != nil {
		t.Skip("needs keepalived")
	}
	l := newLab(t, "ka", "d2")
	uni := fmt.Sprintf("unicast_src_ip %s\n  unicast_peer {\n    %s\n  }", l.addr("ka"), l.addr("d2"))
	ka := l.keepalived("ka", 150, uni)
	d2 := l.director("d2", 100, "-peers", l.addr("ka"))
	eventually(t, "keepalived MASTER, lbd BACKUP", func() bool {
		return ka.lastState() == "MASTER" && l.hasVIP("ka", vip) && d2.stateOf() == "BACKUP" && !l.hasVIP("d2", vip)
	})
	holds(t, "lbd stays BACKUP under keepalived", time.Second, func() bool { return d2.stateOf() == "BACKUP" })
	ka.kill9()
	eventually(t, "lbd MASTER with VIP", func() bool { return d2.stateOf() == "MASTER" && l.hasVIP("d2", vip) })
	ka = l.keepalived("ka", 150, uni)
	eventually(t, "keepalived MASTER again, lbd BACKUP", func() bool {
		return ka.lastState() == "MASTER" && l.hasVIP("ka", vip) && d2.stateOf() == "BACKUP" && !l.hasVIP("d2", vip)
	})
	noInvalid(t, d2)
	if strings.Contains(d2.logText(), "unexpected source") {
		t.Fatal("lbd dropped keepalived's unicast adverts as from an unexpected source")
	}
	// And the other way round: lbd's unicast adverts keep keepalived in
	// BACKUP once lbd has the better priority.
	d2.stop()
	d2 = l.director("d2", 200, "-peers", l.addr("ka"))
	eventually(t, "lbd (200) MASTER, keepalived BACKUP", func() bool {
		return d2.stateOf() == "MASTER" && l.hasVIP("d2", vip) && ka.lastState() == "BACKUP" && !l.hasVIP("ka", vip)
	})
	holds(t, "keepalived stays BACKUP under lbd", time.Second, func() bool { return ka.lastState() == "BACKUP" })
}
