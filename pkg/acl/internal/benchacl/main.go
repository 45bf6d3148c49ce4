// Command benchacl measures pkg/acl against the seed's way of fencing
// tenant ports (one iptables ACCEPT rule per allowed source and a DROP per
// port, the whole rule set rewritten with iptables-restore on every change),
// in the same run, on the same kernel.
//
// It changes the filter table and ipsets of the network namespace it runs
// in, so run it only in a namespace made for it; scripts/bench-acl.sh does
// that. It refuses to run in the namespace of PID 1.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"time"

	"github.com/lbd-project/lbd/pkg/acl"
	"golang.org/x/sys/unix"
)

func main() {
	var (
		tenants = flag.Int("tenants", 1000, "number of tenants")
		sources = flag.Int("sources", 50, "allowed sources per tenant")
		updates = flag.Int("updates", 2000, "single-source updates to time")
		applies = flag.Int("applies", 5, "full applies from nothing to time")
		seedN   = flag.Int("seed-updates", 5, "per-rule rewrites to time")
	)
	flag.Parse()
	if err := refuseHostNS(); err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	set := makeTenants(*tenants, *sources)

	m, err := acl.New(acl.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	fmt.Printf("benchacl: %d tenants x %d sources, %d-entry lists, in netns %s\n",
		*tenants, *sources, *sources, nsID())

	// Full apply from nothing.
	var full []time.Duration
	for i := 0; i < *applies; i++ {
		must(m.Purge(ctx))
		start := time.Now()
		must(m.Apply(ctx, set))
		full = append(full, time.Since(start))
	}
	fmt.Printf("lbd full apply (%d tenants):           %s\n", *tenants, summary(full))

	// What a restart costs: a new Manager adopts the kernel's state and
	// finds nothing to change; and one State read (for metrics).
	var adopt, state []time.Duration
	for i := 0; i < *applies; i++ {
		m2, err := acl.New(acl.Options{})
		must(err)
		start := time.Now()
		must(m2.Apply(ctx, set))
		adopt = append(adopt, time.Since(start))
		start = time.Now()
		_, err = m2.State(ctx)
		must(err)
		state = append(state, time.Since(start))
		must(m2.Close())
	}
	fmt.Printf("lbd restart, adopt unchanged (%d):     %s\n", *tenants, summary(adopt))
	fmt.Printf("lbd State read (%d tenants):           %s\n", *tenants, summary(state))

	// One source added to one tenant, then removed again so every
	// sample starts from the same list; both directions are timed.
	target := set[len(set)/2].Name
	lbdAdd, lbdDel := timeUpdates(ctx, m, target, *updates)
	fmt.Printf("lbd add one source (%d tenants):       %s\n", *tenants, summary(lbdAdd))
	fmt.Printf("lbd remove one source (%d tenants):    %s\n", *tenants, summary(lbdDel))

	// The same with few tenants: the cost must not depend on the count.
	must(m.Purge(ctx))
	must(m.Apply(ctx, set[:10]))
	smallAdd, _ := timeUpdates(ctx, m, set[5].Name, *updates)
	fmt.Printf("lbd add one source (10 tenants):         %s\n", summary(smallAdd))
	must(m.Purge(ctx))

	// The seed's way.
	seedFull, err := seedRestore(ruleset(set, netip.Prefix{}))
	must(err)
	fmt.Printf("seed full load (%d rules):             %s\n", *tenants*(*sources+1), seedFull)
	var seedUpd []time.Duration
	for i := 0; i < *seedN; i++ {
		extra := netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)}), 32)
		d, err := seedRestore(ruleset(set, extra))
		must(err)
		seedUpd = append(seedUpd, d)
	}
	fmt.Printf("seed add one source (rewrite all):       %s\n", summary(seedUpd))
	var seedIns []time.Duration
	for i := 0; i < *seedN; i++ {
		d, err := seedInsert(set[len(set)/2], netip.AddrFrom4([4]byte{192, 0, 2, byte(100 + i)}))
		must(err)
		seedIns = append(seedIns, d)
	}
	fmt.Printf("seed add one source (one iptables -I):   %s\n", summary(seedIns))
	must(seedFlush())

	fmt.Println()
	fmt.Printf("RESULT full apply: lbd %s (goal < 1s) vs seed full load %s\n", median(full), seedFull)
	fmt.Printf("RESULT one update: lbd p50 %s p99 %s (goal < 2ms); with 10 tenants p50 %s\n",
		median(lbdAdd), pct(lbdAdd, 99), median(smallAdd))
	fmt.Printf("RESULT ratio seed rewrite / lbd update: %.0fx (goal >= 100x)\n", ratio(seedUpd, lbdAdd))
	fmt.Printf("RESULT ratio seed single iptables -I / lbd update: %.0fx\n", ratio(seedIns, lbdAdd))
}

func must(err error) {
	if err != nil {
		log.Fatal(err)
	}
}

