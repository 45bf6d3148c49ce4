//go:build integration

package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbd-project/lbd/internal/api"
	"github.com/lbd-project/lbd/pkg/kvs"
)

// TestClusterKVSNodes: three real lbd storage nodes under a running
// read-your-writes load through random nodes (sets, gets, multi-gets
// whose keys live on several nodes, and incrs each counted exactly once);
// `lbctl node add` of a fourth (first added to the file by apply) gets it
// slots, rebuilt online, then its share of primaries, serving the keys
// written before; `lbctl node drain` of one moves every slot off it with
// no client error; all along, every slot keeps its replicas+1 in-sync
// copies (make-before-break); `lbctl node remove` takes it out of `lbctl
// kvs status`. lbctl's checks refuse what would lose data. The same with
// replicas 1 and 2 (sync).
func TestClusterKVSNodes(t *testing.T) {
	for _, replicas := range []int{1, 2} {
		t.Run(fmt.Sprintf("replicas=%d", replicas), func(t *testing.T) { testKVSNodes(t, replicas) })
	}
}

// testKVSNodes is TestClusterKVSNodes with kvs.replicas replicas.
func testKVSNodes(t *testing.T, replicas int) {
	three := [][2]string{{"st1", "10.99.0.11"}, {"st2", "10.99.0.12"}, {"st3", "10.99.0.13"}}
	st4 := [2]string{"st4", "10.99.0.14"}
	yaml3 := strings.Replace(kvsCluster, "replicas: 1}", fmt.Sprintf("replicas: %d}", replicas), 1)
	if !strings.Contains(yaml3, fmt.Sprintf("replicas: %d}", replicas)) {
		t.Fatalf("no kvs replicas in the file:\n%s", kvsCluster)
	}
	l := newClusterLab(t, yaml3, append(three, st4))
	line3 := "  - {name: st3, role: storage, address: 10.99.0.13, interface: eth0}\n"
	yaml4 := strings.Replace(strings.ReplaceAll(yaml3, "CERTS", l.certDir), line3,
		line3+"  - {name: st4, role: storage, address: 10.99.0.14, interface: eth0}\n", 1)
	if err := os.WriteFile(l.nodes["st4"].cfg, []byte(yaml4), 0o600); err != nil {
		t.Fatal(err)
	}
	l.host("cl", "10.99.0.10")
	var names, addrs []string
	for _, n := range three {
		names, addrs = append(names, n[0]), append(addrs, n[1]+":13111")
		l.startNode(n[0])
	}
	l.leader(names...)
	eventually(t, 60*time.Second, "the tenant served through every node", func() bool {
		_, err := l.kvsClient("cl", "rw", "warm", 12, addrs)
		return err == nil
	})
	if out, err := l.kvsClient("cl", "rw", "pre", 300, addrs); err != nil {
		t.Fatalf("keys written before the moves: %v\n%s", err, out)
	}
	lbctl, _ := filepath.Abs("../../bin/lbctl")
	run := func(node string, args ...string) (string, error) {
		out, err := exec.Command(lbctl, append([]string{"--socket", l.nodes[node].d.sock}, args...)...).CombinedOutput()
		return string(out), err
	}

	// The load: set then get on new connections to random nodes, until
	// stopped.
	stopLoad := l.startLoad("ld", addrs)

	// Refused: a node not in the file, a remove of an active node.
	if out, err := run("st1", "node", "add", "st9"); err == nil || !strings.Contains(out, "unknown node st9") {
		t.Errorf("node add st9: %v\n%s", err, out)
	}
	if out, err := run("st1", "node", "remove", "st3"); err == nil || !strings.Contains(out, "drain it first") {
		t.Errorf("node remove of an active node: %v\n%s", err, out)
	}

	// Add: the file first (apply on any node), then lbd on st4, then
	// lbctl node add once st4 joined the storage tier.
	l.change("st1", names, func(ctx context.Context, c *api.Client) error {
		_, err := c.Apply(ctx, []byte(yaml4), "lbd.yaml")
		return err
	})
	if out, err := run("st2", "node", "add", "st4"); err == nil || !strings.Contains(out, "not joined") {
		t.Errorf("node add before st4 runs: %v\n%s", err, out)
	}
	l.startNode("st4")
	polled := l.pollSlots("st1") // every slot keeps replicas+1 in-sync copies
	eventually(t, 60*time.Second, "lbctl node add st4", func() bool {
		out, err := run("st2", "node", "add", "st4")
		if err != nil {
			t.Logf("node add st4: %s", strings.TrimSpace(out))
		}
		return err == nil
	})
	l.waitNodes(t, "st2", "st4 with its share of primaries, every backup in sync", func(ms []kvs.MemberStatus) bool {
		m := member(ms, "st4")
		return m != nil && m.Primaries >= 1024/4-2 && allInSync(ms)
	})
	all4 := append(append([]string(nil), addrs...), st4[1]+":13111")
	if out, err := l.kvsClient("cl", "get", "pre", 300, all4); err != nil {
		t.Errorf("keys written before the add, read through st4 too: %v\n%s", err, out)
	}

	// Drain st2: every slot moves off it under the load.
	if out, err := run("st3", "node", "drain", "st2"); err != nil {
		t.Fatalf("node drain st2: %v\n%s", err, out)
	}
	if out, err := run("st1", "node", "drain", "st2"); err == nil || !strings.Contains(out, "already draining") {
		t.Errorf("a second node drain st2: %v\n%s", err, out)
	}
	l.waitNodes(t, "st3", "st2 drained, every backup in sync", func(ms []kvs.MemberStatus) bool {
		m := member(ms, "st2")
		return m != nil && m.Primaries+m.Backups == 0 && allInSync(ms)
	})
	if out := stopLoad(); !strings.HasPrefix(out, "ok") {
		t.Errorf("the load during add and drain: %s", out)
	} else {
		t.Logf("the load during add and drain: %s", out)
	}
	checkMoves(t, polled())
	out, _ := run("st3", "kvs", "status")
	t.Logf("after the drain:\n%s", out)

	// Remove st2: gone from lbctl kvs status, every key still there.
	if out, err := run("st1", "node", "remove", "st2"); err != nil {
		t.Fatalf("node remove st2: %v\n%s", err, out)
	}
	eventually(t, 30*time.Second, "st2 gone from lbctl kvs status", func() bool {
		out, err := run("st4", "kvs", "status")
		if err != nil || strings.Contains(out, "st2") || !strings.Contains(out, "  st4 ") {
			t.Logf("lbctl kvs status on st4: %v\n%s", err, out)
			return false
		}
		return true
	})
	left := []string{addrs[0], addrs[2], st4[1] + ":13111"}
	if out, err := l.kvsClient("cl", "get", "pre", 300, left); err != nil {
		t.Errorf("keys written before the moves, after st2's removal: %v\n%s", err, out)
	}

	// A storage node that dies and leaves the file (apply -f) leaves the
	// storage tier: its slots go to their in-sync backups and new backups
	// are rebuilt on the others; no map names it.
	l.kill("st4")
	// (st2, removed, stays out although the file still names it.)
	l.change("st1", []string{"st1", "st3"}, func(ctx context.Context, c *api.Client) error {
		_, err := c.Apply(ctx, []byte(strings.ReplaceAll(yaml3, "CERTS", l.certDir)), "lbd.yaml")
		return err
	})
	l.waitNodes(t, "st1", "st4 gone, st1 and st3 hold every slot in sync", func(ms []kvs.MemberStatus) bool {
		return member(ms, "st4") == nil && member(ms, "st2") == nil && member(ms, "st1") != nil && member(ms, "st1").Primaries+member(ms, "st3").Primaries == 1024 && allInSync(ms)
	})
	if out, err := l.kvsClient("cl", "get", "pre", 300, []string{addrs[0], addrs[2]}); err != nil {
		t.Errorf("keys written before the moves, after st4 left the file: %v\n%s", err, out)
	}
}

