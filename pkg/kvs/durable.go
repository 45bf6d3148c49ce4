package kvs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/bloom"
)

// DurableOptions configure a DurableStore.
type DurableOptions struct {
	// Dir is the Pebble data directory; created if missing.
	Dir string
	// MemoryLimit bounds Pebble's block cache and memtables.
	MemoryLimit int64
	// Sync is the WAL sync policy.
	Sync SyncMode
	// SyncInterval is the group-commit period for SyncGroup.
	SyncInterval time.Duration
}

// durableLocks is the number of key lock stripes; read-modify-write
// commands (cas, incr, append...) hold one for their read and write.
const durableLocks = 1024

// sweepInterval is how often expired items are removed from disk.
const sweepInterval = time.Minute

// Keys are stored under a one-byte prefix, leaving room for metadata.
const itemPrefix = 'i'

// itemsFrom and itemsTo bound the keys of items (read only: Pebble may
// keep them).
var itemsFrom, itemsTo = []byte{itemPrefix}, []byte{itemPrefix + 1}

// Record layout: version, flags, exptime, cas, meta, then the value.
const (
	recVersion    = 1
	recHeaderSize = 1 + 4 + 8 + 8 + 1
)

// DurableStore is a Store on Pebble (the CockroachDB storage engine):
// every item is a Pebble key whose value carries flags, expiry and CAS.
// Expiry is stored as absolute time, so it survives restarts; expired items
// are hidden at once and removed by a sweeper.
//
// Recently used items are also kept in an in-memory LRU (a MemoryStore)
// that is written through under the key's lock, so it is never stale: reads
// that hit it do not touch Pebble, as okuyama kept hot data in memory over
// its transaction log.
type DurableStore struct {
	db        *pebble.DB
	hot       *MemoryStore
	filter    atomic.Pointer[keyFilter] // every key on disk, and some others
	filterMax int64                     // the filter's largest size
	cache     *pebble.Cache
	wo        *pebble.WriteOptions
	log       *slog.Logger
	seed      maphash.Seed
	locks     [durableLocks]sync.Mutex
	flushMu   sync.RWMutex // Flush excludes every mutation
	cas       atomic.Uint64
	items     atomic.Int64
	bytes     atomic.Int64
	limit     atomic.Int64
	total     atomic.Uint64
	reclaimed atomic.Uint64
	// getExpired counts gets that found their key past its expiry.
	getExpired atomic.Uint64
	dirty      atomic.Bool   // writes not synced yet (SyncGroup)
	dirtyAt    atomic.Int64  // when the first of them was written (unix ns)
	kick       chan struct{} // the first of them wakes groupCommit
	reads      atomic.Uint64 // Pebble lookups, for tests
	// whole says that the hot set holds every live item: it did after
	// load or flush, and it has evicted nothing since (its eviction count
	// is still wholeAt). A miss there is then a miss, and reads of absent
	// keys do not go to Pebble.
	whole     atomic.Bool
	wholeAt   atomic.Uint64
	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	// cls counts the items on disk per memcached slab class.
	clsMu sync.Mutex
	cls   [mcClasses + 1]classCounters
}

// account moves an item of key between slab classes: old (if found) goes,
// next (if stored) comes; reclaimed says old was expired.
func (s *DurableStore) account(key []byte, old Item, found, reclaimed bool, next Item, stored bool) {
	s.clsMu.Lock()
	defer s.clsMu.Unlock()
	if found {
		c := &s.cls[mcClass(len(key), len(old.Value), old.Flags)]
		c.number--
		c.requested -= itemSize(key, old.Value)
		if reclaimed {
			c.reclaimed++
			if old.Meta&MetaFetched == 0 {
				c.expiredUnfetched++
			}
		}
	}
	if stored {
		c := &s.cls[mcClass(len(key), len(next.Value), next.Flags)]
		c.number++
		c.requested += itemSize(key, next.Value)
	}
}

// pebbleLogger routes Pebble's log lines to slog.
type pebbleLogger struct{ log *slog.Logger }

// Infof logs at debug level: Pebble is chatty.
func (l pebbleLogger) Infof(format string, args ...any) {
	l.log.Debug(fmt.Sprintf(format, args...), "component", "pebble")
}

