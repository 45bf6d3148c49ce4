// Command ipvsbench measures pkg/ipvs on a real kernel against ipvsadm, in
// the same run: converging N virtual services x M real servers into an empty
// table (lbd's Reconciler vs `ipvsadm -R` restoring the same rules), then,
// with N services in place, one changed weight (netlink work, and end to end
// from the YAML file through pkg/config). It needs root and kernel IPVS; run
// it through scripts/bench-ipvs.sh, which boots a VM that has both. Each
// measurement runs in a fresh network namespace.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/lbd-project/lbd/pkg/config"
	"github.com/lbd-project/lbd/pkg/ipvs"
)

func main() {
	services := flag.Int("services", 10000, "virtual services")
	reals := flag.Int("reals", 4, "real servers per service")
	rounds := flag.Int("rounds", 3, "converge rounds per contender (best is kept)")
	changes := flag.Int("changes", 20, "single-weight reloads to time")
	reloads := flag.Int("reloads", 3, "end-to-end reloads (YAML load + Apply) to time")
	parseOnly := flag.Bool("parse-only", false, "only time loading the YAML file (no kernel needed)")
	flag.Parse()
	log.SetFlags(0)
	tmp, err := os.MkdirTemp("", "ipvsbench")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	b := &bench{tmp: tmp, n: *services, m: *reals}
	if *parseOnly {
		b.parse(*rounds + 1)
		return
	}
	b.run(*rounds, *changes, *reloads)
}

type bench struct {
	tmp  string
	n, m int
	seq  int
}

// genYAML writes an lbd configuration with n plain virtual services
// (10 VIPs x n/10 ports) of m real servers each, all rr / DR.
func genYAML(n, m int, weight func(svc, real int) int) []byte {
	var b bytes.Buffer
	b.WriteString("nodes:\n  - {name: lb1, role: director, address: 192.168.12.231, interface: eth0}\n")
	b.WriteString("defaults:\n  scheduler: rr\n  forward: dr\n  health: {type: none}\n")
	b.WriteString("virtual_services:\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "  - vip: 203.0.113.%d\n    port: %d\n    reals:\n", 10+i%10, 10000+i/10)
		for j := 0; j < m; j++ {
			fmt.Fprintf(&b, "      - {address: 192.168.%d.%d, weight: %d}\n", 12+j/200, 10+j%200, weight(i, j))
		}
	}
	return b.Bytes()
}

// toIPVS mirrors the daemon's conversion of a resolved service.
func toIPVS(ss []config.ResolvedService) []ipvs.Service {
	out := make([]ipvs.Service, 0, len(ss))
	for _, s := range ss {
		proto := ipvs.TCP
		if s.Protocol == "udp" {
			proto = ipvs.UDP
		}
		fwd, _ := ipvs.ParseForward(s.Forward)
		v := ipvs.Service{Addr: s.VIP, Port: s.Port, Protocol: proto, Scheduler: s.Scheduler,
			Persistence: s.Persistence, Dests: make([]ipvs.Dest, 0, len(s.Reals))}
		for _, r := range s.Reals {
			v.Dests = append(v.Dests, ipvs.Dest{Addr: r.Addr, Port: r.Port, Weight: r.Weight, Forward: fwd})
		}
		out = append(out, v)
	}
	return out
}

// rules renders desired as `ipvsadm -S -n` would, for `ipvsadm -R`.
func rules(desired []ipvs.Service) []byte {
	var b bytes.Buffer
	for _, s := range desired {
		vs := netip.AddrPortFrom(s.Addr, s.Port).String()
		fmt.Fprintf(&b, "-A -t %s -s %s\n", vs, s.Scheduler)
		for _, d := range s.Dests {
			fmt.Fprintf(&b, "-a -t %s -r %s -g -w %d\n", vs, netip.AddrPortFrom(d.Addr, s.Port), d.Weight)
		}
	}
	return b.Bytes()
}

func (b *bench) newNS() string {
	b.seq++
	name := fmt.Sprintf("ipvsbench-%d-%d", os.Getpid(), b.seq)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		log.Fatalf("ip netns add %s: %v\n%s", name, err, out)
	}
	// Without lo up a new namespace has no local routing table, and the
	// kernel refuses DR real servers ("not unicast").
	if out, err := exec.Command("ip", "-n", name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		log.Fatalf("lo up in %s: %v\n%s", name, err, out)
	}
	return name
}

