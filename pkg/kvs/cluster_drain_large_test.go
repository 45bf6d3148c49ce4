package kvs

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lbd-project/lbd/pkg/slots"
)

// TestClusterDrainLarge drains st4 of four nodes (replicas 2 sync)
// holding KVS_DRAIN_ITEMS items (100,000 by default; KVS_DRAIN_DURABLE
// set: a durable tenant) under one client's sets through st2: the drain
// must finish, no set may fail, and no backup may leave the in-sync set.
// The slots a backup is rebuilt for start with a purge, which the backup
// applies on its stream from the primary before any later record of that
// stream, its live writes included: one purge record per slot, each a pass
// over the whole store, took more than 60 s here and timed sets out.
func TestClusterDrainLarge(t *testing.T) {
	items, _ := strconv.Atoi(os.Getenv("KVS_DRAIN_ITEMS"))
	if items <= 0 {
		items = 100_000
	}
	if testing.Short() {
		t.Skip("a large store: not in -short")
	}
	var opts []func(*TenantConfig)
	if os.Getenv("KVS_DRAIN_DURABLE") != "" {
		opts = append(opts, func(c *TenantConfig) {
			c.Store, c.Dir, c.Sync, c.SyncInterval = StoreDurable, t.TempDir(), SyncGroup, 10*time.Millisecond
		})
	}
	tc := startClusterOpts(t, 4, 2, slots.Sync, false, nil, opts...)
	loadItems(t, tc.addrs[0], items)
	stop, done := make(chan struct{}), make(chan struct{})
	var worst time.Duration
	var sets int
	var errs []string
	go func() {
		defer close(done)
		c := dialText(t, tc.addrs[1])
		defer func() { c.close() }()
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			start := time.Now()
			got, err := c.do(fmt.Sprintf("set w:%d 0 0 1\r\nx\r\n", n%500))
			worst = max(worst, time.Since(start))
			sets++
			if got != "STORED\r\n" {
				errs = append(errs, fmt.Sprintf("%s %q %v", time.Now().Format("15:04:05.000"), got, err))
			}
			if err != nil {
				c.close()
				c = dialText(t, tc.addrs[1])
			}
		}
	}()
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	before := tc.router(0).repl.shrinks.Load() + tc.router(1).repl.shrinks.Load() + tc.router(2).repl.shrinks.Load() + tc.router(3).repl.shrinks.Load()
	if err := SetStorageNodes(context.Background(), tc.store, tc.names[:3]); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		m := tc.slotMap()
		held := slices.ContainsFunc(m.Slots, func(s slots.Slot) bool { return s.Primary == "st4" || slices.Contains(s.Backups, "st4") })
		synced := !slices.ContainsFunc(m.Slots, func(s slots.Slot) bool { return len(s.InSync) != len(s.Backups) })
		if !held && synced && m.Moving() == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("drain of st4 not done after 60s: st4 holds slots %v, every backup in sync %v, %d slots moving", held, synced, m.Moving())
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	took := time.Since(start)
	close(stop)
	<-done
	shrinks := tc.router(0).repl.shrinks.Load() + tc.router(1).repl.shrinks.Load() + tc.router(2).repl.shrinks.Load() + tc.router(3).repl.shrinks.Load() - before
	t.Logf("%d items: drain %v, %d sets, worst set %v, %d in-sync shrinks, %d failed sets", items, took.Round(time.Millisecond), sets, worst.Round(time.Millisecond), shrinks, len(errs))
	if len(errs) > 0 {
		t.Errorf("%d sets failed during the drain, e.g.\n%s", len(errs), strings.Join(errs[:min(len(errs), 5)], "\n"))
	}
	if shrinks > 0 {
		t.Errorf("backups left the in-sync set %d times during the drain", shrinks)
	}
}
