//go:build integration

package acl

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lbd-project/lbd/internal/testutil"
	"github.com/lbd-project/lbd/internal/testutil/netnstest"
)

// Addresses inside the test namespaces only.
const (
	srv4, srv6 = "10.77.0.1", "fd77::1"
	cA4, cA6   = "10.77.0.10", "fd77::10" // tenant a's source
	cB4, cB6   = "10.77.0.20", "fd77::20" // inside tenant b's 10.77.0.16/28
	cO4, cO6   = "10.77.0.40", "fd77::40" // outsider
)

type fixture struct {
	lan        *lan
	a, b, o    string // client namespaces
	tenants    []Tenant
	vip4, vip6 netip.Addr
}

func newFixture(t *testing.T) *fixture {
	requireRoot(t)
	l := newLAN(t, srv4, srv6)
	f := &fixture{
		lan:  l,
		a:    l.client(cA4+"/24", cA6+"/64"),
		b:    l.client(cB4+"/24", cB6+"/64"),
		o:    l.client(cO4+"/24", cO6+"/64"),
		vip4: netip.MustParseAddr(srv4),
		vip6: netip.MustParseAddr(srv6),
	}
	f.tenants = []Tenant{
		{Name: "a", VIP: f.vip4, Port: 7001, Allow: pfx(cA4)},
		{Name: "b", VIP: f.vip4, Port: 7002, Allow: pfx("10.77.0.16/28")},
		{Name: "a6", VIP: f.vip6, Port: 7003, Allow: pfx(cA6)},
		{Name: "u", VIP: f.vip4, Port: 7004, Protocol: UDP, Allow: pfx(cB4)},
		{Name: "empty", VIP: f.vip4, Port: 7005},
	}
	return f
}

// serve starts the listeners, after the ACL is in place as lbd does it.
func (f *fixture) serve(t *testing.T) {
	for _, p := range []string{"7001", "7002", "7005", "7999"} {
		serveTCP(t, f.lan.srv, hostPort(srv4, p))
	}
	serveTCP(t, f.lan.srv, hostPort(srv6, "7003"))
	serveUDP(t, f.lan.srv, hostPort(srv4, "7004"))
}

func TestIntegrationAllowLists(t *testing.T) {
	f := newFixture(t)
	m := newTestManager(t, f.lan.srv, Options{})
	if err := m.Apply(bg(), f.tenants); err != nil {
		t.Fatal(err)
	}
	f.serve(t)

	check(t, "initial", []probe{
		tcp(f.a, srv4, "7001", true),  // allowed source
		tcp(f.o, srv4, "7001", false), // outsider gets nothing
		tcp(f.b, srv4, "7001", false), // b's source cannot reach a's port
		tcp(f.b, srv4, "7002", true),  // CIDR entry
		tcp(f.a, srv4, "7002", false), // a's source cannot reach b's port
		tcp(f.o, srv4, "7002", false),
		tcp(f.a, srv6, "7003", true), // IPv6
		tcp(f.b, srv6, "7003", false),
		tcp(f.o, srv6, "7003", false),
		{from: f.b, network: "udp", addr: hostPort(srv4, "7004"), want: true},
		{from: f.o, network: "udp", addr: hostPort(srv4, "7004"), want: false},
		tcp(f.a, srv4, "7005", false), // empty list: nobody
		tcp(f.o, srv4, "7999", true),  // not a tenant port: untouched
	})

	// The drops were lbd's: its counters saw them.
	st, err := m.State(bg())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		if !s.Enforced {
			t.Errorf("%s/%d not enforced: %+v", s.Tenant, s.Family, s)
		}
		if s.Tenant != "empty" && s.Packets == 0 {
			t.Errorf("%s: no drops counted: %+v", s.Tenant, s)
		}
	}

	// Each update decides the very next connection.
	if err := m.AddAllow(bg(), "a", pfx(cO4)); err != nil {
		t.Fatal(err)
	}
	check(t, "after add", []probe{tcp(f.o, srv4, "7001", true), tcp(f.a, srv4, "7001", true)})
	if err := m.RemoveAllow(bg(), "a", pfx(cO4)); err != nil {
		t.Fatal(err)
	}
	check(t, "after remove", []probe{tcp(f.o, srv4, "7001", false), tcp(f.a, srv4, "7001", true)})
	if err := m.SetAllow(bg(), "b", pfx(cA4, "10.77.0.32/27")); err != nil { // swap: a and o in, b out
		t.Fatal(err)
	}
	check(t, "after replace", []probe{
		tcp(f.a, srv4, "7002", true), tcp(f.o, srv4, "7002", true), tcp(f.b, srv4, "7002", false),
	})
	if err := m.SetAllow(bg(), "b", nil); err != nil {
		t.Fatal(err)
	}
	check(t, "after emptying", []probe{tcp(f.a, srv4, "7002", false), tcp(f.o, srv4, "7002", false)})
	if err := m.AddAllow(bg(), "a6", pfx("fd77::/64")); err != nil {
		t.Fatal(err)
	}
	check(t, "after v6 add", []probe{tcp(f.o, srv6, "7003", true)})
}