// Fatalf logs and panics, as Pebble expects.
func (l pebbleLogger) Fatalf(format string, args ...any) {
	// Pebble calls Fatalf on unrecoverable corruption; it expects the
	// process to stop.
	msg := fmt.Sprintf(format, args...)
	l.log.Error(msg, "component", "pebble")
	panic("kvs: pebble fatal: " + msg)
}

// OpenDurable opens (or creates) a durable store in opts.Dir.
func OpenDurable(log *slog.Logger, opts DurableOptions) (*DurableStore, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.Dir == "" {
		return nil, errors.New("kvs: open durable store: no dir")
	}
	if opts.MemoryLimit <= 0 {
		opts.MemoryLimit = DefaultMemoryLimit
	}
	if err := checkMemoryLimit(opts.MemoryLimit); err != nil {
		return nil, fmt.Errorf("kvs: open durable store %s: %w", opts.Dir, err)
	}
	if opts.SyncInterval <= 0 {
		opts.SyncInterval = DefaultSyncInterval
	}
	// Nine sixteenths of the budget hold hot items (decoded, ready to
	// send), a sixteenth the key filter, an eighth caches Pebble blocks and
	// the rest holds memtables (Pebble keeps up to two before it stalls
	// writes).
	memtable := clamp(opts.MemoryLimit/8, 1<<20, 64<<20)
	cache := pebble.NewCache(clamp(opts.MemoryLimit/8, 1<<20, 1<<40))
	po := &pebble.Options{
		Cache:        cache,
		MemTableSize: uint64(memtable),
		Logger:       pebbleLogger{log},
	}
	// Bloom filters spare gets of absent keys a read of every level.
	po.Levels = make([]pebble.LevelOptions, 7)
	for i := range po.Levels {
		po.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	db, err := pebble.Open(opts.Dir, po)
	if err != nil {
		cache.Unref()
		return nil, fmt.Errorf("kvs: open durable store %s: %w", opts.Dir, err)
	}
	s := &DurableStore{db: db, hot: NewMemoryStore(hotShare(opts.MemoryLimit)), filterMax: opts.MemoryLimit / 16, cache: cache, log: log, seed: maphash.MakeSeed(), stop: make(chan struct{})}
	s.filter.Store(newKeyFilter(s.filterMax))
	s.limit.Store(opts.MemoryLimit)
	s.wo = pebble.Sync
	if opts.Sync == SyncGroup {
		s.wo = pebble.NoSync
	}
	if err := s.load(time.Now().Unix()); err != nil {
		s.db.Close()
		cache.Unref()
		return nil, fmt.Errorf("kvs: open durable store %s: %w", opts.Dir, err)
	}
	if opts.Sync == SyncGroup {
		s.kick = make(chan struct{}, 1)
		s.wg.Add(1)
		go s.groupCommit(opts.SyncInterval)
	}
	s.wg.Add(1)
	go s.sweepLoop()
	return s, nil
}

func clamp(v, lo, hi int64) int64 { return max(lo, min(v, hi)) }

// hotShare is the part of a store's memory limit that holds hot items.
func hotShare(limit int64) int64 { return limit / 16 * 9 }

func itemKey(key []byte) []byte {
	k := make([]byte, 1+len(key))
	k[0] = itemPrefix
	copy(k[1:], key)
	return k
}

func encodeItem(it Item) []byte {
	b := make([]byte, recHeaderSize+len(it.Value))
	b[0] = recVersion
	binary.LittleEndian.PutUint32(b[1:], it.Flags)
	binary.LittleEndian.PutUint64(b[5:], uint64(it.Exptime))
	binary.LittleEndian.PutUint64(b[13:], it.CAS)
	b[21] = it.Meta
	copy(b[recHeaderSize:], it.Value)
	return b
}

// decodeItem decodes a record; the value is copied out of b.
func decodeItem(b []byte) (Item, error) {
	if len(b) < recHeaderSize || b[0] != recVersion {
		return Item{}, fmt.Errorf("bad record (%d bytes)", len(b))
	}
	return Item{
		Flags:   binary.LittleEndian.Uint32(b[1:]),
		Exptime: int64(binary.LittleEndian.Uint64(b[5:])),
		CAS:     binary.LittleEndian.Uint64(b[13:]),
		Meta:    b[21],
		Value:   append([]byte(nil), b[recHeaderSize:]...),
	}, nil
}

// load counts items and finds the highest CAS, dropping expired items;
// it fills the hot set with live items while they fit.
func (s *DurableStore) load(now int64) error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: itemsFrom, UpperBound: itemsTo})
	if err != nil {
		return fmt.Errorf("scan: %w", err)
	}
	defer it.Close()
	b := s.db.NewBatch()
	var maxCAS uint64
	whole := true // every live item fit in the hot set so far
	for it.First(); it.Valid(); it.Next() {
		rec, err := decodeItem(it.Value())
		if err != nil {
			return fmt.Errorf("scan key %q: %w", it.Key()[1:], err)
		}
		maxCAS = max(maxCAS, rec.CAS)
		if rec.expired(now) {
			b.Delete(it.Key(), nil)
			continue
		}
		s.items.Add(1)
		s.account(it.Key()[1:], Item{}, false, false, rec, true)
		s.filter.Load().add(it.Key()[1:])
		s.growFilter()
		size := itemSize(it.Key()[1:], rec.Value)
		s.bytes.Add(size)
		if whole && s.hot.used.Load()+size <= s.hot.limit.Load() {
			s.cacheItem(it.Key()[1:], rec, now)
		} else {
			whole = false
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("scan: %w", err)
	}
	s.cas.Store(maxCAS)
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("drop expired: %w", err)
	}
	if whole {
		s.markWhole()
	}
	return nil
}

