//go:build integration

package main

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestClusterKVSRebuildEqualsPrimary: a storage node (three real lbd
// processes, replicas: 1 sync) killed -9 and brought back with its state
// dir wiped is rebuilt under a running write load, and its copies then
// equal the primaries': every other node is killed -9 in turn, so that the
// rebuilt node serves as primary the slots it backed up, and every key
// written before and during the rebuild reads back as it did through the
// primaries before the kills.
func TestClusterKVSRebuildEqualsPrimary(t *testing.T) {
	l, all, addrs := startKVSCluster(t, kvsCluster)
	if out, err := l.kvsClient("cl", "rw", "pre", 500, addrs); err != nil {
		t.Fatalf("keys written before the kill: %v\n%s", err, out)
	}

	// A write load (keys ld0..ld199) through random nodes during the kill,
	// the restart and the rebuild.
	stopLoad := l.startLoad("ld", addrs)
	time.Sleep(time.Second)
	victim := l.mostPrimaries(all)
	t.Logf("kill -9 %s, wipe its state dir, restart", victim)
	l.kill(victim)
	if err := os.RemoveAll(filepath.Join(l.dir, "state-"+victim)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	l.startNode(victim)
	l.kvsSettled(all, victim+" back empty, rebuilt, every backup in sync")
	// Errors are allowed here: the kill leaves the victim's slots
	// unavailable until their failover; an incr counted twice or lost
	// ("wrong") is not.
	out := stopLoad()
	if !strings.HasPrefix(out, "ok") && !strings.HasPrefix(out, "errors") {
		t.Fatalf("the load: %s", out)
	}
	t.Logf("the load: %s", out)

	want := l.kvsDump(addrs)
	for i := range 500 {
		if k, v := fmt.Sprintf("pre%d", i), fmt.Sprintf("v%d-pre", i); want[k] != v {
			t.Fatalf("%s read %q after the rebuild, written %q before the kill", k, want[k], v)
		}
	}
	for _, other := range all {
		if other == victim {
			continue
		}
		t.Logf("kill -9 %s: %s serves the slots it backed up", other, victim)
		l.kill(other)
		var live []string
		for i, n := range all {
			if n != other {
				live = append(live, addrs[i])
			}
		}
		got := l.kvsDump(live)
		for _, k := range slices.Sorted(maps.Keys(want)) {
			if got[k] != want[k] {
				t.Errorf("%s with %s down: %q, the primary had %q", k, other, got[k], want[k])
			}
		}
		l.startNode(other)
		l.kvsSettled(all, other+" back and every backup in sync")
	}
}

// kvsDump reads keys pre0..pre499 and ld0..ld199 through the nodes of
// addrs in turn, each on a new connection and sent again while a slot is
// between primaries, and returns their values ("-" for a miss).
func (l *clusterLab) kvsDump(addrs []string) map[string]string {
	l.t.Helper()
	vals := map[string]string{}
	for _, p := range []struct {
		prefix string
		n      int
	}{{"pre", 500}, {"ld", 200}} {
		out, err := l.kvsClient("cl", "dump", p.prefix, p.n, addrs)
		if err != nil {
			l.t.Fatalf("dump %s: %v", p.prefix, err)
		}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
			k, v, _ := strings.Cut(line, " ")
			vals[k] = v
		}
	}
	return vals
}

// kvsDumpMain is the probe's "KVS dump PREFIX N": it prints "ok", then a
// line "KEY VALUE" ("KEY -" for a miss) for each key PREFIX0..PREFIX(N-1),
// each read on a new connection to the next node and read again (on the
// one after), up to 30 times 500ms apart, while it gets no answer or a
// SERVER_ERROR.
func kvsDumpMain(addrs []string, prefix string, n int) int {
	var b strings.Builder
	b.WriteString("ok\n")
	for k := range n {
		key := prefix + strconv.Itoa(k)
		var got string
		var err error
		for try := range 30 {
			got, err = kvsRoundTrip(addrs[(k+try)%len(addrs)], "get "+key+"\r\n", "END\r\n")
			if err == nil && !strings.HasPrefix(got, "SERVER_ERROR") {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		if err != nil || strings.Contains(got, "ERROR") {
			fmt.Printf("get %s: %q %v\n", key, got, err)
			return 0
		}
		val := "-"
		if lines := strings.Split(got, "\r\n"); strings.HasPrefix(lines[0], "VALUE ") && len(lines) > 1 {
			val = lines[1]
		}
		fmt.Fprintf(&b, "%s %s\n", key, val)
	}
	fmt.Print(b.String())
	return 0
}

func init() {
	kvsClientModes["dump"] = func(addrs, f []string) (int, bool) {
		n, _ := strconv.Atoi(f[3])
		return kvsDumpMain(addrs, f[2], n), true
	}
}
