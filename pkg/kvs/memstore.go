package kvs

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
	"unsafe"
)

// memShards is the number of lock shards of a MemoryStore; a power of two.
const memShards = 1 << shardBits

// MemoryStore is an in-memory Store with eviction inside a byte limit.
//
// Each item is one allocation, its block: header, key, value (see block).
// A shard's index (see index) maps the key's hash to the block, so a hit
// reads one slot of the index and one allocation, as memcached reads its
// hash table and one item.
//
// Eviction approximates LRU, memcached's policy. Each shard keeps its
// blocks in a ring in the order they were written or last moved (ring,
// oldest first; the hand is the oldest). A read moves a block in the older
// half of the ring to the newest end; a block in the newer half stays where
// it is, so most hits write nothing but the header's access time. The
// limit is global to the store: eviction takes, of a few shards' oldest
// blocks, the one accessed longest ago (sampling approximates a global
// order without a global lock).
//
// Not SIEVE, which this store used before: SIEVE leaves a read block in
// place and only marks it, so once the hand has swept past the marked old
// blocks it reaches the newest ones and evicts those not read yet. Under
// memcaslap (each key written, then read for a while) that missed up to
// half of all gets where memcached, at the same memory, missed none.
type MemoryStore struct {
	seed      maphash.Seed
	shards    [memShards]memShard
	used      atomic.Int64
	limit     atomic.Int64
	cas       atomic.Uint64
	evictions atomic.Uint64
	total     atomic.Uint64
	reclaimed atomic.Uint64
	// getExpired counts gets that found their key past its expiry.
	getExpired atomic.Uint64
	items      atomic.Int64
	cursor     atomic.Uint32
	evictMu    sync.Mutex
}

type memShard struct {
	mu    sync.Mutex
	idx   index
	ring  []*block // oldest first; nil where one was removed or moved
	hand  int      // the oldest block's position: ring[:hand] is all nil
	holes int      // nil entries in ring
	// cls counts the shard's items per memcached slab class (allocated
	// with the first item).
	cls *[mcClasses + 1]classCounters
	_   [40]byte // 128 bytes a shard: no two share a cache line
}

// class returns b's class counters; the caller holds sh.mu.
func (sh *memShard) class(b *block) *classCounters {
	if sh.cls == nil {
		sh.cls = new([mcClasses + 1]classCounters)
	}
	return &sh.cls[blockClass(b)]
}

// NewMemoryStore returns an empty store holding at most limit bytes.
func NewMemoryStore(limit int64) *MemoryStore {
	s := &MemoryStore{seed: maphash.MakeSeed()}
	s.limit.Store(limit)
	return s
}

// shard returns key's shard and hash.
func (s *MemoryStore) shard(key []byte) (*memShard, uint64) {
	h := maphash.Bytes(s.seed, key)
	return &s.shards[h&(memShards-1)], h
}

// lookahead is where a lookup of one key reads first: its shard and hash.
// The zero lookahead reads nowhere.
type lookahead struct {
	sh *memShard
	h  uint64
}

// prefetchSlot starts loading the index slot where a lookup of key starts,
// without waiting for it, and returns where that lookup reads, for
// prefetchBlock.
func (s *MemoryStore) prefetchSlot(key []byte) lookahead {
	sh, h := s.shard(key)
	sh.mu.Lock()
	if x := &sh.idx; len(x.slots) > 0 {
		prefetch(uintptr(unsafe.Pointer(&x.slots[x.home(h)])))
	}
	sh.mu.Unlock()
	return lookahead{sh, h}
}

// prefetchBlock starts loading the first two cache lines of the block in
// the slot prefetchSlot asked for, if that slot holds the key's hash (the
// key may sit further along its probe, or be absent).
func (a lookahead) prefetchBlock() {
	if a.sh == nil {
		return
	}
	a.sh.mu.Lock()
	if x := &a.sh.idx; len(x.slots) > 0 {
		if s := &x.slots[x.home(a.h)]; s.b != nil && s.h == a.h {
			p := uintptr(unsafe.Pointer(s.b))
			prefetch(p)
			prefetch(p + 64)
		}
	}
	a.sh.mu.Unlock()
}

// Get implements Store.
func (s *MemoryStore) Get(key []byte, now int64) (Item, bool) {
	it, ok, expired := s.find(key, now)
	if expired {
		s.getExpired.Add(1)
	}
	return it, ok
}

// find is Get that also tells a key found past its expiry (removed now)
// from an absent one, for memcached's get_expired.
func (s *MemoryStore) find(key []byte, now int64) (it Item, ok, expired bool) {
	sh, h := s.shard(key)
	sh.mu.Lock()
	b, expired := s.lookup(sh, h, key, now)
	if b == nil {
		sh.mu.Unlock()
		return Item{}, false, expired
	}
	it = b.item()
	// Write only when something changes: most hits leave the header's
	// cache line clean.
	if it.Atime != now || it.Meta&MetaFetched == 0 {
		b.setAtime(now)
		b.setMeta(it.Meta | MetaFetched)
	}
	sh.bump(b)
	sh.mu.Unlock()
	return it, true, false
}

