//go:build integration

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbd-project/lbd/internal/testutil/kvhistory"
	"github.com/lbd-project/lbd/internal/testutil/netnstest"
	"github.com/lbd-project/lbd/pkg/kvs"
)

// TestClusterKVSLinearizable: concurrent get, set, cas (after gets) and
// incr through random storage nodes (three real lbd processes, the raft
// voters, replicas: 1 sync), on new and reused connections, recorded and
// checked with porcupine while the node with the most primaries is killed
// -9 and restarted, another is killed -9 and restarted with its state dir
// wiped, and a third is cut off from the other nodes (iptables, both ways)
// but not from its clients, then healed. No violation (so no acknowledged
// write is lost: every key is read back through every node at the end,
// in the history), and a client only ever sees memcached's answers, a
// SERVER_ERROR line, or no answer (a timeout), never anything else.
func TestClusterKVSLinearizable(t *testing.T) {
	l, all, addrs := startKVSCluster(t, kvsCluster)

	// The clients run in cl until their stdin closes, then read every key
	// through every node and print the history.
	c := exec.Command("ip", "netns", "exec", l.full("cl"), os.Args[0])
	c.Env = append(os.Environ(), "LBD_E2E_PROBE="+strings.Join(addrs, ","), "LBD_E2E_CMD=KVS lin")
	var out, stderr bytes.Buffer
	c.Stdout, c.Stderr = &out, &stderr
	stop, err := c.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Process.Kill(); c.Wait() })
	time.Sleep(3 * time.Second)

	// kill -9 of the node with the most primaries, back with its state.
	victim := l.mostPrimaries(all)
	t.Logf("kill -9 %s, restart", victim)
	l.kill(victim)
	time.Sleep(4 * time.Second)
	l.startNode(victim)
	l.kvsSettled(all, victim+" back and every backup in sync")

	// kill -9 of the node with the most primaries now, back empty.
	victim = l.mostPrimaries(all)
	t.Logf("kill -9 %s, wipe its state dir, restart", victim)
	l.kill(victim)
	if err := os.RemoveAll(filepath.Join(l.dir, "state-"+victim)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(4 * time.Second)
	l.startNode(victim)
	l.kvsSettled(all, victim+" back empty and every backup in sync")

	// A primary cut off from the other nodes (the cluster state and its
	// backups), not from its clients.
	victim = l.mostPrimaries(all)
	var others []string
	for _, n := range kvsStorage {
		if n[0] != victim {
			others = append(others, n[1])
		}
	}
	t.Logf("partition %s from %v", victim, others)
	l.cutOff(victim, others...)
	time.Sleep(6 * time.Second)
	l.heal(victim, others...)
	l.kvsSettled(all, "healed and every backup in sync")
	time.Sleep(2 * time.Second)

	stop.Close()
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("clients: %v\n%s", err, stderr.String())
		}
	case <-time.After(2 * time.Minute):
		t.Fatalf("the clients did not finish\n%s", stderr.String())
	}
	var res linResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("clients' output: %v\n%.2000s\n%s", err, out.String(), stderr.String())
	}
	known := 0
	for _, op := range res.Ops {
		if !op.Out.Unknown {
			known++
		}
	}
	t.Logf("%d operations, %d with a known outcome; %d answers, %d SERVER_ERROR, %d without an answer",
		len(res.Ops), known, res.OK, res.ServerErrors, res.Failures)
	if res.Error != "" {
		t.Error(res.Error)
	}
	if known < 1000 {
		t.Errorf("only %d operations with a known outcome: too few to tell", known)
	}
	if err := kvhistory.Check(res.Ops, 2*time.Minute); err != nil {
		t.Error(err)
	}
	if res.Odds > 0 {
		t.Errorf("%d answers that are neither memcached's nor SERVER_ERROR, the first: %q", res.Odds, res.Odd)
	}
}

