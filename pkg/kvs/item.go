package kvs

// Item is one stored value. Values are immutable once handed to a Store:
// every change builds a new Item, so readers can use Value without locks.
type Item struct {
	// Value is the data block, without the trailing "\r\n".
	Value []byte
	// Flags are the opaque client flags.
	Flags uint32
	// Exptime is the absolute expiry in unix seconds; 0 means never.
	Exptime int64
	// CAS is the unique value assigned on every modification.
	CAS uint64
	// Atime is the unix second of the last access (for meta "l").
	Atime int64
	// Meta holds the meta-protocol bits (fetched, token sent, stale).
	Meta uint8
}

// Meta bits of an Item.
const (
	// MetaFetched marks an item that has been read since it was stored.
	MetaFetched uint8 = 1 << iota
	// MetaTokenSent marks an item for which a recache win token was sent.
	MetaTokenSent
	// MetaStale marks an item invalidated by "md ... I".
	MetaStale
	// MetaKeyBinary marks an item stored with a base64 ("b") key; meta
	// replies show its key in base64.
	MetaKeyBinary
)

// expired reports whether it is past its expiry at unix second now.
func (it *Item) expired(now int64) bool {
	return it.Exptime != 0 && it.Exptime <= now
}

// Op says what a MutateFunc wants done with the key.
type Op uint8

const (
	// OpKeep leaves the key as it was.
	OpKeep Op = iota
	// OpStore stores the returned item with a fresh CAS value.
	OpStore
	// OpTouch stores the returned item keeping its CAS value (expiry or
	// meta bits changed, data did not).
	OpTouch
	// OpDelete removes the key.
	OpDelete
)

// MutateFunc decides, under the key's lock, what becomes of a key. cur is
// the live item (found is false if absent or expired).
type MutateFunc func(cur Item, found bool) (next Item, op Op)

// Store is the storage behind one tenant. Implementations are safe for
// concurrent use.
type Store interface {
	// Get returns the live item for key, as it was before this access,
	// and records the access (LRU position, fetched bit).
	Get(key []byte, now int64) (Item, bool)
	// Mutate runs fn under the key's lock and applies its decision. It
	// returns the item as stored (with its CAS) or cur for OpKeep.
	Mutate(key []byte, now int64, fn MutateFunc) (Item, error)
	// Flush removes every item.
	Flush() error
	// SetLimit changes the memory limit in bytes, evicting if needed.
	SetLimit(limit int64)
	// Stats returns the store's counters.
	Stats() StoreStats
	// ClassStats returns the counters per memcached slab class (`stats
	// items`, `stats slabs`).
	ClassStats() []ClassStats
	// ResetStats zeroes the counters of events (`stats reset`), not the
	// items held.
	ResetStats()
	// Close releases the store. Data of a durable store stays on disk.
	Close() error
}

// StoreStats are the counters a Store keeps.
type StoreStats struct {
	// Items is the number of items held (expired ones may linger until
	// touched).
	Items int64
	// Bytes is the memory accounted to the items.
	Bytes int64
	// LimitBytes is the configured memory limit.
	LimitBytes int64
	// Evictions counts items removed to respect the memory limit.
	Evictions uint64
	// TotalItems counts items ever stored.
	TotalItems uint64
	// Reclaimed counts expired items removed.
	Reclaimed uint64
	// GetExpired counts reads that found their key past its expiry
	// (memcached's get_expired).
	GetExpired uint64
}

// itemOverhead is the per-item heap cost beyond key and value bytes (block
// header, index slot, ring slot, allocation rounding), measured on Go 1.26
// with 16-byte keys and 64-byte values (TestMemoryStoreCountsRealBytes), so
// that limits count real bytes as memcached's -m does.
const itemOverhead = 80

// itemSize is the number of bytes an item is accounted for.
func itemSize(key []byte, value []byte) int64 {
	return int64(len(key) + len(value) + itemOverhead)
}
