//go:build integration

package acl

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/lbd-project/lbd/internal/testutil/netnstest"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

const crashEnv = "LBDACL_CRASH_CHILD_NS"

// TestIntegrationCrashChild is not a test on its own: it is the "lbd"
// that TestIntegrationKillMidUpdate starts and kills. It fences the
// fixture's tenants, then replaces tenant a's list with one big random
// list after another, reporting each finished update on stdout.
func TestIntegrationCrashChild(t *testing.T) {
	ns := os.Getenv(crashEnv)
	if ns == "" {
		t.Skip("helper process for TestIntegrationKillMidUpdate")
	}
	m, err := New(Options{NetNS: netnstest.Path(ns)})
	if err != nil {
		t.Fatal(err)
	}
	tenants := crashTenants()
	if err := m.Apply(bg(), tenants); err != nil {
		t.Fatal(err)
	}
	fmt.Println("ready")
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 1; ; i++ {
		allow := bigList(rng, 20000)
		if err := m.SetAllow(bg(), "a", append(allow, netip.MustParsePrefix(cA4+"/32"))); err != nil {
			t.Fatal(err)
		}
		fmt.Println("update", i)
	}
}

func crashTenants() []Tenant {
	return []Tenant{
		{Name: "a", VIP: netip.MustParseAddr(srv4), Port: 7001, Allow: pfx(cA4)},
		{Name: "b", VIP: netip.MustParseAddr(srv4), Port: 7002, Allow: pfx("10.77.0.16/28")},
		{Name: "a6", VIP: netip.MustParseAddr(srv6), Port: 7003, Allow: pfx(cA6)},
	}
}

// bigList draws n addresses from 100.64.0.0/10, far from every client.
func bigList(rng *rand.Rand, n int) []netip.Prefix {
	out := make([]netip.Prefix, n)
	for i := range out {
		v := 100<<24 | 64<<16 | rng.Uint32()&(1<<22-1)
		a := netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
		out[i] = netip.PrefixFrom(a, 32)
	}
	return out
}

// TestIntegrationKillMidUpdate kills lbd with SIGKILL while it is swapping
// big allow-lists in, and checks that every port is still closed to the
// outsider, that the allowed sources still get in, and that the next lbd
// adopts and cleans up what the dead one left.
func TestIntegrationKillMidUpdate(t *testing.T) {
	f := newFixture(t)
	ns := f.lan.srv
	served := false
	h, err := netlink.NewHandleAt(mustNS(t, ns), unix.NETLINK_NETFILTER)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	tmp := namer{setPrefix: DefaultSetPrefix}.tempName(namer{setPrefix: DefaultSetPrefix}.setName("a", v4))
	midUpdate := 0
	for round, killAfter := range []int{1, 2, 3} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestIntegrationCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashEnv+"="+ns)
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		killed := false
		for sc.Scan() {
			line := sc.Text()
			if !strings.HasPrefix(line, "update ") {
				t.Logf("child: %s", line)
			}
			if line == "ready" && !served {
				f.serve(t)
				served = true
			}
			if line == fmt.Sprint("update ", killAfter) {
				// Wait until the next update is under way (its
				// temporary set exists), then kill.
				waitForSet(t, h, tmp)
				cmd.Process.Signal(syscall.SIGKILL)
				killed = true
				break
			}
		}
		cmd.Wait()
		if !killed {
			t.Fatalf("round %d: child ended before update %d", round, killAfter)
		}
		sets := setNames(t, ns)
		t.Logf("round %d: killed after update %d; sets left: %q", round, killAfter, sets)
		if slices.Contains(sets, tmp) {
			midUpdate++
		}

		check(t, fmt.Sprintf("round %d after kill", round), []probe{
			tcp(f.o, srv4, "7001", false), tcp(f.o, srv4, "7002", false), tcp(f.o, srv6, "7003", false),
			tcp(f.b, srv4, "7001", false), tcp(f.a, srv4, "7002", false),
			tcp(f.a, srv4, "7001", true), tcp(f.b, srv4, "7002", true), tcp(f.a, srv6, "7003", true),
		})
	}

	if midUpdate == 0 {
		t.Error("no kill landed inside an update (no temp set was ever left behind)")
	}

	// The next lbd adopts: one Apply, and no temp set is left.
	m := newTestManager(t, ns, Options{})
	if err := m.Apply(bg(), crashTenants()); err != nil {
		t.Fatal(err)
	}
	for _, s := range setNames(t, ns) {
		if strings.HasSuffix(s, tempSuffix) {
			t.Errorf("temp set %s survived adoption", s)
		}
	}
	st, err := m.State(bg())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		if !s.Enforced || (s.Tenant == "a" && s.Entries != 1) {
			t.Errorf("after adoption: %+v", s)
		}
	}
	if len(st) != 3 || !slices.ContainsFunc(st, func(s State) bool { return s.Tenant == "a6" && s.Family == 6 }) {
		t.Errorf("states %+v", st)
	}
	check(t, "after adoption", []probe{tcp(f.o, srv4, "7001", false), tcp(f.a, srv4, "7001", true)})
}

func mustNS(t *testing.T, name string) netns.NsHandle {
	h, err := netns.GetFromPath(netnstest.Path(name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// waitForSet polls until set exists in the namespace h is bound to.
func waitForSet(t *testing.T, h *netlink.Handle, set string) {
	for i := 0; i < 10_000_000; i++ {
		if _, err := h.IpsetList(set); err == nil {
			return
		}
	}
	t.Fatalf("set %s never appeared", set)
}
