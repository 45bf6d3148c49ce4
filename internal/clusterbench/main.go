// Command clusterbench measures the replicated cluster state of running lbd
// nodes (scripts/bench-cluster-state.sh starts them in network namespaces):
// the time from an allow-list change sent to one node's API to the
// directors' ipsets holding it, the committed changes per second, and how
// long a node that missed writes takes to catch up.
//
//	clusterbench -via SOCKET -ns lb1,lb2 -tenant shop [-n 200] [-writers 8] [-duration 10s]
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/lbd-project/lbd/internal/api"
)

func main() {
	var (
		via      = flag.String("via", "", "API `sockets` of the nodes to send changes to (comma-separated; the first for latency)")
		spaces   = flag.String("ns", "", "network `namespaces` of the directors whose ipsets are watched (comma-separated)")
		tenant   = flag.String("tenant", "shop", "the tenant whose allow-list changes")
		n        = flag.Int("n", 200, "changes timed one by one")
		writers  = flag.Int("writers", 8, "concurrent writers for the throughput run")
		duration = flag.Duration("duration", 10*time.Second, "length of the throughput run")
		mode     = flag.String("mode", "latency,throughput", "what to run: latency, throughput, writes:N (N changes by the writers, as fast as they go)")
	)
	flag.Parse()
	socks := strings.Split(*via, ",")
	ctx := context.Background()
	for _, m := range strings.Split(*mode, ",") {
		var err error
		switch {
		case m == "latency":
			err = latency(ctx, socks[0], strings.Split(*spaces, ","), *tenant, *n)
		case m == "throughput":
			err = throughput(ctx, socks, *tenant, *writers, *duration)
		case strings.HasPrefix(m, "writes:"):
			var k int
			fmt.Sscan(strings.TrimPrefix(m, "writes:"), &k)
			err = writes(ctx, socks, *tenant, k, *writers)
		default:
			err = fmt.Errorf("unknown mode %q", m)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "clusterbench:", err)
			os.Exit(1)
		}
	}
}

// setWatcher tests an ipset entry in one namespace over netlink.
type setWatcher struct {
	h   *netlink.Handle
	set string
}

func newWatcher(ns, tenant string) (*setWatcher, error) {
	nh, err := netns.GetFromName(ns)
	if err != nil {
		return nil, fmt.Errorf("namespace %s: %w", ns, err)
	}
	h, err := netlink.NewHandleAt(nh)
	if err != nil {
		return nil, fmt.Errorf("netlink in %s: %w", ns, err)
	}
	sets, err := h.IpsetListAll()
	if err != nil {
		return nil, fmt.Errorf("ipset list in %s: %w", ns, err)
	}
	for _, s := range sets {
		if strings.HasPrefix(s.SetName, "LBD4-"+tenant+"-") {
			return &setWatcher{h: h, set: s.SetName}, nil
		}
	}
	return nil, fmt.Errorf("no ipset of tenant %s in %s", tenant, ns)
}

func (w *setWatcher) has(a netip.Addr) bool {
	ok, err := w.h.IpsetTest(w.set, &netlink.IPSetEntry{IP: net.IP(a.AsSlice())})
	return err == nil && ok
}

// latency times n changes, each from the API call to every director's
// ipset holding it (polled over netlink every 200µs).
func latency(ctx context.Context, sock string, spaces []string, tenant string, n int) error {
	c, err := api.NewClient(sock, "")
	if err != nil {
		return err
	}
	var ws []*setWatcher
	for _, ns := range spaces {
		w, err := newWatcher(ns, tenant)
		if err != nil {
			return err
		}
		ws = append(ws, w)
	}
	var took []time.Duration
	for i := range n {
		a := netip.AddrFrom4([4]byte{198, 51, 100, byte(1 + i/2%200)})
		op, want := api.AllowAdd, true
		if i%2 == 1 {
			op, want = api.AllowDel, false
		}
		start := time.Now()
		if _, err := c.ChangeAllow(ctx, tenant, op, []string{a.String()}); err != nil {
			return fmt.Errorf("change %d: %w", i, err)
		}
		for _, w := range ws {
			for w.has(a) != want {
				if time.Since(start) > 30*time.Second {
					return fmt.Errorf("change %d: %s never reached %s", i, a, w.set)
				}
				time.Sleep(200 * time.Microsecond)
			}
		}
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	q := func(p float64) time.Duration { return took[int(p*float64(len(took)-1))] }
	fmt.Printf("latency: %d allow-list changes, command to both directors' kernels: p50 %s  p99 %s  max %s\n",
		n, q(0.5).Round(10*time.Microsecond), q(0.99).Round(10*time.Microsecond), took[len(took)-1].Round(10*time.Microsecond))
	return nil
}

// throughput runs writers concurrent writers (spread over the nodes) for
// d and counts the changes committed.
func throughput(ctx context.Context, socks []string, tenant string, writers int, d time.Duration) error {
	var ok, failed atomic.Int64
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var wg sync.WaitGroup
	start := time.Now()
	for w := range writers {
		c, err := api.NewClient(socks[w%len(socks)], "")
		if err != nil {
			return err
		}
		wg.Go(func() {
			a := netip.AddrFrom4([4]byte{198, 51, 101, byte(1 + w)}).String()
			for i := 0; ctx.Err() == nil; i++ {
				op := api.AllowAdd
				if i%2 == 1 {
					op = api.AllowDel
				}
				if _, err := c.ChangeAllow(ctx, tenant, op, []string{a}); err != nil {
					if ctx.Err() == nil {
						failed.Add(1)
					}
					continue
				}
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	fmt.Printf("throughput: %d writers on %d nodes for %s: %.0f changes/s committed and applied (%d refused after retries)\n",
		writers, len(socks), d, float64(ok.Load())/secs, failed.Load())
	return nil
}

// writes makes k changes through the nodes, with writers concurrent
// writers, as fast as they are taken, and prints the last index.
func writes(ctx context.Context, socks []string, tenant string, k, writers int) error {
	var next atomic.Int64
	var last atomic.Uint64
	errs := make(chan error, writers)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range max(writers, 1) {
		c, err := api.NewClient(socks[w%len(socks)], "")
		if err != nil {
			return err
		}
		wg.Go(func() {
			a := netip.AddrFrom4([4]byte{198, 51, 102, byte(1 + w%250)}).String()
			for j := 0; ; j++ {
				i := next.Add(1) - 1
				if i >= int64(k) {
					return
				}
				op := api.AllowAdd
				if j%2 == 1 {
					op = api.AllowDel
				}
				if _, err := c.ChangeAllow(ctx, tenant, op, []string{a}); err != nil {
					errs <- fmt.Errorf("write %d: %w", i, err)
					return
				}
				for idx := c.LastMeta().Index; ; {
					have := last.Load()
					if idx <= have || last.CompareAndSwap(have, idx) {
						break
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	took := time.Since(start)
	fmt.Printf("writes: %d changes by %d writers in %s (%.0f/s), last index %d\n", k, writers, took.Round(time.Millisecond),
		float64(k)/took.Seconds(), last.Load())
	return nil
}
