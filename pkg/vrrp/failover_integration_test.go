//go:build integration

package vrrp_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// waitRoles waits until master is MASTER and holds the VIP and every
// backup is BACKUP without it.
func (l *lab) waitRoles(master *director, backups ...*director) {
	l.t.Helper()
	eventually(l.t, master.host+" MASTER with VIP, others BACKUP without", func() bool {
		if master.stateOf() != "MASTER" || !l.hasVIP(master.host, vip) {
			return false
		}
		for _, b := range backups {
			if b.stateOf() != "BACKUP" || l.hasVIP(b.host, vip) {
				return false
			}
		}
		return true
	})
}

// waitClientReaches waits until the client's connection to the VIP is
// answered by want and its ARP entry for the VIP is want's MAC.
func (l *lab) waitClientReaches(client, want string) {
	l.t.Helper()
	mac := l.mac(want)
	eventually(l.t, client+" reaches "+want+" at the VIP", func() bool {
		return l.dial(client) == want && l.neigh(client, vip) == mac
	})
}

func TestElectionFailoverPreemptCleanStop(t *testing.T) {
	t.Parallel()
	l := newLab(t, "d1", "d2", "c")
	d1 := l.director("d1", 150)
	d2 := l.director("d2", 100)
	l.waitRoles(d1, d2)
	l.waitClientReaches("c", "d1")

	// kill -9 the Master: the Backup takes over after Master_Down_Interval,
	// and the client follows its gratuitous ARP (its entry points at d1).
	d1.kill9()
	eventually(t, "d2 MASTER with VIP", func() bool { return d2.stateOf() == "MASTER" && l.hasVIP("d2", vip) })
	l.waitClientReaches("c", "d2")

	// The old Master returns; it preempts (the default). It first drops the
	// VIP its killed run left on eth0, and says so.
	d1 = l.director("d1", 150)
	l.waitRoles(d1, d2)
	l.waitClientReaches("c", "d1")
	const leftover = `level=WARN msg="vrrp: VIP was on the interface at start; removed it"`
	if log := d1.logText(); !strings.Contains(log, leftover) || !strings.Contains(log, "addr="+vip+"/32 interface=eth0") {
		t.Errorf("restarted d1 did not warn about the VIP its killed run left; log:\n%s", log)
	}
	if strings.Contains(d2.logText(), leftover) {
		t.Error("d2 warned about a leftover VIP, but it started without one")
	}

	// Clean stop: priority 0 hands over without waiting for the timeout.
	d1.stop()
	if l.hasVIP("d1", vip) {
		t.Fatal("d1 kept the VIP after a clean stop")
	}
	eventually(t, "d2 MASTER with VIP", func() bool { return d2.stateOf() == "MASTER" && l.hasVIP("d2", vip) })
	eventually(t, "d2 took over on priority 0", func() bool {
		return strings.Contains(d2.logText(), "to=MASTER")
	})
	l.waitClientReaches("c", "d2")
}

func TestNoPreempt(t *testing.T) {
	t.Parallel()
	l := newLab(t, "d1", "d2")
	notified := filepath.Join(t.TempDir(), "notify")
	// Adverts every 500 ms, not the lab's 100 ms: a loaded machine can
	// delay one by the 100 ms lab's Master_Down_Interval (~0.35 s), and
	// the backup then rightly takes over, nopreempt or not.
	slow := []string{"-nopreempt", "-int", "500ms"}
	d1 := l.director("d1", 150, slow...)
	d2 := l.director("d2", 100, append(slow, "-notify", `f() { echo "$*" >> `+notified+`; }; f`)...)
	l.waitRoles(d1, d2)
	d1.kill9()
	eventually(t, "d2 MASTER", func() bool { return d2.stateOf() == "MASTER" && l.hasVIP("d2", vip) })
	d1 = l.director("d1", 150, slow...)
	eventually(t, "d1 BACKUP", func() bool { return d1.stateOf() == "BACKUP" })
	// Past the Master_Down_Interval (~1.8 s) after which d1 would take
	// over if it ignored d2's lower-priority adverts (preempt), d2 is
	// still Master.
	holds(t, "d2 stays MASTER, d1 BACKUP", 3*time.Second, func() bool {
		return d2.stateOf() == "MASTER" && d1.stateOf() == "BACKUP" && !l.hasVIP("d1", vip)
	})
	// The notify script saw d2's changes with keepalived's arguments.
	want := "INSTANCE d2 BACKUP 100\nINSTANCE d2 MASTER 100\n"
	eventually(t, "notify script ran for BACKUP and MASTER", func() bool {
		b, _ := readFile(notified)
		return b == want
	})
}

func TestPartitionHeals(t *testing.T) {
	t.Parallel()
	l := newLab(t, "d1", "d2", "c")
	d1 := l.director("d1", 150)
	d2 := l.director("d2", 100)
	l.waitRoles(d1, d2)
	l.partition("d1")
	// Split brain is expected while the link is cut; the client, on d2's
	// side, follows d2.
	eventually(t, "both MASTER while partitioned", func() bool {
		return d1.stateOf() == "MASTER" && d2.stateOf() == "MASTER"
	})
	l.waitClientReaches("c", "d2")
	l.heal("d1")
	l.waitRoles(d1, d2)
	// d1 answered d2's lower-priority adverts with gratuitous ARPs, so the
	// client does not keep sending to d2 until its ARP entry expires.
	l.waitClientReaches("c", "d1")
	if !strings.Contains(d1.logText(), "announcing VIPs") {
		t.Fatal("d1 did not announce its VIPs after the partition healed")
	}
	holds(t, "exactly one MASTER", time.Second, func() bool {
		return d1.stateOf() == "MASTER" && d2.stateOf() == "BACKUP"
	})
}

