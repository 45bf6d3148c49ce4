//go:build vm

package ipvs_test

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/lbd-project/lbd/internal/testutil/netnstest"
	"github.com/lbd-project/lbd/pkg/ipvs"
)

func newKernel(t *testing.T, ns string) *ipvs.Netlink {
	t.Helper()
	k, err := ipvs.NewNetlink("/run/netns/" + ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	return k
}

func mustApply(t *testing.T, r *ipvs.Reconciler, desired []ipvs.Service) ipvs.Result {
	t.Helper()
	res, err := r.Apply(context.Background(), desired)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return res
}

// TestVMDirectRouting sends real TCP connections from a client namespace to
// VIP:port; the director balances them round-robin to two real servers in
// DR mode, and the replies go straight from the real servers to the client
// (the director's IPVS counts no packet out).
func TestVMDirectRouting(t *testing.T) {
	needIPVS(t)
	l := newLab(t)
	const port = 13101
	l.serve(t, port)
	r, err := ipvs.NewReconciler(newKernel(t, l.director), ipvs.Options{StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	vip := netip.MustParseAddr(l.vip)
	desired := []ipvs.Service{{Addr: vip, Port: port, Protocol: ipvs.TCP, Scheduler: "rr", Dests: []ipvs.Dest{
		{Addr: netip.MustParseAddr(l.realIPs[0]), Weight: 1},
		{Addr: netip.MustParseAddr(l.realIPs[1]), Weight: 1},
	}}}
	mustApply(t, r, desired)
	t.Logf("director:\n%s", ipvsadm(t, l.director, "-Ln"))

	seen := map[string]int{}
	for i := 0; i < 10; i++ {
		who, err := l.ask(t, port)
		if err != nil {
			t.Fatalf("connection %d to %s:%d: %v", i, l.vip, port, err)
		}
		seen[who]++
	}
	t.Logf("answers: %v", seen)
	for _, rs := range l.reals {
		if seen[rs] == 0 {
			t.Errorf("real server %s got no connection: %v", rs, seen)
		}
	}
	// The kernel folds its per-CPU counters into these every two seconds.
	var st ipvs.Stats
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		snap, err := r.Snapshot(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(snap) != 1 || !snap[0].Owned || len(snap[0].Dests) != 2 {
			t.Fatalf("snapshot: %+v", snap)
		}
		st = snap[0].Stats
		if st.Conns >= 10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("director did not count the 10 connections: %+v", st)
		}
	}
	t.Logf("director stats: conns %d, in %d packets, out %d packets", st.Conns, st.PacketsIn, st.PacketsOut)
	if st.PacketsIn == 0 {
		t.Errorf("director saw no packet in: %+v", st)
	}
	if st.PacketsOut != 0 {
		t.Errorf("director saw %d reply packets; in DR they go straight to the client", st.PacketsOut)
	}
}

func lines(s string) string { return strings.Join(strings.Fields(s), " ") }

// TestVMReconcile checks reconcile semantics on the real kernel: zero writes
// when nothing changed, exactly one for one weight, hand-made services
// survive, a new Reconciler adopts the old one's services without a write,
// and a removed real server drains at weight 0 before it is deleted.
func TestVMReconcile(t *testing.T) {
	needIPVS(t)
	ns := netnstest.New(t, "lbdrec")
	k := newKernel(t, ns)
	state := t.TempDir()
	opts := ipvs.Options{StateDir: state, DrainPeriod: time.Second}
	r, err := ipvs.NewReconciler(k, opts)
	if err != nil {
		t.Fatal(err)
	}
	ipvsadm(t, ns, "-A", "-t", "192.0.2.99:80", "-s", "wlc")
	ipvsadm(t, ns, "-a", "-t", "192.0.2.99:80", "-r", "10.9.0.1:80", "-g", "-w", "4")

	desired := func(w int) []ipvs.Service {
		var out []ipvs.Service
		for p := uint16(1000); p < 1010; p++ {
			out = append(out, svc("203.0.113.10", p, dest("10.0.0.1", 1), dest("10.0.0.2", 1), dest("10.0.0.3", w)))
		}
		return out
	}
	res := mustApply(t, r, desired(1))
	if res.Writes != 40 || res.Failed != 0 {
		t.Fatalf("converge: %+v", res)
	}
	if res = mustApply(t, r, desired(1)); res.Writes != 0 {
		t.Fatalf("unchanged: %d writes, want 0", res.Writes)
	}
	d := desired(1)
	d[3].Dests[1].Weight = 9
	if res = mustApply(t, r, d); res.Writes != 1 {
		t.Fatalf("one weight: %d writes, want 1", res.Writes)
	}
	if out := lines(ipvsadm(t, ns, "-Ln", "-t", "203.0.113.10:1003")); !strings.Contains(out, "10.0.0.2:1003 Route 9") {
		t.Fatalf("weight not applied:\n%s", out)
	}

	// A restart: a new Reconciler with the same state adopts everything.
	r2, err := ipvs.NewReconciler(newKernel(t, ns), opts)
	if err != nil {
		t.Fatal(err)
	}
	if res = mustApply(t, r2, d); res.Writes != 0 || !res.Full {
		t.Fatalf("adopt after restart: %+v", res)
	}

	// Remove one real server: weight 0 now, gone after the drain period.
	d[5].Dests = d[5].Dests[:2]
	if res = mustApply(t, r2, d); res.Writes != 1 || res.Draining != 1 {
		t.Fatalf("remove real server: %+v", res)
	}
	if out := lines(ipvsadm(t, ns, "-Ln", "-t", "203.0.113.10:1005")); !strings.Contains(out, "10.0.0.3:1005 Route 0") {
		t.Fatalf("removed real server not at weight 0:\n%s", out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		res = mustApply(t, r2, d)
		if res.DestsDeleted == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("drained real server never deleted")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if out := ipvsadm(t, ns, "-Ln", "-t", "203.0.113.10:1005"); strings.Contains(out, "10.0.0.3") {
		t.Fatalf("drained real server still there:\n%s", out)
	}

	// Remove every service of ours (no drain for the test's sake): the
	// hand-made one stays, untouched.
	r3, err := ipvs.NewReconciler(newKernel(t, ns), ipvs.Options{StateDir: state, DrainPeriod: -1})
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, r3, nil)
	out := lines(ipvsadm(t, ns, "-Ln"))
	if !strings.Contains(out, "TCP 192.0.2.99:80 wlc -> 10.9.0.1:80 Route 4") || strings.Contains(out, "203.0.113.10") {
		t.Fatalf("after removing lbd's services:\n%s", ipvsadm(t, ns, "-Ln"))
	}
}

// TestVMRoundTrip writes every kind of service the package supports and
// reads it back: a new Reconciler must find nothing to change, which proves
// the netlink encoding and decoding agree with the kernel.
func TestVMRoundTrip(t *testing.T) {
	needIPVS(t)
	ns := netnstest.New(t, "lbdrt")
	state := t.TempDir()
	var desired []ipvs.Service
	for i, sched := range ipvs.Schedulers {
		desired = append(desired, ipvs.Service{
			Addr: netip.MustParseAddr("203.0.113.20"), Port: uint16(2000 + i), Protocol: ipvs.TCP, Scheduler: sched,
			Dests: []ipvs.Dest{{Addr: netip.MustParseAddr("10.0.1.1"), Weight: i}},
		})
	}
	desired = append(desired,
		ipvs.Service{Addr: netip.MustParseAddr("203.0.113.21"), Port: 53, Protocol: ipvs.UDP, Scheduler: "wrr",
			Persistence: 300 * time.Second, Dests: []ipvs.Dest{
				{Addr: netip.MustParseAddr("10.0.1.2"), Port: 5353, Weight: 3, Forward: ipvs.NAT},
				{Addr: netip.MustParseAddr("10.0.1.3"), Weight: 65535, Forward: ipvs.TUN},
			}},
		ipvs.Service{Addr: netip.MustParseAddr("2001:db8::21"), Port: 443, Protocol: ipvs.TCP, Scheduler: "sh",
			Persistence: time.Minute, Dests: []ipvs.Dest{
				{Addr: netip.MustParseAddr("2001:db8::1"), Weight: 1},
				{Addr: netip.MustParseAddr("2001:db8::2"), Weight: 2, Forward: ipvs.TUN},
			}},
		ipvs.Service{Addr: netip.MustParseAddr("203.0.113.22"), Port: 11211, Protocol: ipvs.TCP, Scheduler: "sh",
			Flags: ipvs.SchedFallback | ipvs.SchedPort, Dests: []ipvs.Dest{{Addr: netip.MustParseAddr("10.0.1.5"), Weight: 1}}},
		ipvs.Service{Addr: netip.MustParseAddr("203.0.113.22"), Port: 11212, Protocol: ipvs.TCP, Scheduler: "mh",
			Flags: ipvs.SchedFallback, Dests: []ipvs.Dest{{Addr: netip.MustParseAddr("10.0.1.5"), Weight: 1}}},
		ipvs.Service{Addr: netip.MustParseAddr("0.0.0.0"), FWMark: 42, Scheduler: "rr", Dests: []ipvs.Dest{
			{Addr: netip.MustParseAddr("10.0.1.4"), Weight: 1},
		}},
		ipvs.Service{Addr: netip.MustParseAddr("::"), FWMark: 43, Scheduler: "lc", Dests: []ipvs.Dest{
			{Addr: netip.MustParseAddr("2001:db8::4"), Weight: 1, Forward: ipvs.NAT, Port: 8443},
		}},
	)
	r, err := ipvs.NewReconciler(newKernel(t, ns), ipvs.Options{StateDir: state})
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, r, desired)
	t.Logf("kernel table:\n%s", ipvsadm(t, ns, "-Ln"))
	r2, err := ipvs.NewReconciler(newKernel(t, ns), ipvs.Options{StateDir: state})
	if err != nil {
		t.Fatal(err)
	}
	if res := mustApply(t, r2, desired); res.Writes != 0 || !res.Full {
		t.Fatalf("read back differs from what was written: %+v", res)
	}
	snap, err := r2.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(snap) != len(desired) {
		t.Fatalf("snapshot has %d services, want %d", len(snap), len(desired))
	}
}

// TestVMSchedulerFallback shows what sh-fallback is for: with sh, every
// connection of one client goes to the same real server; once that server
// is down (weight 0), the client is refused without the flag and sent to
// the other server with it.
func TestVMSchedulerFallback(t *testing.T) {
	needIPVS(t)
	l := newLab(t)
	const port = 13102
	l.serve(t, port)
	r, err := ipvs.NewReconciler(newKernel(t, l.director), ipvs.Options{StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	svc := func(flags ipvs.SchedFlags, w0, w1 int) []ipvs.Service {
		return []ipvs.Service{{Addr: netip.MustParseAddr(l.vip), Port: port, Protocol: ipvs.TCP, Scheduler: "sh", Flags: flags,
			Dests: []ipvs.Dest{
				{Addr: netip.MustParseAddr(l.realIPs[0]), Weight: w0},
				{Addr: netip.MustParseAddr(l.realIPs[1]), Weight: w1},
			}}}
	}
	mustApply(t, r, svc(0, 1, 1))
	first, err := l.ask(t, port)
	if err != nil {
		t.Fatal(err)
	}
	down := [2]int{1, 1}
	if first == l.reals[0] {
		down[0] = 0
	} else {
		down[1] = 0
	}
	// The client's server is down: without the flag, refused.
	mustApply(t, r, svc(0, down[0], down[1]))
	if who, err := l.ask(t, port); err == nil {
		t.Fatalf("sh without fallback: %s answered with %s down", who, first)
	}
	// sh-fallback: the other server takes the client.
	mustApply(t, r, svc(ipvs.SchedFallback, down[0], down[1]))
	if out := ipvsadm(t, l.director, "-Ln"); !strings.Contains(out, "sh-fallback") {
		t.Errorf("ipvsadm does not show the flag:\n%s", out)
	}
	for i := 0; i < 3; i++ {
		who, err := l.ask(t, port)
		if err != nil || who == first {
			t.Fatalf("sh-fallback: answer %q %v, want the other server than %s", who, err, first)
		}
	}
}