// delNS empties the table first: deleting a namespace tears its IPVS
// services down in the background, which would load the next measurement.
func delNS(name string) {
	exec.Command("ip", "netns", "exec", name, "ipvsadm", "-C").Run()
	exec.Command("ip", "netns", "del", name).Run()
	time.Sleep(5 * time.Second) // the namespace's teardown runs in the background

}

func countServices(ns string) int {
	out, err := exec.Command("ip", "netns", "exec", ns, "ipvsadm", "-Ln").Output()
	if err != nil {
		log.Fatalf("ipvsadm -Ln: %v", err)
	}
	return strings.Count(string(out), "\nTCP ")
}

// ipvsadmRestore times `ipvsadm -R` restoring the rules into an empty table.
func (b *bench) ipvsadmRestore(rulesFile string) time.Duration {
	ns := b.newNS()
	defer delNS(ns)
	f, err := os.Open(rulesFile)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command("ip", "netns", "exec", ns, "ipvsadm", "-R")
	cmd.Stdin, cmd.Stderr = f, os.Stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		log.Fatalf("ipvsadm -R: %v", err)
	}
	d := time.Since(start)
	if got := countServices(ns); got != b.n {
		log.Fatalf("ipvsadm -R made %d services, want %d", got, b.n)
	}
	return d
}

