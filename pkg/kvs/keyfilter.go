package kvs

import (
	"hash/maphash"
	"math/bits"
	"sync/atomic"
)

// keyFilter is a blocked Bloom filter of the keys a DurableStore holds on
// disk: it answers "certainly absent" without reading Pebble, which spares
// a set of a new key, or a get of a missing one, the engine's search
// through its levels. It never forgets a key (a deleted key only costs a
// read), has no false negatives, and takes a fixed amount of memory; as
// keys outnumber its design load its false positives, and so the reads it
// lets through, grow gradually.
//
// Each key sets one bit in each of the 8 words of one 64-byte block (a
// cache line), so a lookup costs one cache miss.
type keyFilter struct {
	seed   maphash.Seed
	blocks []filterBlock
}

type filterBlock [8]atomic.Uint64

// newKeyFilter returns a filter of about size bytes (a power of two
// blocks, at least one).
func newKeyFilter(size int64) *keyFilter {
	n := uint64(max(size/64, 1))
	n = 1 << (63 - bits.LeadingZeros64(n)) // round down to a power of two
	return &keyFilter{seed: maphash.MakeSeed(), blocks: make([]filterBlock, n)}
}

// probe returns key's block and the bit it takes in each word.
func (f *keyFilter) probe(key []byte) (*filterBlock, [8]uint64) {
	h := maphash.Bytes(f.seed, key)
	b := &f.blocks[h&uint64(len(f.blocks)-1)]
	var masks [8]uint64
	x := h
	for i := range masks {
		x *= 0x9e3779b97f4a7c15 // Fibonacci hashing: fresh high bits
		masks[i] = 1 << (x >> 58)
	}
	return b, masks
}

// add records key.
func (f *keyFilter) add(key []byte) {
	b, masks := f.probe(key)
	for i, m := range masks {
		if b[i].Load()&m == 0 {
			b[i].Or(m)
		}
	}
}

// mayContain reports whether key may have been added; false is certain.
func (f *keyFilter) mayContain(key []byte) bool {
	b, masks := f.probe(key)
	for i, m := range masks {
		if b[i].Load()&m == 0 {
			return false
		}
	}
	return true
}

// reset forgets every key.
func (f *keyFilter) reset() {
	for i := range f.blocks {
		for j := range f.blocks[i] {
			f.blocks[i][j].Store(0)
		}
	}
}
