package kvs

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/lbd-project/lbd/internal/sysmem"
)

// A durable store as large as the machine allocates nothing in proportion
// to its limit up front: its key filter starts small.
func TestDurableNothingUpFront(t *testing.T) {
	limit := sysmem.Total()
	if limit == 0 {
		t.Skip("the machine's memory is unknown")
	}
	s, err := OpenDurable(testLogger(t), DurableOptions{Dir: t.TempDir(), MemoryLimit: limit})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.filter.Load().size(); got != filterStartSize {
		t.Errorf("key filter of %d bytes for a %d-byte store, want %d", got, limit, filterStartSize)
	}
	if _, err := OpenDurable(testLogger(t), DurableOptions{Dir: t.TempDir(), MemoryLimit: 1 << 60}); err == nil || !strings.Contains(err.Error(), "more than this machine's memory") {
		t.Errorf("OpenDurable(1 EiB): err = %v", err)
	}
}

func TestGoMemoryLimitSaturates(t *testing.T) {
	for _, b := range []int64{math.MaxInt64, math.MaxInt64 / 5 * 4, math.MaxInt64 - 1<<20} {
		if got := GoMemoryLimitFor(b); got != math.MaxInt64 {
			t.Errorf("GoMemoryLimitFor(%d) = %d, want MaxInt64", b, got)
		}
	}
	if got := GoMemoryLimitFor(64 << 20); got != 64<<20+16<<20+32<<20 {
		t.Errorf("GoMemoryLimitFor(64MiB) = %d", got)
	}
}

// A tenant whose settings cannot run is reported and left out; the
// others start and serve. No panic, whatever the settings.
func TestTierIsolatesTenantThatCannotStart(t *testing.T) {
	tier := New(testLogger(t), Options{GoMemoryLimit: true})
	defer tier.Close()
	busy := dialListen(t)
	want := []TenantConfig{
		{Name: "good", Listen: "127.0.0.1:0"},
		{Name: "huge", Listen: "127.0.0.1:0", Store: StoreDurable, Dir: t.TempDir(), MemoryLimit: 1000000 << 40},
		{Name: "maxint", Listen: "127.0.0.1:0", MemoryLimit: math.MaxInt64},
		{Name: "taken", Listen: busy},
	}
	err := tier.Apply(context.Background(), want)
	if err == nil {
		t.Fatal("Apply reported no failure")
	}
	failed := tier.Failed()
	for _, name := range []string{"huge", "maxint", "taken"} {
		if failed[name] == nil {
			t.Errorf("tenant %s not reported as failed (failed: %v)", name, failed)
		}
	}
	if _, ok := tier.Addr("good"); !ok || failed["good"] != nil {
		t.Fatalf("tenant good does not serve: %v", failed["good"])
	}
	// The good one keeps serving through a later Apply; a fixed tenant
	// starts and leaves the failed list.
	want[1].MemoryLimit = 16 << 20
	if err := tier.Apply(context.Background(), want[:2]); err != nil {
		t.Fatal(err)
	}
	if len(tier.Failed()) != 0 {
		t.Errorf("failed after the fix: %v", tier.Failed())
	}
	for _, name := range []string{"good", "huge"} {
		if _, ok := tier.Addr(name); !ok {
			t.Errorf("tenant %s does not serve", name)
		}
	}
	// A running tenant changed to settings it cannot have keeps its last
	// ones.
	bad := want[0]
	bad.MemoryLimit = math.MaxInt64
	if err := tier.Apply(context.Background(), []TenantConfig{bad, want[1]}); err == nil {
		t.Fatal("no failure reported")
	}
	if _, ok := tier.Addr("good"); !ok {
		t.Error("tenant good stopped over settings it cannot have")
	}
}

// dialListen returns an address some listener holds for the test.
func dialListen(t *testing.T) string {
	t.Helper()
	tier := New(testLogger(t), Options{NoEventLoop: true})
	t.Cleanup(func() { tier.Close() })
	if err := tier.Apply(context.Background(), []TenantConfig{{Name: "holder", Listen: "127.0.0.1:0"}}); err != nil {
		t.Fatal(err)
	}
	a, _ := tier.Addr("holder")
	return a.String()
}

// A durable store counts its items per memcached slab class, across a
// restart too, and its reclaims; ResetStats zeroes the events only.
func TestDurableClassStats(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenDurable(testLogger(t), DurableOptions{Dir: dir, MemoryLimit: 16 << 20})
	if err != nil {
		t.Fatal(err)
	}
	set := func(key string, n int, exp int64) {
		if _, err := s.Mutate([]byte(key), 1000, func(Item, bool) (Item, Op) {
			return Item{Value: []byte(strings.Repeat("v", n)), Exptime: exp}, OpStore
		}); err != nil {
			t.Fatal(err)
		}
	}
	set("a", 5, 0)    // class 1
	set("b", 5, 1001) // class 1, expires
	set("c", 100, 0)  // class 4
	classes := func() map[int]ClassStats {
		out := map[int]ClassStats{}
		for _, c := range s.ClassStats() {
			out[c.Class] = c
		}
		return out
	}
	if c := classes(); c[1].Items != 2 || c[4].Items != 1 {
		t.Fatalf("classes = %+v", c)
	}
	if err := s.sweep(2000); err != nil {
		t.Fatal(err)
	}
	if c := classes(); c[1].Items != 1 || c[1].Reclaimed != 1 || c[1].ExpiredUnfetched != 1 {
		t.Fatalf("after the sweep: %+v", c[1])
	}
	s.ResetStats()
	if c := classes(); c[1].Items != 1 || c[1].Reclaimed != 0 {
		t.Fatalf("after ResetStats: %+v", c[1])
	}
	s.Close()
	if s, err = OpenDurable(testLogger(t), DurableOptions{Dir: dir, MemoryLimit: 16 << 20}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if c := classes(); c[1].Items != 1 || c[4].Items != 1 {
		t.Fatalf("after a restart: %+v", c)
	}
}