// refuseHostNS checks that the process runs in the namespace named by
// $LBDACL_BENCH_NETNS (created by scripts/bench-acl.sh for this run).
func refuseHostNS() error {
	name := os.Getenv("LBDACL_BENCH_NETNS")
	if name == "" {
		return fmt.Errorf("benchacl: LBDACL_BENCH_NETNS is not set; run scripts/bench-acl.sh")
	}
	var want, self unix.Stat_t
	if err := unix.Stat("/run/netns/"+name, &want); err != nil {
		return fmt.Errorf("benchacl: netns %s: %w", name, err)
	}
	if err := unix.Stat("/proc/self/ns/net", &self); err != nil {
		return fmt.Errorf("benchacl: own netns: %w", err)
	}
	if want.Dev != self.Dev || want.Ino != self.Ino {
		return fmt.Errorf("benchacl: not running inside netns %s; refusing to touch this namespace's rules", name)
	}
	return nil
}

func nsID() string {
	s, _ := os.Readlink("/proc/self/ns/net")
	return s
}

// makeTenants builds n tenants on one VIP, each allowing k sources drawn
// from 100.64.0.0/10 (a tenth of them /24 networks).
func makeTenants(n, k int) []acl.Tenant {
	rng := rand.New(rand.NewPCG(42, 42))
	vip := netip.MustParseAddr("203.0.113.10")
	out := make([]acl.Tenant, n)
	for i := range out {
		allow := make([]netip.Prefix, k)
		for j := range allow {
			v := 100<<24 | 64<<16 | rng.Uint32()&(1<<22-1)
			a := netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
			bits := 32
			if j%10 == 0 {
				bits = 24
			}
			allow[j] = netip.PrefixFrom(a, bits).Masked()
		}
		out[i] = acl.Tenant{Name: fmt.Sprintf("tenant%04d", i), VIP: vip, Port: uint16(20000 + i), Allow: allow}
	}
	return out
}

func timeUpdates(ctx context.Context, m *acl.Manager, tenant string, n int) (add, del []time.Duration) {
	for i := 0; i < n; i++ {
		p := []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)}), 32)}
		start := time.Now()
		must(m.AddAllow(ctx, tenant, p))
		add = append(add, time.Since(start))
		start = time.Now()
		must(m.RemoveAllow(ctx, tenant, p))
		del = append(del, time.Since(start))
	}
	return add, del
}

// ruleset is the seed's filter table: per tenant one ACCEPT per source
// and a DROP, plus extra allowed for the middle tenant when valid.
func ruleset(tenants []acl.Tenant, extra netip.Prefix) []byte {
	var b bytes.Buffer
	b.WriteString("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n")
	for i, t := range tenants {
		allow := t.Allow
		if extra.IsValid() && i == len(tenants)/2 {
			allow = append(slices.Clone(allow), extra)
		}
		for _, p := range allow {
			fmt.Fprintf(&b, "-A INPUT -s %s -d %s/32 -p tcp -m tcp --dport %d -j ACCEPT\n", p, t.VIP, t.Port)
		}
		fmt.Fprintf(&b, "-A INPUT -d %s/32 -p tcp -m tcp --dport %d -j DROP\n", t.VIP, t.Port)
	}
	b.WriteString("COMMIT\n")
	return b.Bytes()
}

func seedRestore(rules []byte) (time.Duration, error) {
	cmd := exec.Command("iptables-restore", "--wait")
	cmd.Stdin = bytes.NewReader(rules)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("iptables-restore: %v: %s", err, out)
	}
	return time.Since(start), nil
}

// seedInsert is the per-rule way at its best: one iptables process that
// inserts one ACCEPT at the top of INPUT.
func seedInsert(t acl.Tenant, src netip.Addr) (time.Duration, error) {
	start := time.Now()
	out, err := exec.Command("iptables", "--wait", "-I", "INPUT", "1", "-s", src.String(),
		"-d", t.VIP.String(), "-p", "tcp", "--dport", fmt.Sprint(t.Port), "-j", "ACCEPT").CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("iptables -I: %v: %s", err, out)
	}
	return time.Since(start), nil
}

func seedFlush() error {
	out, err := exec.Command("iptables", "--wait", "-F", "INPUT").CombinedOutput()
	if err != nil {
		return fmt.Errorf("iptables -F: %v: %s", err, out)
	}
	return nil
}

func sorted(d []time.Duration) []time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s
}

func median(d []time.Duration) time.Duration { return pct(d, 50) }

func pct(d []time.Duration, p int) time.Duration {
	s := sorted(d)
	i := (len(s) - 1) * p / 100
	return s[i]
}

func summary(d []time.Duration) string {
	s := sorted(d)
	return fmt.Sprintf("n=%d min %s p50 %s p99 %s max %s", len(s), s[0], pct(s, 50), pct(s, 99), s[len(s)-1])
}

func ratio(slow, fast []time.Duration) float64 {
	return float64(median(slow)) / float64(median(fast))
}