func TestIntegrationReject(t *testing.T) {
	f := newFixture(t)
	m := newTestManager(t, f.lan.srv, Options{Action: Reject})
	if err := m.Apply(bg(), f.tenants); err != nil {
		t.Fatal(err)
	}
	f.serve(t)
	// Refused at once (a reset), not silence.
	for _, p := range []probe{
		{from: f.o, network: "tcp", addr: hostPort(srv4, "7001")},
		{from: f.o, network: "tcp", addr: hostPort(srv6, "7003")},
	} {
		ok, err := reach(p.from, p.network, p.addr, false)
		if ok || err == nil || isTimeout(err) {
			t.Errorf("%s: got ok=%v err=%v, want refused", p.addr, ok, err)
		}
	}
	check(t, "reject allowed", []probe{tcp(f.a, srv4, "7001", true), tcp(f.a, srv6, "7003", true)})
}

// Tenants without a VIP fence the port on every local address, both
// families: a storage node's second line of defence.
func TestIntegrationAnyAddress(t *testing.T) {
	f := newFixture(t)
	m := newTestManager(t, f.lan.srv, Options{})
	if err := m.Apply(bg(), []Tenant{{Name: "node", Port: 7001, Allow: pfx(cA4, cA6)}}); err != nil {
		t.Fatal(err)
	}
	f.serve(t)
	serveTCP(t, f.lan.srv, hostPort(srv6, "7001"))
	check(t, "any address", []probe{
		tcp(f.a, srv4, "7001", true), tcp(f.a, srv6, "7001", true),
		tcp(f.o, srv4, "7001", false), tcp(f.o, srv6, "7001", false),
	})
}

// A restarted Manager reads back, from real iptables and ipset listings,
// exactly the fences the last run recorded, before its first Apply.
func TestIntegrationAdoptAfterRestart(t *testing.T) {
	f := newFixture(t)
	tenants := append(slices.Clone(f.tenants), Tenant{Name: "node", Port: 7006, Allow: pfx(cA4, cA6, "0.0.0.0/0")})
	first := newTestManager(t, f.lan.srv, Options{Action: Reject})
	if err := first.Apply(bg(), tenants); err != nil {
		t.Fatal(err)
	}
	first.Close()
	m := newTestManager(t, f.lan.srv, Options{})
	if err := m.Adopt(bg()); err != nil {
		t.Fatal(err)
	}
	got, want := m.Tenants(), first.Tenants()
	if len(got) != len(tenants) || !reflect.DeepEqual(got, want) {
		t.Errorf("adopted\n%+v\nwant\n%+v", got, want)
	}
}

// ruleDump is the namespace's rules and sets, as an operator would list them.
func ruleDump(t *testing.T, ns string, bins ...string) []string {
	var lines []string
	for _, bin := range bins {
		for _, l := range strings.Split(netnstest.Exec(t, "ip", "netns", "exec", ns, bin, "-S"), "\n") {
			if l != "" && !strings.HasPrefix(l, "#") {
				lines = append(lines, bin+" "+l)
			}
		}
	}
	return lines
}

func withoutLBD(lines []string) []string {
	return slices.DeleteFunc(slices.Clone(lines), func(l string) bool {
		return strings.Contains(l, DefaultChain) || strings.Contains(l, "--match-set LBD")
	})
}

func setNames(t *testing.T, ns string) []string {
	out := strings.Fields(netnstest.Exec(t, "ip", "netns", "exec", ns, "ipset", "list", "-n"))
	slices.Sort(out)
	return out
}

