package daemon

import (
	"sync"
	"time"
)

// statusTTL bounds how often status (lbctl status, /metrics scrapes) reads
// the kernel: an IPVS snapshot is one dump per service and an ACL read
// lists every set and rule, too costly to repeat per request at scale.
const statusTTL = time.Second

// ttlCache keeps the last value read for statusTTL. A failed read keeps
// serving the previous value.
type ttlCache[T any] struct {
	mu  sync.Mutex
	at  time.Time
	val T
}

// get returns the cached value, reading it again with read when it is
// older than statusTTL.
func (c *ttlCache[T]) get(read func() (T, error)) (T, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.at.IsZero() && time.Since(c.at) < statusTTL {
		return c.val, nil
	}
	v, err := read()
	if err != nil {
		return c.val, err
	}
	c.val, c.at = v, time.Now()
	return v, nil
}
