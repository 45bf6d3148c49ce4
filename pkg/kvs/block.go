package kvs

import (
	"encoding/binary"
	"math"
	"unsafe"
)

// block is the header of a MemoryStore item; the item's key and value
// follow it in the same allocation, as memcached keeps an item's header,
// key and data together. The header holds no pointers, so the garbage
// collector never scans items.
//
// Header layout (little endian): CAS (8 bytes); expiry and access time
// (unix seconds), flags, value length and ring position (4 bytes each); key
// length and meta bits (a byte each). 30 bytes: with a 16-byte key, a
// 64-byte value and its "\r\n", a block fits Go's 112-byte size class.
// Times fit 32 bits until 2106 (memcached keeps 32-bit times too); the
// store only sees expiry times of now + 30 days at most, or a client's
// absolute time, which is a 32-bit number.
type block [blockHeader]byte

const (
	blockHeader = 30

	bCAS     = 0
	bExptime = 8
	bAtime   = 12
	bFlags   = 16
	bVlen    = 20
	bPos     = 24
	bKlen    = 28
	bMeta    = 29
)

// time32 is t (unix seconds) as a header stores it: negative times (long
// past) become 1, times past 2106 the last second a header can hold.
func time32(t int64) uint32 {
	switch {
	case t < 0:
		return 1
	case t > math.MaxUint32:
		return math.MaxUint32
	}
	return uint32(t)
}

// newBlock allocates a block for key and a value of vlen bytes, with
// extra bytes of room after the value (a reader can then read the value's
// "\r\n" into it). It returns the block and the room for the value and
// the extra bytes.
func newBlock(key []byte, vlen, extra int) (*block, []byte) {
	buf := make([]byte, blockHeader+len(key)+vlen+extra)
	copy(buf[blockHeader:], key)
	b := (*block)(buf)
	b[bKlen] = uint8(len(key)) // keys are at most 250 bytes
	binary.LittleEndian.PutUint32(b[bVlen:], uint32(vlen))
	return b, buf[blockHeader+len(key):]
}

// bytes is the whole block: header, key and value.
func (b *block) bytes() []byte {
	return unsafe.Slice(&b[0], blockHeader+b.klen()+b.vlen())
}

func (b *block) klen() int { return int(b[bKlen]) }
func (b *block) vlen() int { return int(binary.LittleEndian.Uint32(b[bVlen:])) }

// keyBytes is the key, in the block.
func (b *block) keyBytes() []byte {
	return b.bytes()[blockHeader : blockHeader+b.klen() : blockHeader+b.klen()]
}

// value is the value, in the block; it never changes.
func (b *block) value() []byte {
	return b.bytes()[blockHeader+b.klen():]
}

// size is what the item is accounted for.
func (b *block) size() int64 { return int64(b.klen() + b.vlen() + itemOverhead) }

func (b *block) expired(now int64) bool {
	exp := b.exptime()
	return exp != 0 && exp <= now
}

// item returns the item the block holds; its Value is the block's.
func (b *block) item() Item {
	return Item{
		Value:   b.value(),
		Flags:   binary.LittleEndian.Uint32(b[bFlags:]),
		Exptime: b.exptime(),
		CAS:     binary.LittleEndian.Uint64(b[bCAS:]),
		Atime:   b.atime(),
		Meta:    b[bMeta],
	}
}

// setHeader sets every header field of it but the value.
func (b *block) setHeader(it Item) {
	binary.LittleEndian.PutUint64(b[bCAS:], it.CAS)
	binary.LittleEndian.PutUint32(b[bExptime:], time32(it.Exptime))
	binary.LittleEndian.PutUint32(b[bFlags:], it.Flags)
	b.setAtime(it.Atime)
	b.setMeta(it.Meta)
}

func (b *block) cas() uint64      { return binary.LittleEndian.Uint64(b[bCAS:]) }
func (b *block) exptime() int64   { return int64(binary.LittleEndian.Uint32(b[bExptime:])) }
func (b *block) atime() int64     { return int64(binary.LittleEndian.Uint32(b[bAtime:])) }
func (b *block) setAtime(t int64) { binary.LittleEndian.PutUint32(b[bAtime:], time32(t)) }
func (b *block) setMeta(m uint8)  { b[bMeta] = m }
func (b *block) pos() int         { return int(binary.LittleEndian.Uint32(b[bPos:])) }
func (b *block) setPos(p int)     { binary.LittleEndian.PutUint32(b[bPos:], uint32(p)) }

// sameBytes reports whether a and b are the same bytes in memory.
func sameBytes(a, b []byte) bool {
	return len(a) == len(b) && unsafe.SliceData(a) == unsafe.SliceData(b)
}
