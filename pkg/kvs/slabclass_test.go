package kvs

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
)

// mcClass follows memcached 1.6's item header arithmetic; the cases were
// read off a real memcached's `stats items` (k/5 bytes: 65, flags 1 and 40
// bytes: 105).
func TestMCClass(t *testing.T) {
	tests := []struct {
		nkey, nvalue int
		flags        uint32
		want         int
	}{
		{1, 5, 0, 1},        // 65 bytes
		{2, 40, 1, 2},       // 105
		{1, 36, 0, 1},       // 96: the first class's chunk exactly
		{1, 37, 0, 2},       // 97
		{10, 1000, 0, 12},   // 1069
		{10, 524000, 0, 39}, // 524069
		{10, 600000, 0, 39}, // chained: the largest class
	}
	for _, tt := range tests {
		if got := mcClass(tt.nkey, tt.nvalue, tt.flags); got != tt.want {
			t.Errorf("mcClass(%d, %d, %d) = %d, want %d", tt.nkey, tt.nvalue, tt.flags, got, tt.want)
		}
	}
}

// statConn is a client of a real tier for stats.
type statConn struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func newStatConn(t *testing.T, addr string) *statConn {
	c := dialT(t, addr)
	return &statConn{t: t, c: c, r: bufio.NewReader(c)}
}

// do sends req and reads replies until a line equal to last.
func (sc *statConn) do(req, last string) []string {
	sc.t.Helper()
	io.WriteString(sc.c, req)
	var lines []string
	for {
		line, err := sc.r.ReadString('\n')
		if err != nil {
			sc.t.Fatalf("%q: %v", req, err)
		}
		line = strings.TrimRight(line, "\r\n")
		lines = append(lines, line)
		if line == last {
			return lines
		}
	}
}

// stats returns a stats command's values by name.
func (sc *statConn) stats(which string) map[string]int64 {
	sc.t.Helper()
	out := map[string]int64{}
	for _, l := range sc.do("stats "+which+"\r\n", "END") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "STAT" {
			out[f[1]], _ = strconv.ParseInt(f[2], 10, 64)
		}
	}
	return out
}

// TestExpiredReclaimedBeforeGrowing: expired items replaced by new ones of
// the same size leave total_malloced flat, as in memcached, on a real tier.
func TestExpiredReclaimedBeforeGrowing(t *testing.T) {
	clock := newFakeClock()
	_, addrs := startTier(t, Options{Now: clock.now}, TenantConfig{Name: "x"})
	sc := newStatConn(t, addrs["x"])
	const n = 5000
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "set old%d 0 10 100 noreply\r\n%s\r\n", i, strings.Repeat("v", 100))
	}
	sc.do(b.String()+"mn\r\n", "MN")
	before := sc.stats("slabs")["total_malloced"]
	clock.advance(60) // every old item has expired
	b.Reset()
	for i := range n {
		fmt.Fprintf(&b, "set new%d 0 0 100 noreply\r\n%s\r\n", i, strings.Repeat("v", 100))
	}
	sc.do(b.String()+"mn\r\n", "MN")
	after := sc.stats("slabs")["total_malloced"]
	if after > before+before/20 {
		t.Errorf("total_malloced grew from %d to %d although every old item had expired", before, after)
	}
	items := sc.stats("items")
	if items["items:4:reclaimed"] == 0 || items["items:4:expired_unfetched"] == 0 {
		t.Errorf("reclaims not counted in class 4: %v", items)
	}
	if items["items:4:number"] < n {
		t.Errorf("items:4:number = %d, want at least %d", items["items:4:number"], n)
	}
}

// TestClassStatsEvictionsAndReset: a full store counts its evictions in
// the items' class, and `stats reset` zeroes them, not the items held.
func TestClassStatsEvictionsAndReset(t *testing.T) {
	_, addrs := startTier(t, Options{}, TenantConfig{Name: "x", MemoryLimit: 1 << 20})
	sc := newStatConn(t, addrs["x"])
	var b strings.Builder
	for i := range 20000 {
		fmt.Fprintf(&b, "set k%d 0 0 100 noreply\r\n%s\r\n", i, strings.Repeat("v", 100))
	}
	sc.do(b.String()+"mn\r\n", "MN")
	items := sc.stats("items")
	if items["items:4:evicted"] == 0 || items["items:4:evicted_unfetched"] == 0 {
		t.Fatalf("no evictions counted in class 4: %v", items)
	}
	number := items["items:4:number"]
	if sc.stats("")["evictions"] == 0 {
		t.Error("no evictions in stats")
	}
	sc.do("stats reset\r\n", "RESET")
	items = sc.stats("items")
	if items["items:4:evicted"] != 0 || items["items:4:evicted_unfetched"] != 0 || sc.stats("")["evictions"] != 0 {
		t.Errorf("stats reset left evictions: %v", items)
	}
	if items["items:4:number"] != number {
		t.Errorf("stats reset changed items:4:number from %d to %d", number, items["items:4:number"])
	}
	slabs := sc.stats("slabs")
	if slabs["4:chunk_size"] != 192 || slabs["4:used_chunks"] != number || slabs["active_slabs"] != 1 {
		t.Errorf("stats slabs = %v", slabs)
	}
}
