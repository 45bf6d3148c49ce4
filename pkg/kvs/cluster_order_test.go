package kvs

import (
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lbd-project/lbd/pkg/slots"
)

// TestClusterMovePipelinedBroadcast: a flush_all or stats pipelined behind
// a write that is sent again while its slot moves (through a node whose
// map is behind, as TestClusterMovePipelined) runs after the write: the
// flush_all flushes it, and a read behind the flush_all misses; the stats
// counts it.
func TestClusterMovePipelinedBroadcast(t *testing.T) {
	tc := startCluster(t, 3, 1, slots.Sync)
	moving := func(prefix string) string {
		return keysWhere(tc.slotMap(), prefix, 1, func(s slots.Slot) bool {
			return s.Primary == "st1" && slices.Equal(s.InSync, []string{"st2"})
		})[0]
	}
	// pipeline sends req through st3 while k's slot moves to st2 (st3
	// learns it 300 ms later) and reads its replies with read.
	pipeline := func(t *testing.T, k, req string, read func(c *textConn) []string) []string {
		t.Helper()
		c := dialText(t, tc.addrs[2])
		defer c.close()
		tc.stores[2].cut(true)
		tc.moveSlot(t, k, "st2")
		io.WriteString(c.c, req)
		tc.thawLater(2, 300*time.Millisecond)
		c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		replies := read(c)
		tc.waitSeen(t)
		return replies
	}
	replies := func(n int) func(c *textConn) []string {
		return func(c *textConn) []string {
			var out []string
			for range n {
				r, err := readReply(c)
				if err != nil {
					t.Fatalf("after %q: %v", out, err)
				}
				out = append(out, r)
			}
			return out
		}
	}
	// stats reads a stats reply up to END.
	stats := func(c *textConn) string {
		var out strings.Builder
		for !strings.HasSuffix(out.String(), "END\r\n") {
			line, err := c.br.ReadString('\n')
			if err != nil || strings.HasPrefix(line, "SERVER_ERROR") {
				t.Fatalf("stats: %q %q %v", out.String(), line, err)
			}
			out.WriteString(line)
		}
		return out.String()
	}
	items := func(stats string) int {
		n := -1
		for _, l := range strings.Split(stats, "\r\n") {
			fmt.Sscanf(l, "STAT curr_items %d", &n)
		}
		if n < 0 {
			t.Fatalf("stats: %q", stats)
		}
		return n
	}
	statsVia := func(addr string) string {
		c := dialText(t, addr)
		defer c.close()
		io.WriteString(c.c, "stats\r\n")
		c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		return stats(c)
	}
	t.Run("stats", func(t *testing.T) {
		k := moving("pbs:")
		before := items(statsVia(tc.addrs[0]))
		got := pipeline(t, k, fmt.Sprintf("set %s 0 0 1\r\nx\r\nstats\r\n", k), func(c *textConn) []string {
			r := replies(1)(c)
			return append(r, stats(c))
		})
		if got[0] != "STORED\r\n" {
			t.Fatalf("set through st3 during the move: %q", got[0])
		}
		// The new key's two copies (primary and backup).
		if n := items(got[1]); n != before+2 {
			t.Fatalf("stats pipelined behind the set: curr_items %d, want %d (%d before the set)", n, before+2, before)
		}
	})
	t.Run("flush_all", func(t *testing.T) {
		k := moving("pbf:")
		if !setVia(t, tc.addrs[0], k, "old") {
			t.Fatal("set before the move failed")
		}
		got := pipeline(t, k, fmt.Sprintf("set %s 0 0 3\r\n100\r\nflush_all\r\nget %s\r\n", k, k), replies(3))
		if want := []string{"STORED\r\n", "OK\r\n", "END\r\n"}; !slices.Equal(got, want) {
			t.Fatalf("set, flush_all, get pipelined through st3 during the move: %q, want %q", got, want)
		}
		if _, found, ok := getEventually(t, tc.addrs[1], k); !ok || found {
			t.Fatalf("%s after flush_all: found %v ok %v", k, found, ok)
		}
	})
}

// casUnique matches a VALUE line's cas unique.
var casUnique = regexp.MustCompile(`(VALUE \S+ \d+ \d+) \d+\r\n`)

// TestClusterMoveGatHalfWay: a gat or gats of two keys at their primary,
// whose view of the cluster is behind while the second key's slot moves:
// the first key's touch runs, the second's is refused by the new primary
// (it ran nowhere) and is sent there once the node has the new map. The
// client gets both values and END, not the first value and the error.
func TestClusterMoveGatHalfWay(t *testing.T) {
	tc := startCluster(t, 3, 1, slots.Sync)
	for _, cmd := range []string{"gat", "gats"} {
		t.Run(cmd, func(t *testing.T) {
			m := tc.slotMap()
			mv := keysWhere(m, cmd+":mv", 1, func(s slots.Slot) bool {
				return s.Primary == "st1" && slices.Equal(s.InSync, []string{"st2"})
			})[0]
			var stays string
			for _, k := range keysWhere(m, cmd+":stays", 8, func(s slots.Slot) bool { return s.Primary == "st1" && len(s.InSync) == 1 }) {
				if slots.Of([]byte(k)) != slots.Of([]byte(mv)) {
					stays = k
					break
				}
			}
			for _, k := range []string{stays, mv} {
				if !setVia(t, tc.addrs[0], k, k) {
					t.Fatalf("set %s failed", k)
				}
			}
			c := dialText(t, tc.addrs[0])
			defer c.close()
			tc.stores[0].cut(true) // st1 misses the move: it still serves both
			tc.moveSlot(t, mv, "st2")
			tc.thawLater(0, 300*time.Millisecond)
			got, err := c.do(fmt.Sprintf("%s 100 %s %s\r\n", cmd, stays, mv))
			if err != nil {
				t.Fatalf("%s: %q %v", cmd, got, err)
			}
			var want strings.Builder
			for _, k := range []string{stays, mv} {
				fmt.Fprintf(&want, "VALUE %s 0 %d\r\n%s\r\n", k, len(k), k)
			}
			if cmd == "gats" {
				got = casUnique.ReplaceAllString(got, "$1\r\n") // whatever they are
			}
			want.WriteString("END\r\n")
			if got != want.String() {
				t.Fatalf("%s of %s %s through st1 during the move:\n%q\nwant\n%q", cmd, stays, mv, got, want.String())
			}
		})
	}
}
