package panel

import (
	"context"
	"sync"
	"time"

	"github.com/lbd-project/lbd/internal/history"
)

// seriesTTL is how long a merged series is reused: a tenant page asks for
// six graphs of one series at once, and each would ask every storage node.
const seriesTTL = 3 * time.Second

// seriesCache keeps the merged series recently fetched, per tenant and
// span.
type seriesCache struct {
	mu      sync.Mutex
	entries map[seriesKey]*seriesEntry
}

type seriesKey struct {
	tenant string
	span   time.Duration
}

type seriesEntry struct {
	once    chan struct{} // closed once fetched
	at      time.Time
	pts     []history.Point
	missing []string
}

// history returns the tenant's series over the span before now, fetched
// once per seriesTTL (concurrent callers wait for one fetch).
func (s *Server) history(ctx context.Context, tenant string, span time.Duration) ([]history.Point, []string, time.Time) {
	c := &s.series
	now := s.now()
	k := seriesKey{tenant, span}
	c.mu.Lock()
	if c.entries == nil {
		c.entries = map[seriesKey]*seriesEntry{}
	}
	e := c.entries[k]
	if e == nil || now.Sub(e.at) > seriesTTL || now.Before(e.at) {
		for key, old := range c.entries { // keep the map small
			if now.Sub(old.at) > seriesTTL {
				delete(c.entries, key)
			}
		}
		e = &seriesEntry{once: make(chan struct{}), at: now}
		c.entries[k] = e
		c.mu.Unlock()
		// Not cancelled with the first asker's request: others wait on it
		// (the daemon bounds each node's answer).
		e.pts, e.missing = s.b.History(context.WithoutCancel(ctx), tenant, now.Add(-span), now)
		close(e.once)
		return e.pts, e.missing, now
	}
	c.mu.Unlock()
	select {
	case <-e.once:
	case <-ctx.Done():
		return nil, nil, e.at
	}
	return e.pts, e.missing, e.at
}
