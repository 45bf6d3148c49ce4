package kvs

import (
	"fmt"
	"testing"
	"time"
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
	if n := s.Stats().GetExpired; n != 1 {
		t.Errorf("get_expired = %d, want 1", n)
	}
	if err := s.sweep(300); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Items != 1 || st.Reclaimed != 1 {
		t.Errorf("after sweep: %+v", st)
	}
}

// TestDurableHotSetWhole covers the hot set standing for the whole store:
// a store whose items all fit answers misses from memory, and one whose
// items do not (at open, or after an eviction) still finds every item.
func TestDurableHotSetWhole(t *testing.T) {
	dir := t.TempDir()
	open := func(limit int64) *DurableStore {
		t.Helper()
		s, err := OpenDurable(testLogger(t), DurableOptions{Dir: dir, MemoryLimit: limit, Sync: SyncGroup})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	value := make([]byte, 1000)
	checkAll := func(s *DurableStore, what string) {
		t.Helper()
		for i := range 1000 {
			if it, ok := s.Get([]byte(fmt.Sprint("k", i)), 100); !ok || len(it.Value) != len(value) {
				t.Fatalf("%s: k%d missing", what, i)
			}
		}
		if _, ok := s.Get([]byte("absent"), 100); ok {
			t.Fatalf("%s: absent key found", what)
		}
	}

	s := open(8 << 20)
	if !s.isWhole() {
		t.Error("empty store: hot set not whole")
	}
	for i := range 1000 {
		setItem(t, s, fmt.Sprint("k", i), Item{Value: value}, 100)
	}
	if !s.isWhole() {
		t.Error("1 MB in an 8 MiB store: hot set not whole")
	}
	checkAll(s, "written")
	s.Close()

	s = open(8 << 20)
	if !s.isWhole() {
		t.Error("reopened 1 MB in 8 MiB: hot set not whole")
	}
	checkAll(s, "reopened whole")
	s.Close()

	// 1 MiB gives the hot set 640 KiB: the 1 MB of items do not fit.
	s = open(1 << 20)
	if s.isWhole() {
		t.Error("reopened 1 MB in 1 MiB: hot set whole")
	}
	checkAll(s, "reopened partial")
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if !s.isWhole() {
		t.Error("after flush: hot set not whole")
	}
	// Filling it past the hot set's share evicts: misses go to Pebble again.
	for i := range 1000 {
		setItem(t, s, fmt.Sprint("k", i), Item{Value: value}, 100)
	}
	if s.isWhole() || s.hot.Stats().Evictions == 0 {
		t.Errorf("1 MB written to 1 MiB: whole=%v, hot evictions %d", s.isWhole(), s.hot.Stats().Evictions)
	}
	checkAll(s, "evicted")
	s.Close()
}

// TestDurableKeyFilterSparesReads checks that, with a hot set that does
// not hold every item, gets of absent keys and sets of new keys do not
// search Pebble, while items only on disk are still read from it, also
// after a restart (the filter is rebuilt from disk).
func TestDurableKeyFilterSparesReads(t *testing.T) {
	dir := t.TempDir()
	value := make([]byte, 1000)
	s, err := OpenDurable(testLogger(t), DurableOptions{Dir: dir, MemoryLimit: 1 << 20, Sync: SyncGroup})
	if err != nil {
		t.Fatal(err)
	}
	for round := range 2 {
		if round == 1 {
			s.Close()
			if s, err = OpenDurable(testLogger(t), DurableOptions{Dir: dir, MemoryLimit: 1 << 20, Sync: SyncGroup}); err != nil {
				t.Fatal(err)
			}
		}
		before := s.reads.Load()
		for i := range 1000 {
			setItem(t, s, fmt.Sprint("r", round, "-new", i), Item{Value: value}, 100)
			if _, ok := s.Get([]byte(fmt.Sprint("r", round, "-absent", i)), 100); ok {
				t.Fatal("absent key found")
			}
		}
		if s.isWhole() {
			t.Fatal("hot set whole: the filter is not exercised")
		}
		if n := s.reads.Load() - before; n > 100 {
			t.Errorf("round %d: %d Pebble reads for 1000 new sets and 1000 absent gets", round, n)
		}
		before = s.reads.Load()
		for i := range 1000 {
			if _, ok := s.Get([]byte(fmt.Sprint("r", round, "-new", i)), 100); !ok {
				t.Fatalf("round %d: new%d missing", round, i)
			}
		}
		if s.reads.Load() == before {
			t.Errorf("round %d: items evicted from the hot set were not read from Pebble", round)
		}
	}
	s.Close()
}

// TestGroupCommitSyncsEachRound checks that under SyncGroup every round of
// writes is synced: the first unsynced write wakes the group commit, which
// syncs the log and clears the mark, and the next write starts a new round.
func TestGroupCommitSyncsEachRound(t *testing.T) {
	s, err := OpenDurable(testLogger(t), DurableOptions{Dir: t.TempDir(), Sync: SyncGroup, SyncInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for round := range 3 {
		setItem(t, s, fmt.Sprint("k", round), Item{Value: []byte("v")}, 100)
		if !s.dirty.Load() {
			t.Fatalf("round %d: a write left no unsynced mark", round)
		}
		deadline := time.Now().Add(30 * time.Second)
		for s.dirty.Load() {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: the write was never synced", round)
			}
			time.Sleep(time.Millisecond)
		}
	}
}