// markWhole records that the hot set holds every live item.
func (s *DurableStore) markWhole() {
	s.wholeAt.Store(s.hot.evictions.Load())
	s.whole.Store(true)
}

// isWhole reports whether the hot set still holds every live item.
func (s *DurableStore) isWhole() bool {
	return s.whole.Load() && s.hot.evictions.Load() == s.wholeAt.Load()
}

func (s *DurableStore) lock(key []byte) *sync.Mutex {
	return &s.locks[maphash.Bytes(s.seed, key)%durableLocks]
}

// read returns the record for key, live or not.
func (s *DurableStore) read(k []byte) (Item, bool, error) {
	s.reads.Add(1)
	v, closer, err := s.db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return Item{}, false, nil
	}
	if err != nil {
		return Item{}, false, fmt.Errorf("kvs: get %q: %w", k[1:], err)
	}
	defer closer.Close()
	it, err := decodeItem(v)
	if err != nil {
		return Item{}, false, fmt.Errorf("kvs: get %q: %w", k[1:], err)
	}
	return it, true, nil
}

// hotGet looks key up in the hot set. done is true when that settles the
// get: a hit, or an item there past its expiry (the copy on disk has the
// same expiry).
func (s *DurableStore) hotGet(key []byte, now int64) (it Item, ok, done bool) {
	it, ok, expired := s.hot.find(key, now)
	if expired {
		s.getExpired.Add(1)
	}
	return it, ok, ok || expired
}

// prefetchSlot starts loading what a lookup of key in the hot set reads
// first (see MemoryStore.prefetchSlot).
func (s *DurableStore) prefetchSlot(key []byte) lookahead { return s.hot.prefetchSlot(key) }

// Get implements Store. Reads do not write to Pebble, so the fetched bit
// and access time of items not in memory are not recorded.
func (s *DurableStore) Get(key []byte, now int64) (Item, bool) {
	if it, ok, done := s.hotGet(key, now); done {
		return it, ok
	}
	if s.isWhole() || !s.filter.Load().mayContain(key) {
		return Item{}, false
	}
	// Load under the key's lock, so that a concurrent write cannot be
	// overtaken by the older value read here.
	s.flushMu.RLock()
	defer s.flushMu.RUnlock()
	mu := s.lock(key)
	mu.Lock()
	defer mu.Unlock()
	if it, ok, done := s.hotGet(key, now); done {
		return it, ok
	}
	it, ok, err := s.read(itemKey(key))
	if err != nil {
		s.log.Error("kvs: durable get", "err", err)
		return Item{}, false
	}
	if !ok {
		return Item{}, false
	}
	if it.expired(now) {
		s.getExpired.Add(1)
		return Item{}, false
	}
	s.cacheItem(key, it, now)
	return it, true
}