// Mutate implements Store.
func (s *MemoryStore) Mutate(key []byte, now int64, fn MutateFunc) (Item, error) {
	sh, h := s.shard(key)
	sh.mu.Lock()
	b, _ := s.lookup(sh, h, key, now)
	var cur Item
	if b != nil {
		cur = b.item()
	}
	next, op := fn(cur, b != nil)
	switch op {
	case OpKeep:
		sh.mu.Unlock()
		return cur, nil
	case OpDelete:
		if b != nil {
			s.remove(sh, h, b)
		}
		sh.mu.Unlock()
		return Item{}, nil
	case OpStore:
		next.CAS = s.cas.Add(1)
		next.Atime = now
		s.total.Add(1)
	case OpTouch:
		if b != nil && sameBytes(next.Value, cur.Value) {
			// Only header fields changed: no new block.
			b.setHeader(next)
			sh.mu.Unlock()
			return next, nil
		}
	}
	nb, value := newBlock(key, len(next.Value), 0)
	copy(value, next.Value)
	next.Value = nb.value()
	s.put(sh, h, b, nb, next, now)
	return next, nil
}

// setBlock stores nb, filled by newBlock's caller, whatever was under its
// key: Mutate with a MutateFunc returning it and OpStore, without the
// function or a copy.
func (s *MemoryStore) setBlock(nb *block, now int64, flags uint32, exptime int64) {
	sh, h := s.shard(nb.keyBytes())
	sh.mu.Lock()
	old, _ := s.lookup(sh, h, nb.keyBytes(), now)
	s.total.Add(1)
	s.put(sh, h, old, nb, Item{Flags: flags, Exptime: exptime, CAS: s.cas.Add(1), Atime: now}, now)
}

// lookup returns the live block for key (whose hash is h), nil if there is
// none; expired tells that key was there past its expiry (it is removed
// now). The caller holds sh.mu.
func (s *MemoryStore) lookup(sh *memShard, h uint64, key []byte, now int64) (b *block, expired bool) {
	b = sh.idx.get(h, key)
	if b != nil && b.expired(now) {
		s.reclaim(sh, h, b)
		return nil, true
	}
	return b, false
}

// reclaim removes b, expired, whose key's hash is h; the caller holds
// sh.mu.
func (s *MemoryStore) reclaim(sh *memShard, h uint64, b *block) {
	c := sh.class(b)
	c.reclaimed++
	if b[bMeta]&MetaFetched == 0 {
		c.expiredUnfetched++
	}
	s.remove(sh, h, b)
	s.reclaimed.Add(1)
}

// reclaimTail removes up to n expired blocks from the oldest end of the
// shard's ring, stopping at the first live one, as memcached checks its
// LRU's tail before it takes more memory: expired items make room before
// the store grows. The caller holds sh.mu.
func (s *MemoryStore) reclaimTail(sh *memShard, now int64, n int) {
	for range n {
		b := sh.victim()
		if b == nil || !b.expired(now) {
			return
		}
		s.reclaim(sh, maphash.Bytes(s.seed, b.keyBytes()), b)
	}
}

// put makes nb, with the header of it, the block of its key (whose hash is
// h) in place of old (nil if the key was absent), unlocks sh and evicts if
// the store went over its limit. A new key first reclaims expired blocks
// at the shard's oldest end. The caller holds sh.mu.
func (s *MemoryStore) put(sh *memShard, h uint64, old, nb *block, it Item, now int64) {
	nb.setHeader(it)
	size := nb.size()
	grew := true
	if old != nil {
		s.used.Add(size - old.size())
		grew = size > old.size()
		sh.unring(old)
		c := sh.class(old)
		c.number--
		c.requested -= old.size()
	} else {
		s.reclaimTail(sh, now, 2)
		s.used.Add(size)
		s.items.Add(1)
	}
	c := sh.class(nb)
	c.number++
	c.requested += size
	sh.idx.set(h, old, nb)
	nb.setPos(len(sh.ring))
	sh.ring = append(sh.ring, nb)
	sh.mu.Unlock()
	if grew && s.used.Load() > s.limit.Load() {
		s.evict(now)
	}
}

// remove drops b, whose key's hash is h, from the shard; the caller holds
// sh.mu.
func (s *MemoryStore) remove(sh *memShard, h uint64, b *block) {
	c := sh.class(b)
	c.number--
	c.requested -= b.size()
	sh.unring(b)
	sh.idx.del(h, b)
	s.used.Add(-b.size())
	s.items.Add(-1)
}

// unring takes b out of the ring, compacting it when it is mostly holes.
func (sh *memShard) unring(b *block) {
	sh.ring[b.pos()] = nil
	sh.holes++
	if sh.holes > 32 && 2*sh.holes > len(sh.ring) {
		sh.compact()
	}
}