// startKVSCluster starts the kvsStorage nodes with the file yaml and a
// client namespace cl (10.99.0.10, the tenant's allow-list), and waits
// until the tenant is placed and served through every node; it returns
// the lab, the nodes' names and their memcached addresses.
func startKVSCluster(t *testing.T, yaml string) (l *clusterLab, all, addrs []string) {
	l = newClusterLab(t, yaml, kvsStorage)
	l.host("cl", "10.99.0.10")
	for _, n := range kvsStorage {
		all, addrs = append(all, n[0]), append(addrs, n[1]+":13111")
		l.startNode(n[0])
	}
	l.leader(all...)
	l.kvsSettled(all, "the tenant placed and served through every node")
	return l, all, addrs
}

// startLoad runs the probe's "KVS load PREFIX STOPFILE" (see kvsLoad) in
// cl through addrs until stop is called, which returns what the load
// printed; a load not stopped is stopped when the test ends.
func (l *clusterLab) startLoad(prefix string, addrs []string) (stop func() string) {
	file := filepath.Join(l.dir, prefix+".stop")
	out := make(chan string, 1)
	go func() {
		o, err := l.nc("cl", strings.Join(addrs, ","), "KVS load "+prefix+" "+file)
		if err != nil {
			o += " " + err.Error()
		}
		out <- o
	}()
	var once sync.Once
	var got string
	stop = func() string {
		once.Do(func() {
			os.WriteFile(file, nil, 0o600)
			select {
			case o := <-out:
				got = strings.TrimSpace(o)
			case <-time.After(3 * time.Minute):
				got = "the load did not stop"
			}
		})
		return got
	}
	l.t.Cleanup(func() { stop() })
	return stop
}

// kvsSettled waits until every node of all serves (a set and a get on
// new connections through each) and reports the tenant with no slot
// unavailable and every backup in sync, with no primary moved for 3s (the
// leader's rebalance after a node came back, every 1.5s, is done, and its
// rebuilds too).
func (l *clusterLab) kvsSettled(all []string, what string) {
	l.t.Helper()
	var last string
	defer func() {
		if l.t.Failed() {
			l.t.Logf("the last view: %s", last)
		}
	}()
	var epoch uint64
	var since time.Time
	eventually(l.t, 90*time.Second, what, func() bool {
		var e uint64
		for _, n := range all {
			st, err := l.kvsStatus(n)
			last = fmt.Sprintf("%s: %+v %v", n, st, err)
			if err != nil || len(st.Tenants) != 1 || st.Tenants[0].Unavailable != 0 || st.Tenants[0].OutOfSync != 0 {
				since = time.Time{}
				return false
			}
			e = max(e, st.Tenants[0].Epoch)
			if _, err := l.kvsClient("cl", "rw", "settle-"+n+"-", 3, []string{l.nodes[n].addr + ":13111"}); err != nil {
				since = time.Time{}
				return false
			}
		}
		if since.IsZero() || e != epoch {
			epoch, since = e, time.Now()
		}
		return time.Since(since) >= 3*time.Second
	})
}

func (l *clusterLab) kvsStatus(node string) (kvs.ClusterStatus, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return l.client(node).KVSClusterStatus(ctx)
}

// mostPrimaries is the node of all that holds the most of the tenant's
// primaries, as the first node of all that answers sees the map.
func (l *clusterLab) mostPrimaries(all []string) string {
	l.t.Helper()
	for _, n := range all {
		st, err := l.kvsStatus(n)
		if err != nil || len(st.Tenants) != 1 {
			continue
		}
		best, most := "", 0
		for _, ns := range st.Tenants[0].Nodes {
			if ns.Primaries > most {
				best, most = ns.Node, ns.Primaries
			}
		}
		if best != "" {
			return best
		}
	}
	l.t.Fatal("no node reports the tenant's primaries")
	return ""
}