// waitNodes polls node's lbctl node view until ok.
func (l *clusterLab) waitNodes(t *testing.T, node, what string, ok func([]kvs.MemberStatus) bool) {
	t.Helper()
	var last []kvs.MemberStatus
	failed := t.Failed()
	defer func() {
		if !failed && t.Failed() {
			t.Logf("last view: %+v", last)
		}
	}()
	eventually(t, 60*time.Second, what, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ns, err := l.client(node).KVSNodes(ctx)
		if err != nil {
			return false
		}
		last = ns.Nodes
		return ok(ns.Nodes)
	})
}

func member(ms []kvs.MemberStatus, name string) *kvs.MemberStatus {
	for i := range ms {
		if ms[i].Name == name {
			return &ms[i]
		}
	}
	return nil
}

func allInSync(ms []kvs.MemberStatus) bool {
	for _, m := range ms {
		if m.InSync != m.Backups {
			return false
		}
	}
	return true
}

// kvsLoad is the probe's "KVS load PREFIX STOPFILE": until STOPFILE exists
// (at most two minutes), kvsLoadWorkers clients at once each set a key of
// their share of PREFIX0..PREFIX199 on a new connection to a random node
// and read it back at once on a new connection to another; every fourth
// time also the key and three others with one multi-get (their slots on
// different nodes, split and merged by the cluster) through a third, which
// must hold every value last acknowledged, in order. Every third time a
// client also increments its own counter (PREFIXcW) through a random node:
// each acknowledged incr must count exactly once (its answer one more than
// the counter was, and the counter read at the end as many as were
// acknowledged), one that failed at most once. It prints "ok N ops, M
// multi-gets, K incrs", or "errors" with the count and the first ones, or
// first "wrong" and the incrs counted twice or lost (also when errors are
// allowed, as a node is killed: an acknowledged incr must not be lost).
func kvsLoad(addrs []string, prefix, stop string) int {
	var all loadTally
	var mu sync.Mutex
	deadline := time.Now().Add(2 * time.Minute)
	var wg sync.WaitGroup
	for w := range kvsLoadWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got := kvsLoadWorker(addrs, prefix, w, stop, deadline)
			mu.Lock()
			defer mu.Unlock()
			all.ops, all.mgets, all.incrs, all.nerr = all.ops+got.ops, all.mgets+got.mgets, all.incrs+got.incrs, all.nerr+got.nerr
			all.errs, all.wrong = append(all.errs, got.errs...), append(all.wrong, got.wrong...)
		}()
	}
	wg.Wait()
	if len(all.wrong) > 0 {
		fmt.Printf("wrong: %s; and %d errors of %d ops: %s\n", strings.Join(all.wrong, "; "), all.nerr, all.ops+all.incrs+all.nerr, strings.Join(all.errs, "; "))
		return 0
	}
	if all.nerr > 0 {
		fmt.Printf("errors: %d of %d ops: %s\n", all.nerr, all.ops+all.incrs+all.nerr, strings.Join(all.errs, "; "))
		return 0
	}
	fmt.Printf("ok %d ops, %d multi-gets, %d incrs\n", all.ops, all.mgets, all.incrs)
	return 0
}