func TestIntegrationOperatorRulesSurvive(t *testing.T) {
	f := newFixture(t)
	ns := f.lan.srv
	for _, args := range [][]string{
		{"iptables", "-A", "INPUT", "-s", "192.0.2.1", "-j", "ACCEPT"},
		{"iptables", "-A", "INPUT", "-p", "tcp", "--dport", "22", "-m", "comment", "--comment", "operator ssh", "-j", "ACCEPT"},
		{"iptables", "-N", "OPS"},
		{"iptables", "-A", "OPS", "-p", "icmp", "-j", "RETURN"},
		{"iptables", "-A", "INPUT", "-j", "OPS"},
		{"iptables", "-A", "FORWARD", "-j", "DROP"},
		{"ip6tables", "-A", "INPUT", "-s", "2001:db8::1", "-j", "ACCEPT"},
		{"ipset", "create", "operator", "hash:ip"},
		{"ipset", "add", "operator", "192.0.2.7"},
		{"iptables", "-A", "INPUT", "-m", "set", "--match-set", "operator", "src", "-j", "ACCEPT"},
	} {
		netnstest.Exec(t, append([]string{"ip", "netns", "exec", ns}, args...)...)
	}
	before := ruleDump(t, ns, "iptables", "ip6tables")
	beforeSets := setNames(t, ns)

	m := newTestManager(t, ns, Options{})
	if err := m.Apply(bg(), f.tenants); err != nil { // start
		t.Fatal(err)
	}
	started := ruleDump(t, ns, "iptables", "ip6tables")
	if got := withoutLBD(started); !slices.Equal(got, before) {
		t.Errorf("after start, operator rules changed:\n got %q\nwant %q", got, before)
	}
	// lbd's jump is first, so tenant traffic meets the ACL before any
	// operator ACCEPT.
	if i := slices.IndexFunc(started, func(l string) bool { return strings.HasPrefix(l, "iptables -A INPUT") }); i < 0 || !strings.HasSuffix(started[i], "-j "+DefaultChain) {
		t.Errorf("first INPUT rule is not lbd's jump: %q", started)
	}

	reload := slices.Clone(f.tenants)[1:]         // tenant a goes
	reload[0].Port = 7102                         // tenant b moves
	if err := m.Apply(bg(), reload); err != nil { // reload
		t.Fatal(err)
	}
	if got := withoutLBD(ruleDump(t, ns, "iptables", "ip6tables")); !slices.Equal(got, before) {
		t.Errorf("after reload, operator rules changed:\n got %q\nwant %q", got, before)
	}
	if err := m.Close(); err != nil { // stop
		t.Fatal(err)
	}
	stopped := ruleDump(t, ns, "iptables", "ip6tables")
	if got := withoutLBD(stopped); !slices.Equal(got, before) {
		t.Errorf("after stop, operator rules changed:\n got %q\nwant %q", got, before)
	}
	if len(stopped) == len(before) {
		t.Error("stopping removed lbd's rules: ports would open")
	}

	// Restart: the new Manager adopts everything and rewrites nothing.
	m2 := newTestManager(t, ns, Options{})
	if err := m2.Apply(bg(), reload); err != nil {
		t.Fatal(err)
	}
	if got := ruleDump(t, ns, "iptables", "ip6tables"); !slices.Equal(got, stopped) {
		t.Errorf("restart changed rules:\n got %q\nwant %q", got, stopped)
	}
	if err := m2.Purge(bg()); err != nil {
		t.Fatal(err)
	}
	if got := ruleDump(t, ns, "iptables", "ip6tables"); !slices.Equal(got, before) {
		t.Errorf("after purge:\n got %q\nwant %q", got, before)
	}
	if got := setNames(t, ns); !slices.Equal(got, beforeSets) {
		t.Errorf("sets after purge %q, want %q", got, beforeSets)
	}
}

// The legacy (x_tables) backend works the same way.
func TestIntegrationLegacyBackend(t *testing.T) {
	if _, err := exec.LookPath("iptables-legacy"); err != nil {
		t.Skip("no iptables-legacy")
	}
	f := newFixture(t)
	m := newTestManager(t, f.lan.srv, Options{Backend: BackendLegacy})
	if err := m.Apply(bg(), f.tenants); err != nil {
		t.Fatal(err)
	}
	f.serve(t)
	check(t, "legacy", []probe{
		tcp(f.a, srv4, "7001", true), tcp(f.o, srv4, "7001", false),
		tcp(f.a, srv6, "7003", true), tcp(f.o, srv6, "7003", false),
	})
	if err := m.AddAllow(bg(), "a", pfx(cO4)); err != nil {
		t.Fatal(err)
	}
	check(t, "legacy update", []probe{tcp(f.o, srv4, "7001", true)})
}

// A Manager bound to one namespace changes nothing anywhere else, even
// though the process (and the goroutines that call it) live elsewhere.
func TestIntegrationNamespaceIsolation(t *testing.T) {
	requireRoot(t)
	one, two := netnstest.New(t, "lbdacl"), netnstest.New(t, "lbdacl")
	beforeTwo := ruleDump(t, two, "iptables", "ip6tables")
	m := newTestManager(t, one, Options{})
	tenants := []Tenant{
		{Name: "x", VIP: netip.MustParseAddr("10.9.0.1"), Port: 1, Allow: pfx("10.9.0.0/24")},
		{Name: "y", VIP: netip.MustParseAddr("fd09::1"), Port: 1, Allow: pfx("fd09::/64")},
	}
	if err := m.Apply(bg(), tenants); err != nil {
		t.Fatal(err)
	}
	if err := m.SetAllow(bg(), "x", pfx("10.9.1.0/24", "10.9.2.0/24")); err != nil {
		t.Fatal(err)
	}
	if got := ruleDump(t, one, "iptables", "ip6tables"); !slices.ContainsFunc(got, func(l string) bool { return strings.Contains(l, DefaultChain) }) {
		t.Errorf("no lbd rules in the Manager's namespace: %q", got)
	}
	if got := len(setNames(t, one)); got != 2 {
		t.Errorf("%d sets in the Manager's namespace, want 2", got)
	}
	if got := ruleDump(t, two, "iptables", "ip6tables"); !slices.Equal(got, beforeTwo) {
		t.Errorf("other namespace changed: %q", got)
	}
	if got := setNames(t, two); len(got) != 0 {
		t.Errorf("sets leaked into another namespace: %q", got)
	}
}

