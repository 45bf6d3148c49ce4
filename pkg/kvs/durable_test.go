package kvs

import (
	"fmt"
	"testing"
)

func setItem(t *testing.T, s Store, key string, it Item, now int64) Item {
	t.Helper()
	got, err := s.Mutate([]byte(key), now, func(Item, bool) (Item, Op) { return it, OpStore })
	if err != nil {
		t.Fatalf("set %s: %v", key, err)
	}
	return got
}

func TestDurableReopen(t *testing.T) {
	dir := t.TempDir()
	for _, mode := range []SyncMode{SyncAlways, SyncGroup} {
		t.Run(string(mode), func(t *testing.T) {
			s, err := OpenDurable(testLogger(t), DurableOptions{Dir: dir + "/" + string(mode), MemoryLimit: 8 << 20, Sync: mode})
			if err != nil {
				t.Fatal(err)
			}
			var lastCAS uint64
			for i := range 100 {
				lastCAS = setItem(t, s, fmt.Sprint(i), Item{Value: []byte(fmt.Sprint("v", i)), Flags: uint32(i)}, 100).CAS
			}
			setItem(t, s, "short", Item{Value: []byte("x"), Exptime: 150}, 100)
			s.Mutate([]byte("7"), 100, deleteFn)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}

			s, err = OpenDurable(testLogger(t), DurableOptions{Dir: dir + "/" + string(mode), MemoryLimit: 8 << 20, Sync: mode})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			// load() drops items expired by the wall clock; "short" expired
			// at unix second 150.
			if st := s.Stats(); st.Items != 99 {
				t.Errorf("items after reopen = %d, want 99", st.Items)
			}
			for i := range 100 {
				it, ok := s.Get([]byte(fmt.Sprint(i)), 100)
				if i == 7 {
					if ok {
						t.Error("deleted key came back")
					}
					continue
				}
				if !ok || string(it.Value) != fmt.Sprint("v", i) || it.Flags != uint32(i) {
					t.Errorf("key %d = %+v, %v", i, it, ok)
				}
			}
			if _, ok := s.Get([]byte("short"), 100); ok {
				t.Error("expired item survived reopen")
			}
			if c := setItem(t, s, "new", Item{Value: []byte("n")}, 100).CAS; c <= lastCAS {
				t.Errorf("CAS went back: %d after %d", c, lastCAS)
			}
			if err := s.Flush(); err != nil {
				t.Fatal(err)
			}
			if _, ok := s.Get([]byte("1"), 100); ok || s.Stats().Items != 0 {
				t.Error("flush left items")
			}
		})
	}
}

func TestDurableExpiryAndSweep(t *testing.T) {
	s, err := OpenDurable(testLogger(t), DurableOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	setItem(t, s, "a", Item{Value: []byte("x"), Exptime: 200}, 100)
	setItem(t, s, "b", Item{Value: []byte("y")}, 100)
	if _, ok := s.Get([]byte("a"), 199); !ok {
		t.Error("expired early")
	}
	if _, ok := s.Get([]byte("a"), 200); ok {
		t.Error("not expired")
	}
	if err := s.sweep(300); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Items != 1 || st.Reclaimed != 1 {
		t.Errorf("after sweep: %+v", st)
	}
}