// kvsLoadWorkers is how many clients kvsLoad runs at once.
const kvsLoadWorkers = 4

// loadTally is what a kvsLoad client counted: its set-and-get operations,
// multi-gets and acknowledged incrs, its errors and the first of them, and
// its incrs counted twice or lost.
type loadTally struct {
	ops, mgets, incrs, nerr int
	errs, wrong             []string
}

// fail counts an error, and keeps it if it is one of the first, with the
// time (UTC, as the nodes' logs) to find it there.
func (lt *loadTally) fail(e string) {
	if lt.nerr++; len(lt.errs) < 5 {
		lt.errs = append(lt.errs, time.Now().UTC().Format("15:04:05.000 ")+e)
	}
}

// miscounted keeps an incr counted twice or lost, with the time.
func (lt *loadTally) miscounted(e string) {
	lt.wrong = append(lt.wrong, time.Now().UTC().Format("15:04:05.000 ")+e)
}

// kvsLoadWorker is client w of kvsLoad, on keys of its own (PREFIXi, i
// modulo kvsLoadWorkers w, and the counter PREFIXcW).
func kvsLoadWorker(addrs []string, prefix string, w int, stop string, deadline time.Time) loadTally {
	const share = 200 / kvsLoadWorkers
	var lt loadTally
	keyOf := func(n int) string { return prefix + strconv.Itoa(n%share*kvsLoadWorkers+w) }
	last := map[string]string{} // acknowledged values
	unsure := map[string]bool{} // a set failed: it may have applied
	ctr := kvsCounter{key: prefix + "c" + strconv.Itoa(w), lo: -1, hi: -1}
	for n := 0; time.Now().Before(deadline); n++ {
		if n%20 == 0 {
			if _, err := os.Stat(stop); err == nil {
				break
			}
		}
		if n%3 == 0 {
			ctr.step(addrs, &lt)
		}
		key, val := keyOf(n), fmt.Sprintf("v%d-%d", n, w)
		from := rand.IntN(len(addrs))
		to := (from + 1 + rand.IntN(len(addrs)-1)) % len(addrs)
		got, err := kvsRoundTrip(addrs[from], fmt.Sprintf("set %s 0 0 %d\r\n%s\r\n", key, len(val), val), "\r\n")
		if err == nil && got == "STORED\r\n" {
			last[key] = val
			delete(unsure, key)
			want := fmt.Sprintf("VALUE %s 0 %d\r\n%s\r\nEND\r\n", key, len(val), val)
			if got, err = kvsRoundTrip(addrs[to], "get "+key+"\r\n", "END\r\n"); err == nil && got == want {
				if n%4 != 0 {
					lt.ops++
					continue
				}
				keys := []string{key}
				for j := 1; j <= 3; j++ {
					keys = append(keys, keyOf(n+j*17))
				}
				want, check := "", true
				for _, k := range keys {
					check = check && !unsure[k]
					if v, ok := last[k]; ok {
						want += fmt.Sprintf("VALUE %s 0 %d\r\n%s\r\n", k, len(v), v)
					}
				}
				want += "END\r\n"
				got, err = kvsRoundTrip(addrs[rand.IntN(len(addrs))], "get "+strings.Join(keys, " ")+"\r\n", "END\r\n")
				if err == nil && (got == want || !check && strings.HasSuffix(got, "END\r\n") && !strings.Contains(got, "SERVER_ERROR")) {
					lt.ops++
					lt.mgets++
					continue
				}
			}
		} else {
			unsure[key] = true
		}
		lt.fail(fmt.Sprintf("%s: %q %v", key, got, err))
	}
	ctr.check(addrs, &lt)
	return lt
}