// TestClusterKVSFailoverUnavailability measures, for make bench-cluster
// (it runs only with BENCH_FAILOVER_RUNS set), how long a kill -9 of a
// storage node (real lbd processes, the raft voters, replicas: 1 sync)
// leaves its slots unavailable: 16 writers, one key each (so some keys'
// primaries are on the victim), set their key again and again through the
// other nodes; the gap of a key is its last acknowledged set before the
// kill to its first after, and a run's unavailability the longest gap.
// The victim goes round the nodes (the raft leader among them), and is
// restarted and its slots rebuilt before the next run. With
// BENCH_FAILOVER_TRACE=DIR, each run leaves in DIR the writers' calls that
// failed or ended after the kill (start and end from the kill, the node,
// the answer) and the nodes' logs (debug level): where a request waited.
func TestClusterKVSFailoverUnavailability(t *testing.T) {
	runs, _ := strconv.Atoi(os.Getenv("BENCH_FAILOVER_RUNS"))
	if runs <= 0 {
		t.Skip("BENCH_FAILOVER_RUNS not set (make bench-cluster)")
	}
	yaml := kvsCluster
	if hb := os.Getenv("BENCH_RAFT_HEARTBEAT"); hb != "" {
		// raft_heartbeat_timeout and raft_election_timeout HB, the
		// leader's lease half of it.
		d, err := time.ParseDuration(hb)
		if err != nil {
			t.Fatalf("BENCH_RAFT_HEARTBEAT: %v", err)
		}
		yaml += fmt.Sprintf("  raft_heartbeat_timeout: %s\n  raft_election_timeout: %s\n  raft_leader_lease_timeout: %s\n", d, d, d/2)
	}
	l, all, _ := startKVSCluster(t, yaml)
	var gaps, ofLeader, ofOthers []time.Duration
	for run := range runs {
		victim, role := all[run%len(all)], ""
		leader := l.leader(all...) == victim
		if leader {
			role = " (the raft leader)"
		}
		var via []string
		for _, n := range all {
			if n != victim {
				via = append(via, l.nodes[n].addr+":13111")
			}
		}
		gap, err := l.failoverGap(victim, via, fmt.Sprintf("fo%d-", run))
		if err != nil {
			for _, n := range all {
				if n != victim {
					st, err := l.kvsStatus(n)
					t.Logf("%s's view: %+v %v", n, st, err)
				}
			}
			t.Fatalf("run %d (kill -9 %s): %v", run, victim, err)
		}
		t.Logf("run %d: kill -9 %s%s: %v", run, victim, role, gap.Round(time.Millisecond))
		gaps = append(gaps, gap)
		if leader {
			ofLeader = append(ofLeader, gap)
		} else {
			ofOthers = append(ofOthers, gap)
		}
		l.startNode(victim)
		l.kvsSettled(all, victim+" back and every backup in sync")
	}
	summary := func(gaps []time.Duration) string {
		if len(gaps) == 0 {
			return "none"
		}
		slices.Sort(gaps)
		return fmt.Sprintf("%d runs, median %v, worst %v", len(gaps),
			gaps[len(gaps)/2].Round(time.Millisecond), gaps[len(gaps)-1].Round(time.Millisecond))
	}
	t.Logf("failover unavailability (real lbd processes, kill -9): %s; of a node that is not the raft leader: %s; of the raft leader: %s",
		summary(gaps), summary(ofOthers), summary(ofLeader))
}

