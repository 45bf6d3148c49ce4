//go:build integration

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbd-project/lbd/internal/testutil/kvhistory"
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
	l := newClusterLab(t, clusterYAML(kvsStorage, kvsTenant, "catchup_timeout: 3s"), kvsStorage)
	l.host("cl", "10.99.0.10")
	addrOf := map[string]string{}
	var all, addrs []string
	for _, n := range kvsStorage {
		all, addrs = append(all, n[0]), append(addrs, n[1]+":13111")
		addrOf[n[0]] = n[1] + ":13111"
		l.startNode(n[0])
	}
	l.leader(all...)
	l.kvsSettled(all, "the tenant placed and served through every node")

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
	if err := kvhistory.Check(res.Ops, 2*time.Minute); err != nil {
		t.Error(err)
	}
	if res.Odds > 0 {
		t.Errorf("%d answers that are neither memcached's nor SERVER_ERROR, the first: %q", res.Odds, res.Odd)
	}
}

// kvsSettled waits until every node of all serves (a set and a get on
// new connections through each) and reports the tenant with no slot
// unavailable and every backup in sync.
func (l *clusterLab) kvsSettled(all []string, what string) {
	l.t.Helper()
	eventually(l.t, 90*time.Second, what, func() bool {
		for _, n := range all {
			st, err := l.kvsStatus(n)
			if err != nil || len(st.Tenants) != 1 || st.Tenants[0].Unavailable != 0 || st.Tenants[0].OutOfSync != 0 {
				return false
			}
			if _, err := l.kvsClient("cl", "rw", "settle-"+n+"-", 3, []string{l.nodes[n].addr + ":13111"}); err != nil {
				return false
			}
		}
		return true
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

// linResult is what the linearizability clients print.
type linResult struct {
	Ops                              []kvhistory.Op `json:"ops"`
	OK, ServerErrors, Failures, Odds int
	Odd                              []string `json:"odd"`
	Error                            string   `json:"error,omitempty"`
}

// linClientMain runs the clients of TestClusterKVSLinearizable (probe's
// "KVS lin"): six workers through random nodes of addrList until stdin
// closes (at most 4,000 operations each, one every 10ms at most), then
// every key read through every node, retried for up to 30s each; prints
// a linResult.
func linClientMain(addrList string) int {
	addrs := strings.Split(addrList, ",")
	h, tally := kvhistory.New(), &kvhistory.Tally{}
	strKeys := []string{"s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7"}
	ctrKeys := []string{"c0", "c1", "c2", "c3"}
	var uniq atomic.Int64
	worker := func(cl int, addrs []string) (*kvhistory.Worker, func()) {
		rng := rand.New(rand.NewPCG(uint64(cl), uint64(time.Now().UnixNano())))
		pool := &kvhistory.Pool{Addrs: addrs, Rng: rng, Timeout: 5 * time.Second}
		return &kvhistory.Worker{Client: cl, Rng: rng, Call: pool.Call, H: h, T: tally, Strings: strKeys, Counters: ctrKeys,
			Value: func() string { return fmt.Sprintf("v%d", uniq.Add(1)) }}, pool.Close
	}
	var res linResult
	w0, closeW0 := worker(0, addrs)
	for _, k := range ctrKeys {
		for !w0.Set(k, "0") {
			time.Sleep(100 * time.Millisecond)
		}
	}
	closeW0()

	stopped := make(chan struct{})
	go func() { io.Copy(io.Discard, os.Stdin); close(stopped) }()
	var wg sync.WaitGroup
	for cl := 1; cl <= 6; cl++ {
		w, closeW := worker(cl, addrs)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer closeW()
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			for range 4000 {
				select {
				case <-stopped:
					return
				case <-tick.C:
				}
				w.Step()
			}
		}()
	}
	wg.Wait()
	<-stopped

	// Every key through every node: an acknowledged write must be there.
	for i, addr := range addrs {
		w, closeW := worker(100+i, []string{addr})
		for _, k := range slices.Concat(strKeys, ctrKeys) {
			deadline := time.Now().Add(30 * time.Second)
			for !w.Get(k) {
				if time.Now().After(deadline) {
					res.Error += fmt.Sprintf("no answer to get %s through %s for 30s; ", k, addr)
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
		closeW()
	}
	res.Ops = h.Ops()
	res.OK, res.ServerErrors, res.Failures, res.Odds, res.Odd = tally.OK, tally.ServerErrors, tally.Failures, tally.Odds, tally.Odd
	bw := bufio.NewWriter(os.Stdout)
	json.NewEncoder(bw).Encode(res)
	bw.Flush()
	return 0
}