func TestTrackInterfaceFault(t *testing.T) {
	t.Parallel()
	l := newLab(t, "d1", "d2")
	// This kernel has no dummy links; a veth pair inside d1 does.
	run(t, "ip", "-n", l.ns("d1"), "link", "add", "trk0", "type", "veth", "peer", "name", "trk1")
	run(t, "ip", "-n", l.ns("d1"), "link", "set", "trk1", "up")
	run(t, "ip", "-n", l.ns("d1"), "link", "set", "trk0", "up")
	d1 := l.director("d1", 150, "-track", "trk0")
	d2 := l.director("d2", 100)
	l.waitRoles(d1, d2)
	run(t, "ip", "-n", l.ns("d1"), "link", "set", "trk0", "down")
	eventually(t, "d1 FAULT, d2 MASTER", func() bool {
		return d1.stateOf() == "FAULT" && !l.hasVIP("d1", vip) && d2.stateOf() == "MASTER" && l.hasVIP("d2", vip)
	})
	run(t, "ip", "-n", l.ns("d1"), "link", "set", "trk0", "up")
	l.waitRoles(d1, d2)
}

// The VRRP interface itself is tracked: down means FAULT, and when it comes
// back the instance rejoins the election on the same socket.
func TestOwnInterfaceDown(t *testing.T) {
	t.Parallel()
	l := newLab(t, "d1", "d2")
	d1 := l.director("d1", 150)
	d2 := l.director("d2", 100)
	l.waitRoles(d1, d2)
	run(t, "ip", "-n", l.ns("d1"), "link", "set", "eth0", "down")
	eventually(t, "d1 FAULT without VIP, d2 MASTER", func() bool {
		return d1.stateOf() == "FAULT" && !l.hasVIP("d1", vip) && d2.stateOf() == "MASTER" && l.hasVIP("d2", vip)
	})
	run(t, "ip", "-n", l.ns("d1"), "link", "set", "eth0", "up")
	l.waitRoles(d1, d2)
}

func TestUnicastRejectsUnexpectedSource(t *testing.T) {
	t.Parallel()
	l := newLab(t, "d1", "d2", "rogue")
	d1 := l.director("d1", 150, "-peers", l.addr("d2"))
	d2 := l.director("d2", 100, "-peers", l.addr("d1"))
	l.waitRoles(d1, d2)
	// A rogue router with a better priority adverts to d1 by unicast. If
	// d1 listened it would step down; it must drop the adverts instead.
	rogue := l.director("rogue", 254, "-peers", l.addr("d1"))
	eventually(t, "d1 dropped an advert from the rogue", func() bool {
		return strings.Contains(d1.logText(), "unexpected source")
	})
	holds(t, "d1 stays MASTER", time.Second, func() bool { return d1.stateOf() == "MASTER" })
	rogue.kill9()
	// Unicast with one peer: a clean stop hands over at once.
	d1.stop()
	l.waitRoles(d2)
}

func TestSyncGroupMovesTogether(t *testing.T) {
	t.Parallel()
	l := newLab(t, "d1", "d2")
	grp := func(host string, prio int, extra ...string) *director {
		return l.director(host, prio, append([]string{"-vrid", "51,52", "-vip", vip + ";10.99.0.101", "-group", "g"}, extra...)...)
	}
	d1 := grp("d1", 150)
	d2 := grp("d2", 100)
	both := func(d *director, s string) bool {
		b, _ := readFile(d.state)
		return strings.Count(b, " "+s+"\n") == 2
	}
	eventually(t, "d1 both MASTER, d2 both BACKUP", func() bool {
		return both(d1, "MASTER") && both(d2, "BACKUP") && l.hasVIP("d1", vip) && l.hasVIP("d1", "10.99.0.101")
	})
	d1.stop()
	eventually(t, "d2 both MASTER", func() bool {
		return both(d2, "MASTER") && l.hasVIP("d2", vip) && l.hasVIP("d2", "10.99.0.101")
	})
}

// A sync group member that hears a Master holds the whole group in BACKUP,
// even though its other member has no Master at all, and the group does not
// flap between the two.
func TestSyncGroupHeldByMember(t *testing.T) {
	t.Parallel()
	l := newLab(t, "d1", "d2")
	d1 := l.director("d1", 150) // VRID 51 only
	d2 := l.director("d2", 100, "-vrid", "51,52", "-vip", vip+";10.99.0.101", "-group", "g")
	both := func(s string) bool {
		b, _ := readFile(d2.state)
		return strings.Count(b, " "+s+"\n") == 2
	}
	eventually(t, "d1 MASTER, d2's group BACKUP", func() bool {
		return d1.stateOf() == "MASTER" && both("BACKUP")
	})
	holds(t, "d2's group stays BACKUP", 2*time.Second, func() bool {
		return both("BACKUP") && !l.hasVIP("d2", "10.99.0.101")
	})
	d1.kill9()
	eventually(t, "d2's group MASTER", func() bool {
		return both("MASTER") && l.hasVIP("d2", vip) && l.hasVIP("d2", "10.99.0.101")
	})
}
