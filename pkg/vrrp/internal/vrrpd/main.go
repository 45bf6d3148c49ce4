// Command vrrpd runs one or more VRRP instances from flags. It exists for
// the package's end-to-end tests and benchmark, which run it inside network
// namespaces; the lbd daemon is the real user of package vrrp.
//
// Several instances are made by listing several VRIDs; -vip then takes one
// address list per instance, separated by ";", and -group puts them in one
// sync group. SIGINT or SIGTERM stops cleanly (priority 0).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lbd-project/lbd/pkg/vrrp"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "vrrpd:", err)
		os.Exit(1)
	}
}

func splitList(s, sep string) []string {
	var out []string
	for _, f := range strings.Split(s, sep) {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func parsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range splitList(s, ",") {
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, fmt.Errorf("vip %q: %w", f, err)
			}
			f = netip.PrefixFrom(a, a.BitLen()).String()
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("vip %q: %w", f, err)
		}
		out = append(out, p)
	}
	return out, nil
}

func run() error {
	var (
		name         = flag.String("name", "vi", "instance name (suffixed with the VRID when there are several)")
		iface        = flag.String("iface", "eth0", "interface")
		vrids        = flag.String("vrid", "51", "virtual router IDs, comma-separated")
		prio         = flag.Int("prio", 100, "priority")
		interval     = flag.Duration("int", time.Second, "advert interval")
		vips         = flag.String("vip", "", "VIPs: comma-separated per instance, ';' between instances")
		nopreempt    = flag.Bool("nopreempt", false, "nopreempt")
		preemptDelay = flag.Duration("preempt-delay", 0, "preempt_delay")
		peers        = flag.String("peers", "", "unicast peers, comma-separated")
		src          = flag.String("src", "", "advert source address")
		track        = flag.String("track", "", "track_interface list, comma-separated")
		group        = flag.String("group", "", "sync group name")
		garpDelay    = flag.Duration("garp-delay", 0, "garp_master_delay (0: default 5s, <0: none)")
		notifyAny    = flag.String("notify", "", "notify script (gets TYPE NAME STATE PRIO)")
		stateFile    = flag.String("state-file", "", "file rewritten with 'name STATE' lines on every change")
		debug        = flag.Bool("debug", false, "debug logs")
		serve        = flag.String("serve", "", "also listen on this TCP address and answer every connection with -name (for client tests)")
	)
	flag.Parse()
	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	var peerAddrs []netip.Addr
	for _, f := range splitList(*peers, ",") {
		a, err := netip.ParseAddr(f)
		if err != nil {
			return fmt.Errorf("peer %q: %w", f, err)
		}
		peerAddrs = append(peerAddrs, a)
	}
	var srcAddr netip.Addr
	if *src != "" {
		a, err := netip.ParseAddr(*src)
		if err != nil {
			return fmt.Errorf("src %q: %w", *src, err)
		}
		srcAddr = a
	}
	ids := splitList(*vrids, ",")
	vipLists := strings.Split(*vips, ";")
	if len(vipLists) != len(ids) {
		return fmt.Errorf("%d VRIDs but %d VIP lists", len(ids), len(vipLists))
	}

	sf := &stateWriter{path: *stateFile, states: map[string]string{}}
	var insts []*vrrp.Instance
	for n, id := range ids {
		v, err := strconv.ParseUint(id, 10, 8)
		if err != nil {
			return fmt.Errorf("vrid %q: %w", id, err)
		}
		vp, err := parsePrefixes(vipLists[n])
		if err != nil {
			return err
		}
		iname := *name
		if len(ids) > 1 {
			iname = fmt.Sprintf("%s-%d", *name, v)
		}
		cfg := vrrp.Config{
			Name: iname, Interface: *iface, VRID: uint8(v), Priority: uint8(*prio),
			AdvertInterval: *interval, VIPs: vp, NoPreempt: *nopreempt, PreemptDelay: *preemptDelay,
			UnicastPeers: peerAddrs, SourceAddr: srcAddr, TrackInterfaces: splitList(*track, ","),
			GARPMasterDelay: *garpDelay, Notify: vrrp.Notify{Any: *notifyAny},
		}
		inst, err := vrrp.New(cfg, vrrp.Options{Logger: log, OnStateChange: sf.changed})
		if err != nil {
			return err
		}
		sf.changed(vrrp.StateChange{Instance: iname, To: vrrp.StateInit})
		insts = append(insts, inst)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if *serve != "" {
		if err := answer(ctx, *serve, *name); err != nil {
			return err
		}
	}
	if *group != "" {
		g, err := vrrp.NewSyncGroup(*group, insts, vrrp.Notify{}, log)
		if err != nil {
			return err
		}
		return g.Run(ctx)
	}
	errs := make([]error, len(insts))
	var wg sync.WaitGroup
	for n, inst := range insts {
		wg.Add(1)
		go func() { defer wg.Done(); errs[n] = inst.Run(ctx) }()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// stateWriter keeps a file with every instance's current state, for tests.
type stateWriter struct {
	path   string
	mu     sync.Mutex
	states map[string]string
}

func (w *stateWriter) changed(c vrrp.StateChange) {
	if w.path == "" {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.states[c.Instance] = c.To.String()
	var lines []string
	for n, s := range w.states {
		lines = append(lines, n+" "+s+"\n")
	}
	sort.Strings(lines)
	tmp := filepath.Join(filepath.Dir(w.path), "."+filepath.Base(w.path)+".tmp")
	if err := os.WriteFile(tmp, []byte(strings.Join(lines, "")), 0o644); err == nil {
		_ = os.Rename(tmp, w.path)
	}
}

// answer accepts TCP connections on addr and writes name to each, so that a
// client can tell which director holds the VIP.
func answer(ctx context.Context, addr, name string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("serve %s: %w", addr, err)
	}
	context.AfterFunc(ctx, func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintln(c, name)
			c.Close()
		}
	}()
	return nil
}
