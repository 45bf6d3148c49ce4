package kvs

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Protocol limits and constants, as in memcached.
const (
	// KeyMaxLength is the longest key memcached accepts.
	KeyMaxLength = 250
	// DefaultMaxItemSize is memcached's default -I.
	DefaultMaxItemSize = 1 << 20
	// realtimeMaxDelta: exptimes above it are absolute unix times.
	realtimeMaxDelta = 60 * 60 * 24 * 30
	// itemHeaderSize approximates memcached's item header (with CAS), so
	// that "object too large" triggers at about the same size.
	itemHeaderSize = 56
	// Version is the version string lbd's KVS reports.
	Version = "1.6.18-lbd"
)

// service is one tenant's protocol engine: its store, limits and counters.
// It is independent of the network so that it can be driven by tests and
// the fuzzer through any reader and writer.
type service struct {
	name     string
	store    Store
	cfgp     atomic.Pointer[TenantConfig]
	ctr      sharedCounters
	now      func() int64
	started  int64
	log      *slog.Logger
	curConns atomic.Int64
	totConns atomic.Uint64
	rejected atomic.Uint64

	flushMu    sync.Mutex
	flushTimer *time.Timer

	// router routes a clustered tenant's keys; nil for a tenant of one
	// node.
	router *router
}

func newService(log *slog.Logger, cfg TenantConfig, store Store, now func() int64) *service {
	if now == nil {
		now = func() int64 { return time.Now().Unix() }
	}
	s := &service{
		name:    cfg.Name,
		store:   store,
		now:     now,
		started: now(),
		log:     log,
	}
	s.cfgp.Store(&cfg)
	return s
}

// cfg returns the live configuration; limits can change under running
// connections.
func (s *service) cfg() *TenantConfig { return s.cfgp.Load() }

// absExptime converts a protocol exptime to absolute unix seconds the way
// memcached's realtime() does: 0 is never, negative is already expired,
// above 30 days is an absolute time.
func (s *service) absExptime(exp int32, now int64) int64 {
	switch {
	case exp == 0:
		return 0
	case exp < 0:
		return 1
	case exp > realtimeMaxDelta:
		if int64(exp) <= s.started {
			return 1
		}
		return int64(exp)
	default:
		return now + int64(exp)
	}
}

// itemTooLarge mirrors memcached's item_size_ok for a value of vlen bytes
// (without "\r\n").
func (s *service) itemTooLarge(nkey, vlen int) bool {
	return itemHeaderSize+nkey+1+vlen+2 > s.cfg().MaxItemSize
}

// flushAll empties the store now, or schedules it at the absolute time at.
// A later flush_all replaces a pending one, as memcached's oldest_live does.
func (s *service) flushAll(at int64, now int64) {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	if s.flushTimer != nil {
		s.flushTimer.Stop()
		s.flushTimer = nil
	}
	if at <= now {
		if err := s.store.Flush(); err != nil {
			s.log.Error("kvs: flush_all", "tenant", s.name, "err", err)
		}
		return
	}
	s.flushTimer = time.AfterFunc(time.Duration(at-now)*time.Second, func() {
		if err := s.store.Flush(); err != nil {
			s.log.Error("kvs: delayed flush_all", "tenant", s.name, "err", err)
		}
	})
}

// stop cancels background work of the service.
func (s *service) stop() {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	if s.flushTimer != nil {
		s.flushTimer.Stop()
		s.flushTimer = nil
	}
}
