package kvs

import (
	"fmt"
	"testing"
)

func TestMemoryStoreEvictsWithinLimit(t *testing.T) {
	const limit = 1 << 20
	s := NewMemoryStore(limit)
	val := make([]byte, 1000)
	for i := range 5000 {
		key := []byte(fmt.Sprintf("key-%d", i))
		if _, err := s.Mutate(key, 1, func(Item, bool) (Item, Op) { return Item{Value: val}, OpStore }); err != nil {
			t.Fatal(err)
		}
		if used := s.Stats().Bytes; used > limit {
			t.Fatalf("after %d sets: %d bytes used, limit %d", i, used, limit)
		}
	}
	st := s.Stats()
	if st.Evictions == 0 || st.Items == 0 || st.Items >= 5000 {
		t.Errorf("stats %+v: want evictions and some items kept", st)
	}
	// The most recent items survive.
	if _, ok := s.Get([]byte("key-4999"), 1); !ok {
		t.Error("newest item was evicted")
	}
	if _, ok := s.Get([]byte("key-0"), 1); ok {
		t.Error("oldest item survived")
	}
}

func TestMemoryStoreLRUBump(t *testing.T) {
	s := NewMemoryStore(1 << 20)
	set := func(k string) {
		s.Mutate([]byte(k), 1, func(Item, bool) (Item, Op) { return Item{Value: make([]byte, 100)}, OpStore })
	}
	set("hot")
	for i := range 2000 {
		set(fmt.Sprint(i))
	}
	// Touch "hot" at a later second (bumps are at most once a second).
	if _, ok := s.Get([]byte("hot"), 2); !ok {
		t.Fatal("hot missing")
	}
	s.SetLimit(int64(s.Stats().Bytes / 2))
	if _, ok := s.Get([]byte("hot"), 2); !ok {
		t.Error("recently used item evicted by SetLimit")
	}
	if st := s.Stats(); st.Bytes > st.LimitBytes {
		t.Errorf("bytes %d over limit %d", st.Bytes, st.LimitBytes)
	}
}

func TestMemoryStoreExpiry(t *testing.T) {
	s := NewMemoryStore(1 << 20)
	s.Mutate([]byte("k"), 100, func(Item, bool) (Item, Op) { return Item{Value: []byte("v"), Exptime: 110}, OpStore })
	if _, ok := s.Get([]byte("k"), 109); !ok {
		t.Error("expired too early")
	}
	if _, ok := s.Get([]byte("k"), 110); ok {
		t.Error("not expired at its exptime")
	}
	if st := s.Stats(); st.Items != 0 || st.Reclaimed != 1 {
		t.Errorf("stats %+v", st)
	}
}

// TestMemoryStoreOwnedKeys covers set's keys that share their value's
// allocation: the entry must be re-keyed when the value is replaced.
func TestMemoryStoreOwnedKeys(t *testing.T) {
	s := NewMemoryStore(1 << 20)
	setOwned := func(k, v string) {
		buf := []byte(k + v)
		s.set(buf[:len(k):len(k)], true, 1, Item{Value: buf[len(k):]})
	}
	setOwned("k", "one")
	e := s.shard([]byte("k")).m["k"]
	if !sharesAlloc(e.key, e.it.Value) {
		t.Fatal("set copied its key")
	}
	setOwned("k", "two")
	if e2 := s.shard([]byte("k")).m["k"]; e2 != e || !sharesAlloc(e.key, e.it.Value) {
		t.Fatal("overwriting set did not re-key the entry")
	}
	s.Mutate([]byte("k"), 1, func(cur Item, _ bool) (Item, Op) {
		cur.Value = append([]byte(nil), "three"...)
		return cur, OpStore
	})
	if sharesAlloc(e.key, e.it.Value) || e.key != "k" {
		t.Fatalf("key %q after Mutate", e.key)
	}
	if it, ok := s.Get([]byte("k"), 1); !ok || string(it.Value) != "three" {
		t.Fatalf("get: %q %v", it.Value, ok)
	}
	if st := s.Stats(); st.Items != 1 || st.Bytes != itemSize([]byte("k"), []byte("three")) {
		t.Errorf("stats %+v", st)
	}
}
