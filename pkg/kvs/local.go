package kvs

import (
	"errors"
	"fmt"
)

// Errors of the in-process access (Local).
var (
	// ErrNotFound: the key is absent or expired.
	ErrNotFound = errors.New("kvs: not found")
	// ErrNonNumeric: incr or decr of a value that is not a decimal number.
	ErrNonNumeric = errors.New("kvs: cannot increment or decrement non-numeric value")
	// ErrTooLarge: the item exceeds the tenant's max_item_size.
	ErrTooLarge = errors.New("kvs: object too large for cache")
	// ErrBadKey: the key breaks memcached's key rules.
	ErrBadKey = errors.New("kvs: bad key")
)

// Local is in-process access to one running tenant's store, with the
// memcached protocol's semantics (expiry times, flags, incr/decr, item
// size limit) and counted in the tenant's counters like a client's
// commands: what Local writes, a memcached client reads back byte for byte,
// and the reverse. A Local stays bound to the store it was taken from; take
// a new one per request (Tier.Local is cheap) so that a tenant restarted
// with another store is seen.
type Local struct {
	svc *service
}

// Local returns in-process access to a running tenant's store.
func (t *Tier) Local(name string) (*Local, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	tn, ok := t.tenants[name]
	if !ok {
		return nil, false
	}
	return &Local{svc: tn.svc}, true
}

// CheckKey applies memcached's key rules as protocol.txt states them: 1 to
// 250 bytes, no control characters and no whitespace. (The text protocol
// itself only enforces the length; an API that takes keys from anywhere
// enforces all three.)
func CheckKey(key []byte) error {
	if len(key) == 0 {
		return fmt.Errorf("%w: empty", ErrBadKey)
	}
	if len(key) > KeyMaxLength {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrBadKey, len(key), KeyMaxLength)
	}
	for i, c := range key {
		if c <= ' ' || c == 0x7f {
			return fmt.Errorf("%w: control character or space at byte %d", ErrBadKey, i)
		}
	}
	return nil
}

// MaxItemSize is the tenant's largest accepted item (memcached -I).
func (l *Local) MaxItemSize() int { return l.svc.cfg().MaxItemSize }

// count adds one to counter c and to the commands served.
func (l *Local) count(c counter) {
	l.svc.ctr[c].Add(1)
	l.svc.ctr[cCommands].Add(1)
}

// Get returns key's live item, as "get" does.
func (l *Local) Get(key []byte) (Item, bool) {
	l.svc.ctr[cGetCmds].Add(1)
	l.svc.ctr[cCommands].Add(1)
	it, ok := l.svc.store.Get(key, l.svc.now())
	if ok {
		l.svc.ctr[cGetHits].Add(1)
	} else {
		l.svc.ctr[cGetMisses].Add(1)
	}
	return it, ok
}

// Set stores value under key as "set KEY FLAGS EXPTIME" does: exptime is
// memcached's (0 never, up to 30 days relative, beyond an absolute unix
// time, negative already expired). An item over the size limit is refused
// with ErrTooLarge, and, as memcached does, the old value is dropped.
func (l *Local) Set(key, value []byte, flags uint32, exptime int32) (Item, error) {
	l.count(cSetCmds)
	now := l.svc.now()
	if l.svc.itemTooLarge(len(key), len(value)) {
		l.svc.ctr[cStoreTooLarge].Add(1)
		if _, err := l.svc.store.Mutate(key, now, deleteFn); err != nil {
			return Item{}, fmt.Errorf("kvs: set %q: %w", key, err)
		}
		return Item{}, ErrTooLarge
	}
	v := make([]byte, len(value))
	copy(v, value)
	s := session{svc: l.svc}
	_, it, err := s.store(key, now, cmdSet, Item{Value: v, Flags: flags, Exptime: l.svc.absExptime(exptime, now)}, 0, 0)
	if err != nil {
		return Item{}, fmt.Errorf("kvs: set %q: %w", key, err)
	}
	return it, nil
}

// Delete removes key; it reports whether it was there.
func (l *Local) Delete(key []byte) (bool, error) {
	found := false
	_, err := l.svc.store.Mutate(key, l.svc.now(), func(cur Item, ok bool) (Item, Op) {
		found = ok
		return cur, OpDelete
	})
	if err != nil {
		return false, fmt.Errorf("kvs: delete %q: %w", key, err)
	}
	if found {
		l.count(cDeleteHits)
	} else {
		l.count(cDeleteMisses)
	}
	return found, nil
}

// Delta is incr (incr true) or decr of key by delta, as memcached does them
// (64-bit wrap on incr, floor 0 on decr). It returns the new value, or
// ErrNotFound or ErrNonNumeric.
func (l *Local) Delta(key []byte, incr bool, delta uint64) (uint64, error) {
	s := session{svc: l.svc}
	res, _, it, err := s.addDelta(key, l.svc.now(), incr, delta, 0, nil)
	s.countDelta(incr, res == deltaOK)
	s.ctr[cCommands]++
	l.svc.ctr.merge(&s.ctr)
	switch {
	case err != nil:
		return 0, fmt.Errorf("kvs: delta %q: %w", key, err)
	case res == deltaNotFound:
		return 0, ErrNotFound
	case res == deltaNonNumeric:
		return 0, ErrNonNumeric
	}
	v, _ := parseUint64(it.Value)
	return v, nil
}

// Touch sets key's expiry (memcached's exptime) and reports whether it was
// there.
func (l *Local) Touch(key []byte, exptime int32) (bool, error) {
	now := l.svc.now()
	abs := l.svc.absExptime(exptime, now)
	found := false
	_, err := l.svc.store.Mutate(key, now, func(cur Item, ok bool) (Item, Op) {
		if !ok {
			return cur, OpKeep
		}
		found = true
		cur.Exptime = abs
		return cur, OpTouch
	})
	if err != nil {
		return false, fmt.Errorf("kvs: touch %q: %w", key, err)
	}
	l.svc.ctr[cTouchCmds].Add(1)
	if found {
		l.count(cTouchHits)
	} else {
		l.count(cTouchMisses)
	}
	return found, nil
}
