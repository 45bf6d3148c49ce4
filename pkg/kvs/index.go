package kvs

// index is a shard's table from key to block: open addressing with linear
// probing and backward-shift deletion (no tombstones), keyed by the key's
// 64-bit hash, which the store computes once per request to pick the
// shard. A slot holds the hash beside the block, so a lookup reads a slot
// and compares the key only in the block whose full hash matches, and that
// block is the one the request reads next anyway. Go's map would hash the
// key again and read a control word, a slot holding the key string, and
// the key; under load the kernel's network stack evicts all of them
// between two requests, so each is a cache miss.
type index struct {
	slots []slot
	n     int // blocks held
}

// slot is one entry of an index; b is nil if the slot is free.
type slot struct {
	h uint64
	b *block
}

const (
	// indexMinSlots is the size of a new index's table; a power of two.
	indexMinSlots = 16
	// The table doubles when more than indexLoadNum/indexLoadDen of its
	// slots are taken: probes stay short and mostly within a cache line.
	indexLoadNum, indexLoadDen = 3, 4
	// shardBits are the hash's low bits, which pick the shard (there are
	// memShards = 1<<shardBits): equal in one shard, so the table uses
	// the others.
	shardBits = 7
)

// home is the slot where a probe for hash h starts.
func (x *index) home(h uint64) int { return int(h>>shardBits) & (len(x.slots) - 1) }

// get returns the block for key (whose hash is h), nil if there is none.
func (x *index) get(h uint64, key []byte) *block {
	if x.n == 0 {
		return nil
	}
	mask := len(x.slots) - 1
	for i := x.home(h); ; i = (i + 1) & mask {
		s := &x.slots[i]
		if s.b == nil {
			return nil
		}
		if s.h == h && string(s.b.keyBytes()) == string(key) {
			return s.b
		}
	}
}

// set makes b the block of its key (whose hash is h), in place of old, the
// block the key had (nil if none).
func (x *index) set(h uint64, old, b *block) {
	if old == nil && (x.n+1)*indexLoadDen > len(x.slots)*indexLoadNum {
		x.grow()
	}
	mask := len(x.slots) - 1
	for i := x.home(h); ; i = (i + 1) & mask {
		s := &x.slots[i]
		if s.b == nil {
			*s = slot{h: h, b: b}
			x.n++
			return
		}
		if s.b == old {
			s.b = b
			return
		}
	}
}

// del removes b (whose key's hash is h), shifting back the blocks after it
// that probed past its slot, so that no probe meets a hole before its key.
func (x *index) del(h uint64, b *block) {
	if x.n == 0 {
		return
	}
	mask := len(x.slots) - 1
	i := x.home(h)
	for x.slots[i].b != b {
		if x.slots[i].b == nil {
			return // not held
		}
		i = (i + 1) & mask
	}
	for j := (i + 1) & mask; ; j = (j + 1) & mask {
		s := x.slots[j]
		if s.b == nil {
			break
		}
		// s may fill the hole at i unless its home lies cyclically in
		// (i, j]: then a probe for it starts after i.
		if k := x.home(s.h); (j-k)&mask >= (j-i)&mask {
			x.slots[i] = s
			i = j
		}
	}
	x.slots[i] = slot{}
	x.n--
}

// grow doubles the table.
func (x *index) grow() {
	old := x.slots
	x.slots = make([]slot, max(2*len(old), indexMinSlots))
	mask := len(x.slots) - 1
	for _, s := range old {
		if s.b == nil {
			continue
		}
		i := x.home(s.h)
		for x.slots[i].b != nil {
			i = (i + 1) & mask
		}
		x.slots[i] = s
	}
}

// each calls fn for every block held.
func (x *index) each(fn func(*block)) {
	for _, s := range x.slots {
		if s.b != nil {
			fn(s.b)
		}
	}
}
