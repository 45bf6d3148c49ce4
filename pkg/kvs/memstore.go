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
	_     [48]byte // 128 bytes a shard: no two share a cache line
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
	s.put(sh, h, b, nb, next)
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
	s.put(sh, h, old, nb, Item{Flags: flags, Exptime: exptime, CAS: s.cas.Add(1), Atime: now})
}

// lookup returns the live block for key (whose hash is h), nil if there is
// none; expired tells that key was there past its expiry (it is removed
// now). The caller holds sh.mu.
func (s *MemoryStore) lookup(sh *memShard, h uint64, key []byte, now int64) (b *block, expired bool) {
	b = sh.idx.get(h, key)
	if b != nil && b.expired(now) {
		s.remove(sh, h, b)
		s.reclaimed.Add(1)
		return nil, true
	}
	return b, false
}

// put makes nb, with the header of it, the block of its key (whose hash is
// h) in place of old (nil if the key was absent), unlocks sh and evicts if
// the store went over its limit. The caller holds sh.mu.
func (s *MemoryStore) put(sh *memShard, h uint64, old, nb *block, it Item) {
	nb.setHeader(it)
	size := nb.size()
	grew := true
	if old != nil {
		s.used.Add(size - old.size())
		grew = size > old.size()
		sh.unring(old)
	} else {
		s.used.Add(size)
		s.items.Add(1)
	}
	sh.idx.set(h, old, nb)
	nb.setPos(len(sh.ring))
	sh.ring = append(sh.ring, nb)
	sh.mu.Unlock()
	if grew && s.used.Load() > s.limit.Load() {
		s.evict()
	}
}

// remove drops b, whose key's hash is h, from the shard; the caller holds
// sh.mu.
func (s *MemoryStore) remove(sh *memShard, h uint64, b *block) {
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
// CAS values grow with every write). It holds one shard lock at a time, so it never
// deadlocks with Mutate.
func (s *MemoryStore) evict() {
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
			// Counted before the item goes: whoever misses it under the
			// shard lock then sees the count (DurableStore relies on it).
			s.evictions.Add(1)
			s.remove(best, maphash.Bytes(s.seed, b.keyBytes()), b)
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
		GetExpired: s.getExpired.Load(),
	}
}

// Close implements Store.
func (s *MemoryStore) Close() error { return s.Flush() }