// cacheItem puts it into the hot set as it is; the caller holds the key's
// lock.
func (s *DurableStore) cacheItem(key []byte, it Item, now int64) {
	it.Atime = now // the hot set's LRU order
	s.hot.Mutate(key, now, func(Item, bool) (Item, Op) { return it, OpTouch })
}

// Mutate implements Store. The write is acknowledged (returns) only after
// Pebble has committed it under the store's sync policy.
func (s *DurableStore) Mutate(key []byte, now int64, fn MutateFunc) (Item, error) {
	it, err := s.mutate(key, now, fn)
	s.growFilter()
	return it, err
}

// growFilter doubles the key filter when it is past its design load,
// excluding every write meanwhile (a write then adds to the new one).
func (s *DurableStore) growFilter() {
	if !s.filter.Load().full() {
		return
	}
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	if f := s.filter.Load(); f.full() {
		s.filter.Store(f.grown())
	}
}

func (s *DurableStore) mutate(key []byte, now int64, fn MutateFunc) (Item, error) {
	s.flushMu.RLock()
	defer s.flushMu.RUnlock()
	mu := s.lock(key)
	mu.Lock()
	defer mu.Unlock()
	k := itemKey(key)
	// The hot set is authoritative for what it holds: every write goes
	// through here under the key's lock.
	cur, found := s.hot.Get(key, now)
	if !found && s.filter.Load().mayContain(key) {
		var err error
		if cur, found, err = s.read(k); err != nil {
			return Item{}, err
		}
	}
	live := found && !cur.expired(now)
	var oldSize int64
	if found {
		oldSize = itemSize(key, cur.Value)
	}
	arg := cur
	if !live {
		arg = Item{}
	}
	next, op := fn(arg, live)
	switch op {
	case OpKeep:
		return arg, nil
	case OpDelete:
		if !found {
			return Item{}, nil
		}
		s.hot.Mutate(key, now, deleteFn)
		if err := s.db.Delete(k, s.wo); err != nil {
			return Item{}, fmt.Errorf("kvs: delete %q: %w", key, err)
		}
		s.markDirty()
		s.items.Add(-1)
		s.bytes.Add(-oldSize)
		if !live {
			s.reclaimed.Add(1)
		}
		s.account(key, cur, true, !live, Item{}, false)
		return Item{}, nil
	case OpStore:
		next.CAS = s.cas.Add(1)
		next.Atime = now
		s.total.Add(1)
	}
	s.filter.Load().add(key)
	if err := s.db.Set(k, encodeItem(next), s.wo); err != nil {
		// The old value may or may not be on disk now: forget it, and
		// read Pebble on misses from now on.
		s.whole.Store(false)
		s.hot.Mutate(key, now, deleteFn)
		return Item{}, fmt.Errorf("kvs: set %q: %w", key, err)
	}
	s.markDirty()
	s.cacheItem(key, next, now)
	if !found {
		s.items.Add(1)
	} else if !live {
		s.reclaimed.Add(1)
	}
	s.bytes.Add(itemSize(key, next.Value) - oldSize)
	s.account(key, cur, found, found && !live, next, true)
	return next, nil
}