// lbdConverge times one Apply of desired into an empty table.
func (b *bench) lbdConverge(desired []ipvs.Service) ipvs.Result {
	ns := b.newNS()
	defer delNS(ns)
	k, err := ipvs.NewNetlink("/run/netns/" + ns)
	if err != nil {
		log.Fatal(err)
	}
	defer k.Close()
	r, err := ipvs.NewReconciler(k, ipvs.Options{StateDir: filepath.Join(b.tmp, ns)})
	if err != nil {
		log.Fatal(err)
	}
	res, err := r.Apply(context.Background(), desired)
	if err != nil {
		log.Fatalf("converge: %v", err)
	}
	if got := countServices(ns); got != b.n {
		log.Fatalf("lbd made %d services, want %d", got, b.n)
	}
	return res
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func maxOf(ds []time.Duration) time.Duration {
	m := ds[0]
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}

func (b *bench) run(rounds, changes, reloads int) {
	n, m := b.n, b.m
	fmt.Printf("ipvsbench: %d virtual services x %d real servers (%d netlink writes to converge), kernel %s\n",
		n, m, n*(m+1), kernelRelease())
	one := func(int, int) int { return 1 }
	yml := genYAML(n, m, one)
	cfgPath := filepath.Join(b.tmp, "lbd.yaml")
	os.WriteFile(cfgPath, yml, 0o644)
	t0 := time.Now()
	cfg, err := config.Load(cfgPath)
	if err != nil {
		log.Fatalf("config: %v", err)
	}
	desired := toIPVS(cfg.Services())
	parse := time.Since(t0)
	fmt.Printf("config: %d bytes of YAML parsed and resolved in %s\n", len(yml), ms(parse))
	rulesFile := filepath.Join(b.tmp, "rules")
	os.WriteFile(rulesFile, rules(desired), 0o644)

	// 1. Full converge, alternating who goes first.
	var best ipvs.Result
	var bestAdm time.Duration
	var ratios []float64
	for i := 0; i < rounds; i++ {
		var res ipvs.Result
		var adm time.Duration
		if i%2 == 0 {
			adm = b.ipvsadmRestore(rulesFile)
			res = b.lbdConverge(desired)
		} else {
			res = b.lbdConverge(desired)
			adm = b.ipvsadmRestore(rulesFile)
		}
		ratios = append(ratios, float64(res.Elapsed)/float64(adm))
		fmt.Printf("  round %d: ipvsadm -R %s, lbd Apply %s (netlink %s, %d writes); ratio %.2f\n",
			i+1, ms(adm), ms(res.Elapsed), ms(res.Netlink), res.Writes, ratios[i])
		if bestAdm == 0 || adm < bestAdm {
			bestAdm = adm
		}
		if best.Elapsed == 0 || res.Elapsed < best.Elapsed {
			best = res
		}
	}
	sort.Float64s(ratios)
	fmt.Printf("converge: best ipvsadm -R %s, best lbd %s; ratio of bests lbd/ipvsadm = %.2f, median of round ratios = %.2f (goal <= 1.0)\n",
		ms(bestAdm), ms(best.Elapsed), float64(best.Elapsed)/float64(bestAdm), ratios[len(ratios)/2])
	fmt.Printf("converge incl. YAML load in the VM: lbd %s; ratio = %.2f\n",
		ms(best.Elapsed+parse), float64(best.Elapsed+parse)/float64(bestAdm))

	// 2. One changed weight at n services, in a table that holds them.
	ns := b.newNS()
	defer delNS(ns)
	k, err := ipvs.NewNetlink("/run/netns/" + ns)
	if err != nil {
		log.Fatal(err)
	}
	defer k.Close()
	state := filepath.Join(b.tmp, ns)
	r, err := ipvs.NewReconciler(k, ipvs.Options{StateDir: state})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := r.Apply(context.Background(), desired); err != nil {
		log.Fatal(err)
	}
	var nl, el []time.Duration
	for i := 0; i < changes; i++ {
		svc, w := (i*7919)%n, 2+i
		desired[svc].Dests[1].Weight = w
		res, err := r.Apply(context.Background(), desired)
		if err != nil || res.Writes != 1 {
			log.Fatalf("one change: %d writes, err %v", res.Writes, err)
		}
		nl, el = append(nl, res.Netlink), append(el, res.Elapsed)
	}
	res, _ := r.Apply(context.Background(), desired)
	fmt.Printf("one weight change at %d services (%d runs): %d writes each; netlink median %s max %s (goal < 5 ms); Apply median %s max %s; unchanged re-apply: %d writes\n",
		n, changes, 1, ms(median(nl)), ms(maxOf(nl)), ms(median(el)), ms(maxOf(el)), res.Writes)

	// 3. The same, end to end: the edited YAML file is loaded, resolved,
	// converted and applied (what a SIGHUP does).
	var e2e []time.Duration
	for i := 0; i < reloads; i++ {
		target, w := (i*104729)%n, 100+i
		os.WriteFile(cfgPath, genYAML(n, m, func(s, j int) int {
			if s == target && j == 2 {
				return w
			}
			return desired[s].Dests[j].Weight
		}), 0o644)
		start := time.Now()
		cfg, err := config.Load(cfgPath)
		if err != nil {
			log.Fatal(err)
		}
		want := toIPVS(cfg.Services())
		res, err := r.Apply(context.Background(), want)
		if err != nil || res.Writes != 1 {
			log.Fatalf("reload: %d writes, err %v", res.Writes, err)
		}
		e2e = append(e2e, time.Since(start))
		desired = want
	}
	fmt.Printf("reload end to end (load YAML + resolve + Apply) at %d services: median %s max %s (goal < 1 s)\n",
		n, ms(median(e2e)), ms(maxOf(e2e)))

	// 4. A restart: a new Reconciler adopts the n services it finds.
	r2, err := ipvs.NewReconciler(k, ipvs.Options{StateDir: state})
	if err != nil {
		log.Fatal(err)
	}
	res, err = r2.Apply(context.Background(), desired)
	if err != nil || res.Writes != 0 {
		log.Fatalf("adopt: %d writes, err %v", res.Writes, err)
	}
	fmt.Printf("restart (full read-back of %d services, %d dumps, adopt): %s, %d writes\n",
		n, res.Reads, ms(res.Elapsed), res.Writes)
}

// parse times loading and resolving the YAML file with n services, the
// part of a reload that does not touch the kernel.
func (b *bench) parse(runs int) {
	path := filepath.Join(b.tmp, "lbd.yaml")
	yml := genYAML(b.n, b.m, func(int, int) int { return 1 })
	os.WriteFile(path, yml, 0o644)
	var ds []time.Duration
	for i := 0; i < runs; i++ {
		start := time.Now()
		cfg, err := config.Load(path)
		if err != nil {
			log.Fatal(err)
		}
		toIPVS(cfg.Services())
		ds = append(ds, time.Since(start))
	}
	fmt.Printf("config load + resolve of %d services (%d bytes of YAML) on this host: median %s over %d runs\n",
		b.n, len(yml), ms(median(ds)), runs)
}

func kernelRelease() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return strings.TrimSpace(string(b))
}