// A kernel call that fails leaves the previous list enforced and is
// reported. The failure is real: someone else's rule holds a set by the
// name the update needs for its temporary set, so the kernel refuses to
// let lbd clear it away.
func TestIntegrationFailedUpdateKeepsOldList(t *testing.T) {
	f := newFixture(t)
	ns := f.lan.srv
	m := newTestManager(t, ns, Options{})
	if err := m.Apply(bg(), f.tenants); err != nil {
		t.Fatal(err)
	}
	f.serve(t)
	tmp := m.names.tempName(m.names.setName("a", v4))
	netnstest.Exec(t, "ip", "netns", "exec", ns, "ipset", "create", tmp, "hash:ip")
	netnstest.Exec(t, "ip", "netns", "exec", ns, "iptables", "-A", "OUTPUT", "-m", "set", "--match-set", tmp, "dst", "-j", "ACCEPT")

	err := m.SetAllow(bg(), "a", pfx(cO4, "10.77.0.128/25"))
	if err == nil {
		t.Fatal("update succeeded although its temporary set was held")
	}
	t.Logf("reported: %v", err)
	check(t, "after failed update", []probe{tcp(f.a, srv4, "7001", true), tcp(f.o, srv4, "7001", false)})
	if tn, _ := m.Tenant("a"); len(tn.Allow) != 1 {
		t.Errorf("recorded list %v, want the old one", tn.Allow)
	}
	// Once the obstacle is gone the same update goes through.
	netnstest.Exec(t, "ip", "netns", "exec", ns, "iptables", "-D", "OUTPUT", "-m", "set", "--match-set", tmp, "dst", "-j", "ACCEPT")
	if err := m.SetAllow(bg(), "a", pfx(cO4, "10.77.0.128/25")); err != nil {
		t.Fatal(err)
	}
	check(t, "after retry", []probe{tcp(f.a, srv4, "7001", false), tcp(f.o, srv4, "7001", true)})
}

// Removing a source takes effect at its next packet, even on a connection
// it already has: the rule matches every packet, not only new connections.
func TestIntegrationRemovalCutsEstablished(t *testing.T) {
	f := newFixture(t)
	m := newTestManager(t, f.lan.srv, Options{})
	if err := m.Apply(bg(), []Tenant{{Name: "e", VIP: f.vip4, Port: 7010, Allow: pfx(cO4)}}); err != nil {
		t.Fatal(err)
	}
	var ln net.Listener
	if err := netnstest.Do(f.lan.srv, func() (err error) { ln, err = net.Listen("tcp", hostPort(srv4, "7010")); return err }); err != nil {
		t.Fatal(err)
	}
	testutil.Serve(t, ln, func(c net.Conn) {
		go io.Copy(c, c) // echo
	})
	var c net.Conn
	if err := netnstest.Do(f.o, func() (err error) { c, err = net.DialTimeout("tcp", hostPort(srv4, "7010"), allowedWait); return err }); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	echo := func(msg string, wait time.Duration) error {
		c.SetDeadline(time.Now().Add(wait))
		if _, err := c.Write([]byte(msg + "\n")); err != nil {
			return err
		}
		got, err := r.ReadString('\n')
		if err == nil && got != msg+"\n" {
			return fmt.Errorf("echo %q, want %q", got, msg)
		}
		return err
	}
	if err := echo("one", allowedWait); err != nil {
		t.Fatalf("before removal: %v", err)
	}
	if err := m.RemoveAllow(bg(), "e", pfx(cO4)); err != nil {
		t.Fatal(err)
	}
	if err := echo("two", blockedWait); !isTimeout(err) {
		t.Fatalf("after removal the established connection still talks: %v", err)
	}
	// Allowed again, TCP's retransmission delivers what was held back.
	if err := m.AddAllow(bg(), "e", pfx(cO4)); err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(allowedWait))
	if got, err := r.ReadString('\n'); err != nil || got != "two\n" {
		t.Fatalf("after re-allowing: %q, %v", got, err)
	}
}
