//go:build vm

package ipvs_test

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/lbd-project/lbd/internal/testutil/netnstest"
	"github.com/lbd-project/lbd/pkg/ipvs"
)

// TestVMSyncDaemons starts both sync daemons with every kernel >= 4.3
// option through netlink, reads them back as the kernel reports them (and
// as ipvsadm does), and stops them.
func TestVMSyncDaemons(t *testing.T) {
	needIPVS(t)
	ns := netnstest.New(t, "lbdsync")
	netnstest.Exec(t, "ip", "-n", ns, "link", "add", "sync0", "type", "veth", "peer", "name", "sync1")
	netnstest.Exec(t, "ip", "-n", ns, "addr", "add", "10.66.0.1/24", "dev", "sync0")
	netnstest.Exec(t, "ip", "-n", ns, "link", "set", "sync0", "up")
	netnstest.Exec(t, "ip", "-n", ns, "link", "set", "sync1", "up")
	k := newKernel(t, ns)
	want := []ipvs.SyncDaemon{
		{State: ipvs.SyncMaster, Interface: "sync0", SyncID: 51, MaxLen: 1400,
			Group: netip.MustParseAddr("239.1.2.3"), Port: 9000, TTL: 2},
		{State: ipvs.SyncBackup, Interface: "sync0", SyncID: 52, MaxLen: 1400,
			Group: netip.MustParseAddr("239.1.2.3"), Port: 9000, TTL: 2},
	}
	for _, d := range want {
		if err := k.StartSyncDaemon(d); err != nil {
			t.Fatalf("start %s: %v", d, err)
		}
	}
	got, err := k.SyncDaemons()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("read back %+v, want %+v", got, want)
	}
	out := ipvsadm(t, ns, "-Ln", "--daemon")
	if !strings.Contains(out, "master sync daemon (mcast=sync0, syncid=51") || !strings.Contains(out, "backup sync daemon (mcast=sync0, syncid=52") {
		t.Fatalf("ipvsadm sees:\n%s", out)
	}
	// A second master is refused; defaults come back as the kernel chose.
	if err := k.StartSyncDaemon(want[0]); err == nil {
		t.Error("a second master daemon was accepted")
	}
	for _, s := range []ipvs.SyncState{ipvs.SyncMaster, ipvs.SyncBackup} {
		if err := k.StopSyncDaemon(s); err != nil {
			t.Fatal(err)
		}
	}
	if err := k.StartSyncDaemon(ipvs.SyncDaemon{State: ipvs.SyncMaster, Interface: "sync0", SyncID: 1}); err != nil {
		t.Fatal(err)
	}
	got, err = k.SyncDaemons()
	if err != nil || len(got) != 1 {
		t.Fatalf("after restart with defaults: %+v %v", got, err)
	}
	t.Logf("kernel defaults: %s", got[0])
	if got[0].Port != 8848 || got[0].Group != netip.MustParseAddr("224.0.0.81") || got[0].TTL != 1 {
		t.Errorf("kernel defaults %+v: want port 8848, group 224.0.0.81, ttl 1", got[0])
	}
	k.StopSyncDaemon(ipvs.SyncMaster)

	// The IPv6 group (an IPv6 cluster's default), on the link-local
	// address of the interface.
	for _, st := range []ipvs.SyncState{ipvs.SyncBackup, ipvs.SyncMaster} {
		d := ipvs.SyncDaemon{State: st, Interface: "sync0", SyncID: 7, Group: netip.MustParseAddr("ff02::81")}
		var err error
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			// The link-local address may still be tentative (DAD).
			if err = k.StartSyncDaemon(d); err == nil || time.Now().After(deadline) {
				break
			}
		}
		if err != nil {
			t.Fatalf("start %s: %v", d, err)
		}
	}
	if got, err := k.SyncDaemons(); err != nil || len(got) != 2 || got[0].Group.String() != "ff02::81" || got[1].Group.String() != "ff02::81" {
		t.Fatalf("IPv6 group read back: %+v %v", got, err)
	}
	k.StopSyncDaemon(ipvs.SyncMaster)
	k.StopSyncDaemon(ipvs.SyncBackup)

	// The protocol version is the namespace's sysctl.
	for _, v := range []int{0, 1} {
		if err := netnstest.Do(ns, func() error { return ipvs.SetSyncVersion(v) }); err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(netnstest.Exec(t, "ip", "netns", "exec", ns, "sysctl", "-n", "net.ipv4.vs.sync_version")); got != fmt.Sprint(v) {
			t.Errorf("sync_version = %s after SetSyncVersion(%d)", got, v)
		}
	}
	if err := ipvs.SetSyncVersion(2); err == nil {
		t.Error("sync version 2 accepted")
	}
}
