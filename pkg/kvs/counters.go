package kvs

import "sync/atomic"

// counter indexes the per-tenant protocol counters. Connections count into
// a private array and merge it into the tenant's atomics when they flush
// their output, so the hot path takes no shared cache line.
type counter int

const (
	cGetCmds counter = iota
	cGetHits
	cGetMisses
	cSetCmds
	cTouchCmds
	cTouchHits
	cTouchMisses
	cDeleteHits
	cDeleteMisses
	cIncrHits
	cIncrMisses
	cDecrHits
	cDecrMisses
	cCasHits
	cCasMisses
	cCasBadval
	cFlushCmds
	cMetaCmds
	cStoreTooLarge
	cBytesRead
	cBytesWritten
	cCommands
	numCounters
)

// localCounters are one connection's unmerged counts.
type localCounters [numCounters]uint64

// sharedCounters are a tenant's merged counts.
type sharedCounters [numCounters]atomic.Uint64

func (s *sharedCounters) merge(l *localCounters) {
	for i, v := range l {
		if v != 0 {
			s[i].Add(v)
			l[i] = 0
		}
	}
}

func (s *sharedCounters) load(c counter) uint64 { return s[c].Load() }

func (s *sharedCounters) reset() {
	for i := range s {
		s[i].Store(0)
	}
}
