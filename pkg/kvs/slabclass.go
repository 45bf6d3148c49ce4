package kvs

import (
	"encoding/binary"
	"sort"
)

// memcached keeps items in slab classes of growing chunk sizes, and its
// `stats items` and `stats slabs` report per class. lbd has no slabs, but
// reports the same counters in the class memcached would put the item
// in, so that tools reading them work unchanged.

// mcChunkSizes are memcached 1.6's chunk sizes with its defaults (-n 48,
// -f 1.25, 1 MiB pages, -I 1m): class i+1 holds items of up to
// mcChunkSizes[i] bytes (`memcached -vv` prints them).
var mcChunkSizes = [...]int{
	96, 120, 152, 192, 240, 304, 384, 480, 600, 752, 944, 1184, 1480, 1856, 2320,
	2904, 3632, 4544, 5680, 7104, 8880, 11104, 13880, 17352, 21696, 27120, 33904,
	42384, 52984, 66232, 82792, 103496, 129376, 161720, 202152, 252696, 315872,
	394840, 524288,
}

// mcClasses is the number of slab classes; classes are numbered from 1.
const mcClasses = len(mcChunkSizes)

// mcPageSize is memcached's slab page (-o slab_page_size, 1 MiB).
const mcPageSize = 1 << 20

// Sizes of memcached's item header and its parts (items.c,
// item_make_header, on 64-bit with CAS on).
const (
	mcItemHeader = 48 // sizeof(item)
	mcCASSize    = 8
	mcFlagsSize  = 4 // the client flags, stored only when not 0
)

// mcClass returns memcached's slab class (1-based) for an item with a key
// of nkey bytes, a value of nvalue bytes and flags. An item too large for
// one chunk is chained from chunks of the largest class, where memcached
// counts it.
func mcClass(nkey, nvalue int, flags uint32) int {
	total := mcItemHeader + nkey + 1 + mcCASSize + nvalue + 2 // the value with its "\r\n"
	if flags != 0 {
		total += mcFlagsSize
	}
	return min(sort.SearchInts(mcChunkSizes[:], total)+1, mcClasses)
}

// blockClass is mcClass for a block.
func blockClass(b *block) int {
	return mcClass(b.klen(), b.vlen(), binary.LittleEndian.Uint32(b[bFlags:]))
}

// classCounters are one slab class's counters, memcached's names.
type classCounters struct {
	number           int64 // items held
	requested        int64 // their bytes as lbd accounts them
	evicted          uint64
	evictedNonzero   uint64 // evicted with an expiry time set
	evictedUnfetched uint64 // evicted without ever being read
	outOfMemory      uint64
	reclaimed        uint64 // expired items removed, their memory reused
	expiredUnfetched uint64 // reclaimed without ever being read
}

// add sums c into into.
func (c *classCounters) addTo(into *classCounters) {
	into.number += c.number
	into.requested += c.requested
	into.evicted += c.evicted
	into.evictedNonzero += c.evictedNonzero
	into.evictedUnfetched += c.evictedUnfetched
	into.outOfMemory += c.outOfMemory
	into.reclaimed += c.reclaimed
	into.expiredUnfetched += c.expiredUnfetched
}

// resetEvents zeroes what `stats reset` zeroes: everything but the items
// held.
func (c *classCounters) resetEvents() {
	*c = classCounters{number: c.number, requested: c.requested}
}

// ClassStats is one slab class's counters as `stats items` and `stats
// slabs` report them.
type ClassStats struct {
	// Class is memcached's class number (1-based).
	Class int
	// ChunkSize is the class's chunk size in memcached.
	ChunkSize int
	// Items and Bytes are the items held in the class and their bytes.
	Items, Bytes int64
	// Evicted, EvictedNonzero and EvictedUnfetched count evictions: all,
	// of items with an expiry time, of items never read.
	Evicted, EvictedNonzero, EvictedUnfetched uint64
	// OutOfMemory counts stores refused for want of memory.
	OutOfMemory uint64
	// Reclaimed counts expired items removed; ExpiredUnfetched those of
	// them never read.
	Reclaimed, ExpiredUnfetched uint64
}

// classStats lists the classes of cs with anything to report.
func classStats(cs *[mcClasses + 1]classCounters) []ClassStats {
	var out []ClassStats
	for i := 1; i <= mcClasses; i++ {
		c := cs[i]
		if c == (classCounters{}) {
			continue
		}
		out = append(out, ClassStats{
			Class: i, ChunkSize: mcChunkSizes[i-1], Items: c.number, Bytes: c.requested,
			Evicted: c.evicted, EvictedNonzero: c.evictedNonzero, EvictedUnfetched: c.evictedUnfetched,
			OutOfMemory: c.outOfMemory, Reclaimed: c.reclaimed, ExpiredUnfetched: c.expiredUnfetched,
		})
	}
	return out
}
