package kvs

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// memShards is the number of lock shards of a MemoryStore; a power of two.
const memShards = 128

// MemoryStore is an in-memory Store with LRU eviction inside a byte limit.
// The limit is global to the store; each shard keeps its own LRU list and
// eviction walks the shards' cold ends in turn, which approximates a global
// LRU without a global lock.
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
	// Like memcached, bump at most once per second per item: the list
	// surgery is the expensive part of a hit.
	if e.it.Atime != now || e.it.Meta&MetaFetched == 0 {
		e.it.Atime = now
		e.it.Meta |= MetaFetched
		if sh.root.next != e {
			sh.unlink(e)
			sh.pushFront(e)
		}
	}
	sh.mu.Unlock()
	return it, true
}

// Mutate implements Store.
func (s *MemoryStore) Mutate(key []byte, now int64, fn MutateFunc) (Item, error) {
	sh := s.shard(key)
	sh.mu.Lock()
	e, found := sh.m[string(key)]
	if found && e.it.expired(now) {
		s.remove(sh, e)
		s.reclaimed.Add(1)
		e, found = nil, false
	}
	var cur Item
	if found {
		cur = e.it
	}
	next, op := fn(cur, found)
	var grew bool
	switch op {
	case OpKeep:
		sh.mu.Unlock()
		return cur, nil
	case OpDelete:
		if found {
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
	size := itemSize(key, next.Value)
	if found {
		s.used.Add(size - e.size)
		grew = size > e.size
		e.it, e.size = next, size
		if sh.root.next != e {
			sh.unlink(e)
			sh.pushFront(e)
		}
	} else {
		e = &memEntry{key: string(key), it: next, size: size}
		sh.m[e.key] = e
		sh.pushFront(e)
		s.used.Add(size)
		s.items.Add(1)
		grew = true
	}
	sh.mu.Unlock()
	if grew && s.used.Load() > s.limit.Load() {
		s.evict()
	}
	return next, nil
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
			if tail := sh.root.prev; tail != &sh.root {
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
		if e := best.root.prev; e != &best.root {
			s.remove(best, e)
			s.evictions.Add(1)
		}
		best.mu.Unlock()
	}
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