// bump moves b, just read, to the newest end of the ring if it is in the
// older half: a block read stays as long as LRU would keep it, and reads
// of blocks in the newer half (most hits, on a busy store) move nothing.
func (sh *memShard) bump(b *block) {
	p := b.pos()
	if 2*(p-sh.hand) >= len(sh.ring)-sh.hand {
		return
	}
	sh.unring(b)
	b.setPos(len(sh.ring))
	sh.ring = append(sh.ring, b)
}

// compact drops the ring's holes, keeping the order and the hand's place.
func (sh *memShard) compact() {
	j, hand := 0, -1
	for i, b := range sh.ring {
		if i == sh.hand {
			hand = j
		}
		if b != nil {
			b.setPos(j)
			sh.ring[j] = b
			j++
		}
	}
	if hand < 0 {
		hand = j
	}
	clear(sh.ring[j:])
	sh.ring = sh.ring[:j]
	if cap(sh.ring) > 4*j+64 {
		sh.ring = append([]*block(nil), sh.ring...)
	}
	sh.hand, sh.holes = hand, 0
}

// victim returns the shard's oldest block, nil if the shard is empty. The
// caller holds sh.mu.
func (sh *memShard) victim() *block {
	for ; sh.hand < len(sh.ring); sh.hand++ {
		if b := sh.ring[sh.hand]; b != nil {
			return b
		}
	}
	return nil
}

// evict removes items until the store is within its limit. Each round
// asks a few non-empty shards for their oldest blocks and evicts the one
// accessed longest ago (by access time in seconds, then by write order:
// CAS values grow with every write); one expired at now is reclaimed
// instead. It holds one shard lock at a time, so it never deadlocks with
// Mutate.
func (s *MemoryStore) evict(now int64) {
	s.evictMu.Lock()
	defer s.evictMu.Unlock()
	const sample = 8
	for s.used.Load() > s.limit.Load() {
		var best *memShard
		var bestAtime int64
		var bestCAS uint64
		seen := 0
		for probe := 0; probe < memShards && seen < sample; probe++ {
			sh := &s.shards[s.cursor.Add(7)&(memShards-1)]
			sh.mu.Lock()
			if b := sh.victim(); b != nil {
				at, cas := b.atime(), b.cas()
				if best == nil || at < bestAtime || at == bestAtime && cas < bestCAS {
					best, bestAtime, bestCAS = sh, at, cas
				}
				seen++
			}
			sh.mu.Unlock()
		}
		if best == nil {
			return // empty
		}
		best.mu.Lock()
		if b := best.victim(); b != nil {
			h := maphash.Bytes(s.seed, b.keyBytes())
			if b.expired(now) {
				s.reclaim(best, h, b)
				best.mu.Unlock()
				continue
			}
			c := best.class(b)
			c.evicted++
			if b.exptime() != 0 {
				c.evictedNonzero++
			}
			if b[bMeta]&MetaFetched == 0 {
				c.evictedUnfetched++
			}
			// Counted before the item goes: whoever misses it under the
			// shard lock then sees the count (DurableStore relies on it).
			s.evictions.Add(1)
			s.remove(best, h, b)
		}
		best.mu.Unlock()
	}
}

// Flush implements Store.
func (s *MemoryStore) Flush() error {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		sh.idx.each(func(b *block) {
			s.used.Add(-b.size())
			s.items.Add(-1)
		})
		sh.idx = index{}
		sh.ring, sh.hand, sh.holes = nil, 0, 0
		if sh.cls != nil {
			for i := range sh.cls {
				sh.cls[i].number, sh.cls[i].requested = 0, 0
			}
		}
		sh.mu.Unlock()
	}
	return nil
}

// SetLimit implements Store.
func (s *MemoryStore) SetLimit(limit int64) {
	s.limit.Store(limit)
	if s.used.Load() > limit {
		s.evict(0) // no time: nothing counts as expired
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
		GetExpired: s.getExpired.Load(),
	}
}

// ClassStats implements Store: the items per memcached slab class, and
// what happened to them.
func (s *MemoryStore) ClassStats() []ClassStats {
	var sum [mcClasses + 1]classCounters
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		if sh.cls != nil {
			for c := range sh.cls {
				sh.cls[c].addTo(&sum[c])
			}
		}
		sh.mu.Unlock()
	}
	return classStats(&sum)
}

// ResetStats implements Store: `stats reset` zeroes the counters of what
// happened (evictions, reclaims, items stored, expired reads), not the
// items held.
func (s *MemoryStore) ResetStats() {
	s.evictions.Store(0)
	s.total.Store(0)
	s.reclaimed.Store(0)
	s.getExpired.Store(0)
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		if sh.cls != nil {
			for c := range sh.cls {
				sh.cls[c].resetEvents()
			}
		}
		sh.mu.Unlock()
	}
}

// Close implements Store.
func (s *MemoryStore) Close() error { return s.Flush() }