// markDirty records an unsynced write; the first since the last sync
// starts the group commit's interval.
func (s *DurableStore) markDirty() {
	if s.wo == pebble.NoSync && !s.dirty.Load() && !s.dirty.Swap(true) {
		s.dirtyAt.Store(time.Now().UnixNano())
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

// Flush implements Store: one range deletion, synced.
func (s *DurableStore) Flush() error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	if err := s.db.DeleteRange(itemsFrom, itemsTo, pebble.Sync); err != nil {
		return fmt.Errorf("kvs: flush: %w", err)
	}
	s.hot.Flush()
	s.filter.Store(newKeyFilter(s.filterMax))
	s.items.Store(0)
	s.bytes.Store(0)
	s.clsMu.Lock()
	for i := range s.cls {
		s.cls[i].number, s.cls[i].requested = 0, 0
	}
	s.clsMu.Unlock()
	s.markWhole()
	return nil
}

// SetLimit implements Store. The hot set follows at once; Pebble's caches
// are sized when it opens, so they follow when the tenant restarts.
func (s *DurableStore) SetLimit(limit int64) {
	s.limit.Store(limit)
	s.hot.SetLimit(hotShare(limit))
}

// Stats implements Store.
func (s *DurableStore) Stats() StoreStats {
	return StoreStats{
		Items:      s.items.Load(),
		Bytes:      s.bytes.Load(),
		LimitBytes: s.limit.Load(),
		TotalItems: s.total.Load(),
		Reclaimed:  s.reclaimed.Load(),
		GetExpired: s.getExpired.Load(),
	}
}

// ClassStats implements Store: the items on disk per memcached slab class
// (a durable store does not evict).
func (s *DurableStore) ClassStats() []ClassStats {
	s.clsMu.Lock()
	defer s.clsMu.Unlock()
	return classStats(&s.cls)
}

// ResetStats implements Store. The hot set's counters are its own (its
// evictions tell whether it holds every item).
func (s *DurableStore) ResetStats() {
	s.total.Store(0)
	s.reclaimed.Store(0)
	s.getExpired.Store(0)
	s.clsMu.Lock()
	for i := range s.cls {
		s.cls[i].resetEvents()
	}
	s.clsMu.Unlock()
}

// sweepLoop removes expired items from disk every sweepInterval until the
// store closes; the caller has added it to s.wg.
func (s *DurableStore) sweepLoop() {
	defer s.wg.Done()
	t := time.NewTicker(sweepInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			if err := s.sweep(time.Now().Unix()); err != nil {
				s.log.Error("kvs: sweep expired", "err", err)
			}
		}
	}
}

// groupCommit is the group commit: writes are acknowledged unsynced, and
// the log is synced one interval after the first unsynced write (at once
// if a sync in progress outlasted that), so a write acknowledged at t is
// on disk by t + interval + the duration of one sync (of two, when syncs
// take longer than the interval). A crash, kill -9 as much as a power
// loss, loses at most the writes acknowledged within that window. A store
// without writes is not woken at all. The caller has added it to s.wg.
func (s *DurableStore) groupCommit(interval time.Duration) {
	defer s.wg.Done()
	t := time.NewTimer(interval)
	t.Stop()
	for {
		select {
		case <-s.stop:
			return // Close syncs
		case <-s.kick:
		}
		// Timed from the write, not from now: a sync that ran long
		// does not push the next one a whole interval further.
		if wait := interval - time.Since(time.Unix(0, s.dirtyAt.Load())); wait > 0 {
			t.Reset(wait)
			select {
			case <-s.stop:
				t.Stop()
				return
			case <-t.C:
			}
		}
		// Writes after the swap kick the next round.
		if s.dirty.Swap(false) {
			if err := s.db.LogData(nil, pebble.Sync); err != nil {
				s.log.Error("kvs: group commit sync", "err", err)
			}
		}
	}
}

func (s *DurableStore) sweep(now int64) error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: itemsFrom, UpperBound: itemsTo})
	if err != nil {
		return err
	}
	var expired [][]byte
	for it.First(); it.Valid() && len(expired) < 10000; it.Next() {
		v := it.Value()
		if len(v) >= recHeaderSize {
			exp := int64(binary.LittleEndian.Uint64(v[5:]))
			if exp != 0 && exp <= now {
				expired = append(expired, append([]byte(nil), it.Key()[1:]...))
			}
		}
	}
	if err := it.Close(); err != nil {
		return err
	}
	for _, k := range expired {
		select {
		case <-s.stop:
			return nil
		default:
		}
		// Re-checked under the key lock: it may have been rewritten.
		if _, err := s.Mutate(k, now, func(cur Item, live bool) (Item, Op) {
			if live {
				return cur, OpKeep
			}
			return cur, OpDelete
		}); err != nil {
			return err
		}
	}
	return nil
}

// Close implements Store: it syncs and closes the database.
func (s *DurableStore) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.stop)
		s.wg.Wait()
		if e := s.db.LogData(nil, pebble.Sync); e != nil {
			err = fmt.Errorf("kvs: close durable store: sync: %w", e)
		}
		if e := s.db.Close(); e != nil {
			err = errors.Join(err, fmt.Errorf("kvs: close durable store: %w", e))
		}
		s.cache.Unref()
	})
	return err
}