// failoverGap runs the writers of TestClusterKVSFailoverUnavailability
// from the client's namespace through the nodes via, kills victim once
// every writer has an acknowledged set, and returns the longest gap.
func (l *clusterLab) failoverGap(victim string, via []string, prefix string) (time.Duration, error) {
	const writers = 16
	var killed atomic.Int64 // when the victim was gone, UnixNano
	gaps := make([]time.Duration, writers)
	errs := make([]error, writers)
	acked := make(chan struct{}, writers)
	type call struct {
		w          int
		start, end time.Time
		addr, what string
	}
	traces := make([][]call, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := fmt.Sprintf("%s%d", prefix, w)
			var c *kvhistory.Pool
			var last time.Time
			var lastReply string
			var lastErr error
			first := true
			deadline := time.Now().Add(60 * time.Second)
			for time.Now().Before(deadline) {
				if c == nil {
					c = &kvhistory.Pool{Addrs: via, Rng: rand.New(rand.NewPCG(uint64(w), 1)), Timeout: 2 * time.Second}
				}
				var reply string
				start := time.Now()
				err := netnstest.Do(l.full("cl"), func() (err error) {
					reply, _, err = c.Call(fmt.Sprintf("set %s 0 0 1\r\nx\r\n", key))
					return err
				})
				now := time.Now()
				if reply != "STORED\r\n" || killed.Load() != 0 {
					traces[w] = append(traces[w], call{w, start, now, c.Last, strings.TrimSpace(reply) + fmt.Sprint(" ", err)})
				}
				lastReply, lastErr = reply, err
				if err != nil {
					c.Close()
					c = nil
				}
				k := killed.Load()
				if reply == "STORED\r\n" {
					if k != 0 && now.UnixNano() > k && !last.IsZero() {
						gaps[w] = now.Sub(last)
						c.Close()
						return
					}
					last = now
					if first {
						first = false
						acked <- struct{}{}
					}
				}
				time.Sleep(2 * time.Millisecond)
			}
			errs[w] = fmt.Errorf("%s: no set acknowledged within 60s (last acknowledged %v; last answer %q %v)",
				key, last.Format(time.StampMilli), lastReply, lastErr)
		}()
	}
	for range writers {
		select {
		case <-acked:
		case <-time.After(60 * time.Second):
			return 0, fmt.Errorf("the writers got no acknowledged set before the kill")
		}
	}
	time.Sleep(200 * time.Millisecond)
	l.kill(victim) // returns once the process is gone
	killed.Store(time.Now().UnixNano())
	wg.Wait()
	if dir := os.Getenv("BENCH_FAILOVER_TRACE"); dir != "" {
		k := time.Unix(0, killed.Load())
		var all []call
		for _, t := range traces {
			all = append(all, t...)
		}
		slices.SortFunc(all, func(a, b call) int { return a.start.Compare(b.start) })
		var b strings.Builder
		fmt.Fprintf(&b, "kill %s at %s\n", victim, k.Format(time.StampMicro))
		for _, c := range all {
			fmt.Fprintf(&b, "w%02d %+8.3fs %+8.3fs %6.3fs %s %s\n", c.w, c.start.Sub(k).Seconds(), c.end.Sub(k).Seconds(), c.end.Sub(c.start).Seconds(), c.addr, c.what)
		}
		os.MkdirAll(dir, 0o755)
		os.WriteFile(filepath.Join(dir, prefix+"trace.txt"), []byte(b.String()), 0o644)
		for name, n := range l.nodes {
			if n.d != nil {
				if data, err := os.ReadFile(n.d.log); err == nil {
					os.WriteFile(filepath.Join(dir, prefix+name+".log"), data, 0o644)
				}
			}
		}
	}
	for w := range writers {
		if errs[w] != nil {
			return 0, errs[w]
		}
	}
	return slices.Max(gaps), nil
}

// The client's modes of the other integration tests: "load" runs
// kvsLoad, "rest" with a fifth field (tokens) restClusterMain.
func init() {
	kvsClientModes["load"] = func(addrs, f []string) (int, bool) { return kvsLoad(addrs, f[2], f[3]), true }
	kvsClientModes["rest"] = func(addrs, f []string) (int, bool) {
		if len(f) != 5 {
			return 0, false
		}
		n, _ := strconv.Atoi(f[3])
		return restClusterMain(addrs, f[2], n, strings.Split(f[4], ",")), true
	}
}