// kvsCounter is a kvsLoad client's counter: its value is known to be in
// lo..hi (an incr that failed may have applied); -1 until it is set.
type kvsCounter struct {
	key    string
	lo, hi int
}

// step sets the counter to 0 through a random node if it is not set yet,
// else increments it and checks the answer.
func (c *kvsCounter) step(addrs []string, lt *loadTally) {
	addr := addrs[rand.IntN(len(addrs))]
	if c.lo < 0 {
		got, err := kvsRoundTrip(addr, "set "+c.key+" 0 0 1\r\n0\r\n", "\r\n")
		if err != nil || got != "STORED\r\n" {
			lt.fail(fmt.Sprintf("set %s 0: %q %v", c.key, got, err))
			return
		}
		c.lo, c.hi = 0, 0
		return
	}
	got, err := kvsRoundTrip(addr, "incr "+c.key+" 1\r\n", "\r\n")
	v, perr := strconv.Atoi(strings.TrimSuffix(got, "\r\n"))
	switch {
	case got == "NOT_FOUND\r\n":
		lt.miscounted(fmt.Sprintf("incr %s via %s: NOT_FOUND: the counter is lost", c.key, addr))
		c.lo = -1
	case err != nil || perr != nil:
		c.hi++ // it may have applied
		lt.fail(fmt.Sprintf("incr %s via %s: %q %v", c.key, addr, got, err))
	case v < c.lo+1 || v > c.hi+1:
		lt.miscounted(fmt.Sprintf("incr %s via %s: %d, the counter was %d..%d", c.key, addr, v, c.lo, c.hi))
		c.lo, c.hi = v, v
	default:
		lt.incrs++
		c.lo, c.hi = v, v
	}
}

// check reads the counter at the end (through random nodes, for up to
// 10s while it gets no answer) and checks that it holds what the incrs
// acknowledged.
func (c *kvsCounter) check(addrs []string, lt *loadTally) {
	if c.lo < 0 {
		return
	}
	var got string
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		got, err = kvsRoundTrip(addrs[rand.IntN(len(addrs))], "get "+c.key+"\r\n", "END\r\n")
		if err == nil && !strings.Contains(got, "ERROR") || time.Now().After(deadline) {
			break
		}
	}
	if err == nil && got == "END\r\n" {
		lt.miscounted(fmt.Sprintf("get %s at the end: a miss: the counter is lost", c.key))
		return
	}
	head, rest, _ := strings.Cut(got, "\r\n")
	val, _, _ := strings.Cut(rest, "\r\n")
	v, perr := strconv.Atoi(val)
	if err != nil || !strings.HasPrefix(head, "VALUE "+c.key+" ") || perr != nil {
		lt.fail(fmt.Sprintf("get %s at the end: %q %v", c.key, got, err))
		return
	}
	if v < c.lo || v > c.hi {
		lt.miscounted(fmt.Sprintf("%s reads %d at the end, want %d..%d", c.key, v, c.lo, c.hi))
	}
}
