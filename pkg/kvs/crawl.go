package kvs

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/cockroachdb/pebble"
)

// KeyInfo describes one live key for a listing (memcached's lru_crawler
// metadump line).
type KeyInfo struct {
	Key   []byte
	Size  int // value bytes
	Flags uint32
	// Exptime is the absolute expiry in unix seconds; 0 means never.
	Exptime int64
}

// Crawler lists a store's keys a bounded slice at a time, like memcached's
// "lru_crawler metadump": each call looks at no more than budget entries
// (holding a lock only over small runs of them), so a listing never
// stalls the store, however many keys it holds. The listing is not a
// snapshot: keys written or removed meanwhile may or may not show, and a
// table that grows meanwhile may show a key twice.
type Crawler interface {
	// Crawl returns up to limit live keys starting with prefix from
	// cursor ("" for the start) on, and the cursor to go on from; next is
	// "" when the store has been crawled through.
	Crawl(cursor string, prefix []byte, limit, budget int, now int64) (keys []KeyInfo, next string, err error)
}

// ErrBadCursor: a crawl cursor that this store did not hand out.
var ErrBadCursor = errors.New("kvs: bad crawl cursor")

// crawlRun is the most index slots looked at under one lock hold.
const crawlRun = 256

// Crawl implements Crawler: shard by shard, through each shard's index
// slots. The cursor is "m.SHARD.SLOT".
func (s *MemoryStore) Crawl(cursor string, prefix []byte, limit, budget int, now int64) ([]KeyInfo, string, error) {
	shard, slot := 0, 0
	if cursor != "" {
		parts := strings.Split(cursor, ".")
		var e1, e2 error
		if len(parts) == 3 && parts[0] == "m" {
			shard, e1 = strconv.Atoi(parts[1])
			slot, e2 = strconv.Atoi(parts[2])
		}
		if len(parts) != 3 || parts[0] != "m" || e1 != nil || e2 != nil || shard < 0 || shard >= memShards || slot < 0 {
			return nil, "", fmt.Errorf("%w %q", ErrBadCursor, cursor)
		}
	}
	var out []KeyInfo
	for budget > 0 && len(out) < limit {
		sh := &s.shards[shard]
		sh.mu.Lock()
		end := min(slot+min(crawlRun, budget), len(sh.idx.slots))
		for ; slot < end && len(out) < limit; slot++ {
			b := sh.idx.slots[slot].b
			budget--
			if b == nil || b.expired(now) || !bytes.HasPrefix(b.keyBytes(), prefix) {
				continue
			}
			out = append(out, KeyInfo{Key: bytes.Clone(b.keyBytes()), Size: b.vlen(), Flags: b.item().Flags, Exptime: b.exptime()})
		}
		done := slot >= len(sh.idx.slots)
		sh.mu.Unlock()
		if done {
			shard, slot = shard+1, 0
			if shard == memShards {
				return out, "", nil
			}
		}
	}
	return out, fmt.Sprintf("m.%d.%d", shard, slot), nil
}

// Crawl implements Crawler over the store on disk, in key order. The
// cursor is "d." and the hex of the last key listed.
func (s *DurableStore) Crawl(cursor string, prefix []byte, limit, budget int, now int64) ([]KeyInfo, string, error) {
	lower := itemKey(prefix)
	if cursor != "" {
		h, ok := strings.CutPrefix(cursor, "d.")
		last, err := hex.DecodeString(h)
		if !ok || err != nil {
			return nil, "", fmt.Errorf("%w %q", ErrBadCursor, cursor)
		}
		lower = append(itemKey(last), 0) // just after it
	}
	opts := &pebble.IterOptions{LowerBound: lower, UpperBound: itemsTo}
	if end := prefixEnd(itemKey(prefix)); end != nil {
		opts.UpperBound = end
	}
	it, err := s.db.NewIter(opts)
	if err != nil {
		return nil, "", fmt.Errorf("kvs: crawl: %w", err)
	}
	defer it.Close()
	var out []KeyInfo
	var last []byte
	for ok := it.First(); ok; ok = it.Next() {
		if budget <= 0 || len(out) >= limit {
			return out, "d." + hex.EncodeToString(last), nil
		}
		budget--
		last = append(last[:0], it.Key()[1:]...)
		v, err := it.ValueAndErr()
		if err != nil {
			return out, "", fmt.Errorf("kvs: crawl: %w", err)
		}
		rec, err := decodeItem(v)
		if err != nil || rec.expired(now) {
			continue
		}
		out = append(out, KeyInfo{Key: bytes.Clone(last), Size: len(rec.Value), Flags: rec.Flags, Exptime: rec.Exptime})
	}
	return out, "", it.Error()
}

// prefixEnd is the smallest key above every key starting with p (nil if
// there is none).
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// KeyPage is one page of a tenant's key listing.
type KeyPage struct {
	Keys []KeyInfo
	// Next is the cursor of the next page; "" at the end.
	Next string
}

// crawlBudget bounds the entries one Keys call looks at.
const crawlBudget = 8192

// Keys lists up to limit of the tenant's live keys starting with prefix,
// from cursor on ("" for the first page), looking at a bounded number of
// entries: a page may hold fewer keys than limit and still have a next.
func (l *Local) Keys(cursor string, prefix []byte, limit int) (KeyPage, error) {
	c, ok := l.svc.store.(Crawler)
	if !ok {
		return KeyPage{}, errors.New("kvs: this store cannot list its keys")
	}
	keys, next, err := c.Crawl(cursor, prefix, limit, crawlBudget, l.svc.now())
	return KeyPage{Keys: keys, Next: next}, err
}

// Crawl implements Crawler for a clustered tenant's store: this node's
// copy (the slots it is primary of and those it backs up).
func (rp *replicator) Crawl(cursor string, prefix []byte, limit, budget int, now int64) ([]KeyInfo, string, error) {
	c, ok := rp.inner.(Crawler)
	if !ok {
		return nil, "", errors.New("kvs: this store cannot list its keys")
	}
	return c.Crawl(cursor, prefix, limit, budget, now)
}
