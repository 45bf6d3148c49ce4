package kvs

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/bradfitz/gomemcache/memcache"
)

// TestGoClient drives the tier with a stock Go memcached client.
func TestGoClient(t *testing.T) {
	for _, kind := range []StoreKind{StoreMemory, StoreDurable} {
		t.Run(string(kind), func(t *testing.T) {
			cfg := TenantConfig{Name: "g", Store: kind}
			if kind == StoreDurable {
				cfg.Dir = t.TempDir()
				cfg.Sync = SyncGroup
			}
			_, addrs := startTier(t, Options{}, cfg)
			mc := memcache.New(addrs["g"])
			mc.MaxIdleConns = 4

			if err := mc.Set(&memcache.Item{Key: "k", Value: []byte("v1"), Flags: 42}); err != nil {
				t.Fatalf("Set: %v", err)
			}
			it, err := mc.Get("k")
			if err != nil || string(it.Value) != "v1" || it.Flags != 42 {
				t.Fatalf("Get = %+v, %v", it, err)
			}
			if err := mc.Add(&memcache.Item{Key: "k", Value: []byte("x")}); !errors.Is(err, memcache.ErrNotStored) {
				t.Errorf("Add existing: %v", err)
			}
			it.Value = []byte("v2")
			if err := mc.CompareAndSwap(it); err != nil {
				t.Errorf("CAS: %v", err)
			}
			it.Value = []byte("v3")
			if err := mc.CompareAndSwap(it); !errors.Is(err, memcache.ErrCASConflict) {
				t.Errorf("stale CAS: %v", err)
			}
			if err := mc.Append(&memcache.Item{Key: "k", Value: []byte("+")}); err != nil {
				t.Errorf("Append: %v", err)
			}
			keys := []string{"k"}
			bin := []byte{0, 1, 2, '\r', '\n', 255}
			for i := range 50 {
				key := fmt.Sprintf("m%d", i)
				keys = append(keys, key)
				if err := mc.Set(&memcache.Item{Key: key, Value: append(bin, byte(i))}); err != nil {
					t.Fatalf("Set %s: %v", key, err)
				}
			}
			got, err := mc.GetMulti(keys)
			if err != nil || len(got) != 51 || string(got["k"].Value) != "v2+" || !bytes.Equal(got["m7"].Value, append(bin, 7)) {
				t.Fatalf("GetMulti: %d items, %v", len(got), err)
			}
			if err := mc.Set(&memcache.Item{Key: "n", Value: []byte("10")}); err != nil {
				t.Fatal(err)
			}
			if v, err := mc.Increment("n", 5); err != nil || v != 15 {
				t.Errorf("Increment = %d, %v", v, err)
			}
			if v, err := mc.Decrement("n", 100); err != nil || v != 0 {
				t.Errorf("Decrement = %d, %v", v, err)
			}
			if err := mc.Touch("n", 100); err != nil {
				t.Errorf("Touch: %v", err)
			}
			if err := mc.Delete("n"); err != nil {
				t.Errorf("Delete: %v", err)
			}
			if _, err := mc.Get("n"); !errors.Is(err, memcache.ErrCacheMiss) {
				t.Errorf("Get deleted: %v", err)
			}
			if err := mc.Set(&memcache.Item{Key: "big", Value: make([]byte, 2<<20)}); err == nil {
				t.Error("2 MiB value accepted")
			}
			if err := mc.FlushAll(); err != nil {
				t.Errorf("FlushAll: %v", err)
			}
			if _, err := mc.Get("k"); !errors.Is(err, memcache.ErrCacheMiss) {
				t.Errorf("Get after flush: %v", err)
			}
			if err := mc.Ping(); err != nil {
				t.Errorf("Ping: %v", err)
			}
		})
	}
}
