package kvs

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
	"unsafe"
)

// memShards is the number of lock shards of a MemoryStore; a power of two.
const memShards = 128

// MemoryStore is an in-memory Store with LRU eviction inside a byte limit.
// The limit is global to the store; each shard keeps its own LRU list and
// eviction walks the shards' cold ends in turn, which approximates a global
// LRU without a global lock. A read only marks its item referenced; the
// item moves to the hot end when eviction finds it at the cold end (a
// second chance, as memcached's LRU maintainer moves active items), so that
// a hit does not write to the item's list neighbours.
type MemoryStore struct {
	seed      maphash.Seed
	shards    [memShards]memShard
	used      atomic.Int64
	limit     atomic.Int64
	cas       atomic.Uint64
	evictions atomic.Uint64
	total     atomic.Uint64
	reclaimed atomic.Uint64
	items     atomic.Int64
	cursor    atomic.Uint32
	evictMu   sync.Mutex
}

type memShard struct {
	mu   sync.Mutex
	m    map[string]*memEntry
	root memEntry // sentinel: root.next is the hottest, root.prev the coldest
	_    [40]byte // keep shards on separate cache lines
}

type memEntry struct {
	key        string
	it         Item
	size       int64
	prev, next *memEntry
	ref        bool // read since it moved to the hot end
}

// NewMemoryStore returns an empty store holding at most limit bytes.
func NewMemoryStore(limit int64) *MemoryStore {
	s := &MemoryStore{seed: maphash.MakeSeed()}
	s.limit.Store(limit)
	for i := range s.shards {
		sh := &s.shards[i]
		sh.m = make(map[string]*memEntry)
		sh.root.next, sh.root.prev = &sh.root, &sh.root
	}
	return s
}

func (s *MemoryStore) shard(key []byte) *memShard {
	return &s.shards[maphash.Bytes(s.seed, key)&(memShards-1)]
}

func (sh *memShard) unlink(e *memEntry) {
	e.prev.next = e.next
	e.next.prev = e.prev
	e.prev, e.next = nil, nil
}

func (sh *memShard) pushFront(e *memEntry) {
	e.ref = false
	e.prev = &sh.root
	e.next = sh.root.next
	sh.root.next.prev = e
	sh.root.next = e
}

// remove drops e from the shard; the caller holds sh.mu.
func (s *MemoryStore) remove(sh *memShard, e *memEntry) {
	sh.unlink(e)
	delete(sh.m, e.key)
	s.used.Add(-e.size)
	s.items.Add(-1)
}

// Get implements Store.
func (s *MemoryStore) Get(key []byte, now int64) (Item, bool) {
	sh := s.shard(key)
	sh.mu.Lock()
	e, ok := sh.m[string(key)]
	if !ok {
		sh.mu.Unlock()
		return Item{}, false
	}
	if e.it.expired(now) {
		s.remove(sh, e)
		sh.mu.Unlock()
		s.reclaimed.Add(1)
		return Item{}, false
	}
	it := e.it
	// Write only when something changes: most hits leave the entry's
	// cache line clean.
	if e.it.Atime != now || e.it.Meta&MetaFetched == 0 || !e.ref {
		e.it.Atime = now
		e.it.Meta |= MetaFetched
		e.ref = true
	}
	sh.mu.Unlock()
	return it, true
}

// Mutate implements Store.
func (s *MemoryStore) Mutate(key []byte, now int64, fn MutateFunc) (Item, error) {
	sh := s.shard(key)
	sh.mu.Lock()
	e := s.lookup(sh, key, now)
	var cur Item
	if e != nil {
		cur = e.it
	}
	next, op := fn(cur, e != nil)
	switch op {
	case OpKeep:
		sh.mu.Unlock()
		return cur, nil
	case OpDelete:
		if e != nil {
			s.remove(sh, e)
		}
		sh.mu.Unlock()
		return Item{}, nil
	case OpStore:
		next.CAS = s.cas.Add(1)
		next.Atime = now
		s.total.Add(1)
	case OpTouch:
	}
	return s.put(sh, e, key, false, next), nil
}

// set stores it under key whatever was there: Mutate with a MutateFunc
// returning it and OpStore, without the function. If owned, key is
// immutable and the store may keep it instead of copying it (it shares an
// allocation with it.Value).
func (s *MemoryStore) set(key []byte, owned bool, now int64, it Item) Item {
	sh := s.shard(key)
	sh.mu.Lock()
	e := s.lookup(sh, key, now)
	it.CAS = s.cas.Add(1)
	it.Atime = now
	s.total.Add(1)
	return s.put(sh, e, key, owned, it)
}

// lookup returns the live entry for key, nil if there is none; the caller
// holds sh.mu.
func (s *MemoryStore) lookup(sh *memShard, key []byte, now int64) *memEntry {
	e, found := sh.m[string(key)]
	if found && e.it.expired(now) {
		s.remove(sh, e)
		s.reclaimed.Add(1)
		return nil
	}
	return e
}

