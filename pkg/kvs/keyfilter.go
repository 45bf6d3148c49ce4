package kvs

import (
	"hash/maphash"
	"math/bits"
	"sync/atomic"
)

// keyFilter is a Bloom filter of the keys a DurableStore holds on disk: it
// answers "certainly absent" without reading Pebble, which spares a set of
// a new key, or a get of a missing one, the engine's search through its
// levels. It never forgets a key (a deleted key only costs a read) and has
// no false negatives.
//
// It starts small and grows with the keys, as a scalable Bloom filter: when
// its newest layer reaches its design load, a layer four times larger is
// added (or what remains of the maximum size, if that is no less than the
// newest layer), and a key is
// absent when every layer says so. Nothing is allocated up front in
// proportion to the store's memory limit. Once the maximum is reached, the
// last layer takes every new key and its false positives, and so the reads
// it lets through, grow gradually.
//
// A keyFilter is immutable but for its layers' bits: growing makes a new
// one sharing the old layers.
type keyFilter struct {
	layers []*filterLayer
	max    int64 // bytes all layers may take
}

// filterLayer is a blocked Bloom filter: each key sets one bit in each of
// the 8 words of one 64-byte block (a cache line), so a lookup in a layer
// costs one cache miss.
type filterLayer struct {
	seed   maphash.Seed
	blocks []filterBlock
	keys   atomic.Int64 // adds that set a bit: keys, give or take collisions
}

type filterBlock [8]atomic.Uint64

// filterKeysPerBlock is a layer's design load: about 10 bits a key.
const filterKeysPerBlock = 512 / 10

// filterStartSize is the size of a new filter, in bytes, unless its
// maximum is smaller.
const filterStartSize = 64 << 10

// newKeyFilter returns an empty filter that may grow to max bytes.
func newKeyFilter(max int64) *keyFilter {
	f := &keyFilter{max: max}
	f.layers = []*filterLayer{newFilterLayer(min(filterStartSize, max))}
	return f
}

// newFilterLayer returns a layer of about size bytes (a power of two
// blocks, rounded down, at least one).
func newFilterLayer(size int64) *filterLayer {
	n := uint64(max(size/64, 1))
	n = 1 << (63 - bits.LeadingZeros64(n))
	return &filterLayer{seed: maphash.MakeSeed(), blocks: make([]filterBlock, n)}
}

// probe returns key's block and the bit it takes in each word.
func (l *filterLayer) probe(key []byte) (*filterBlock, [8]uint64) {
	h := maphash.Bytes(l.seed, key)
	b := &l.blocks[h&uint64(len(l.blocks)-1)]
	var masks [8]uint64
	x := h
	for i := range masks {
		x *= 0x9e3779b97f4a7c15 // Fibonacci hashing: fresh high bits
		masks[i] = 1 << (x >> 58)
	}
	return b, masks
}

func (l *filterLayer) mayContain(key []byte) bool {
	b, masks := l.probe(key)
	for i, m := range masks {
		if b[i].Load()&m == 0 {
			return false
		}
	}
	return true
}

// add records key in the newest layer.
func (f *keyFilter) add(key []byte) {
	l := f.layers[len(f.layers)-1]
	b, masks := l.probe(key)
	set := false
	for i, m := range masks {
		if b[i].Load()&m == 0 {
			b[i].Or(m)
			set = true
		}
	}
	if set {
		l.keys.Add(1)
	}
}

// mayContain reports whether key may have been added; false is certain.
func (f *keyFilter) mayContain(key []byte) bool {
	for i := len(f.layers) - 1; i >= 0; i-- {
		if f.layers[i].mayContain(key) {
			return true
		}
	}
	return false
}

// size is the filter's memory in bytes.
func (f *keyFilter) size() int64 {
	var n int64
	for _, l := range f.layers {
		n += int64(len(l.blocks)) * 64
	}
	return n
}

// nextLayer is the size of the layer to add, 0 when the newest is not at
// its design load yet or the maximum allows none.
func (f *keyFilter) nextLayer() int64 {
	l := f.layers[len(f.layers)-1]
	if l.keys.Load() <= int64(len(l.blocks))*filterKeysPerBlock {
		return 0
	}
	cur := int64(len(l.blocks)) * 64
	next := min(4*cur, f.max-f.size())
	if next < cur {
		return 0 // not worth a lookup more: the newest layer takes the rest
	}
	return 1 << (63 - bits.LeadingZeros64(uint64(next))) // a power of two, rounded down
}

// full reports whether the filter should grow.
func (f *keyFilter) full() bool { return f.nextLayer() > 0 }

// grown returns f with one more layer (f itself when it may not grow).
// No key may be added to f meanwhile.
func (f *keyFilter) grown() *keyFilter {
	size := f.nextLayer()
	if size == 0 {
		return f
	}
	layers := append(f.layers[:len(f.layers):len(f.layers)], newFilterLayer(size))
	return &keyFilter{layers: layers, max: f.max}
}