// put stores next in e (a new entry for key if e is nil), unlocks sh and
// evicts if the store went over its limit. If owned, the entry keeps key
// rather than a copy.
func (s *MemoryStore) put(sh *memShard, e *memEntry, key []byte, owned bool, next Item) Item {
	size := itemSize(key, next.Value)
	grew := true
	if e != nil {
		s.used.Add(size - e.size)
		grew = size > e.size
		// A key kept by set shares its value's allocation: re-key the
		// entry when the value is replaced (the map keeps the new string),
		// so that the old allocation is freed.
		rekey := owned || (sharesAlloc(e.key, e.it.Value) && unsafe.SliceData(next.Value) != unsafe.SliceData(e.it.Value))
		e.it, e.size = next, size
		if rekey {
			if owned {
				e.key = unsafe.String(unsafe.SliceData(key), len(key))
			} else {
				e.key = string(key)
			}
			sh.m[e.key] = e
		}
		if sh.root.next != e {
			sh.unlink(e)
			sh.pushFront(e)
		}
	} else {
		e = &memEntry{it: next, size: size}
		if owned {
			e.key = unsafe.String(unsafe.SliceData(key), len(key))
		} else {
			e.key = string(key)
		}
		sh.m[e.key] = e
		sh.pushFront(e)
		s.used.Add(size)
		s.items.Add(1)
	}
	sh.mu.Unlock()
	if grew && s.used.Load() > s.limit.Load() {
		s.evict()
	}
	return next
}

// sharesAlloc reports whether key's bytes are right before value's, as set
// stores them. (Two small allocations can also be neighbours; re-keying
// such an entry only costs a copy.)
func sharesAlloc(key string, value []byte) bool {
	end := uintptr(unsafe.Pointer(unsafe.StringData(key))) + uintptr(len(key))
	return len(value) > 0 && end == uintptr(unsafe.Pointer(unsafe.SliceData(value)))
}

// evict removes cold items until the store is within its limit. Each
// round looks at the cold ends of a few non-empty shards and evicts the
// least recently used of them (sampling approximates a global LRU without
// a global lock). It holds one shard lock at a time, so it never deadlocks
// with Mutate.
func (s *MemoryStore) evict() {
	s.evictMu.Lock()
	defer s.evictMu.Unlock()
	const sample = 4
	for s.used.Load() > s.limit.Load() {
		var best *memShard
		bestAtime := int64(0)
		seen := 0
		for probe := 0; probe < memShards && seen < sample; probe++ {
			sh := &s.shards[s.cursor.Add(7)&(memShards-1)]
			sh.mu.Lock()
			if tail := sh.coldest(); tail != &sh.root {
				if best == nil || tail.it.Atime < bestAtime {
					best, bestAtime = sh, tail.it.Atime
				}
				seen++
			}
			sh.mu.Unlock()
		}
		if best == nil {
			return // empty
		}
		best.mu.Lock()
		if e := best.coldest(); e != &best.root {
			// Counted before the item goes: whoever misses it under the
			// shard lock then sees the count (DurableStore relies on it).
			s.evictions.Add(1)
			s.remove(best, e)
		}
		best.mu.Unlock()
	}
}

// coldest gives the referenced entries at the cold end their second
// chance (moving them to the hot end, a bounded number per call) and
// returns the cold end; the caller holds sh.mu.
func (sh *memShard) coldest() *memEntry {
	const maxMoves = 64
	e := sh.root.prev
	for moves := 0; e != &sh.root && e.ref && moves < maxMoves; moves++ {
		sh.unlink(e)
		sh.pushFront(e)
		e = sh.root.prev
	}
	return e
}

// Flush implements Store.
func (s *MemoryStore) Flush() error {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for _, e := range sh.m {
			s.used.Add(-e.size)
			s.items.Add(-1)
		}
		sh.m = make(map[string]*memEntry)
		sh.root.next, sh.root.prev = &sh.root, &sh.root
		sh.mu.Unlock()
	}
	return nil
}

// SetLimit implements Store.
func (s *MemoryStore) SetLimit(limit int64) {
	s.limit.Store(limit)
	if s.used.Load() > limit {
		s.evict()
	}
}

// Stats implements Store.
func (s *MemoryStore) Stats() StoreStats {
	return StoreStats{
		Items:      s.items.Load(),
		Bytes:      s.used.Load(),
		LimitBytes: s.limit.Load(),
		Evictions:  s.evictions.Load(),
		TotalItems: s.total.Load(),
		Reclaimed:  s.reclaimed.Load(),
	}
}

// Close implements Store.
func (s *MemoryStore) Close() error { return s.Flush() }
