// Package history keeps each tenant's recent figures, so that the panel
// can draw the last three days without Prometheus: records, bytes, memory
// against the limit, ops/s, hit ratio, evictions and connections.
//
// A sample every 10 s is kept for 6 hours; every minute's samples are also
// folded into one point kept for 3 days. That is 2,160 + 4,320 points of 72
// bytes, under 0.5 MB a tenant. The series are saved in the state
// directory (Save, Load) so that a restart keeps them.
package history

import (
	"slices"
	"sort"
	"sync"
	"time"
)

// Resolutions and spans.
const (
	// Step is the sampling interval.
	Step = 10 * time.Second
	// FineSpan is how long every sample is kept.
	FineSpan = 6 * time.Hour
	// CoarseStep is the interval of the downsampled series.
	CoarseStep = time.Minute
	// CoarseSpan is how long the downsampled series is kept.
	CoarseSpan = 72 * time.Hour
)

// Sample is what a tenant's counters read at one time: gauges, and
// cumulative counters (hits, misses, evictions, commands).
type Sample struct {
	Tenant    string
	Items     int64
	Bytes     int64
	Limit     int64
	Conns     int64
	Hits      uint64
	Misses    uint64
	Evictions uint64
	Commands  uint64
}

// Point is one interval of a tenant's series.
type Point struct {
	// T is the interval's start, unix seconds.
	T int64
	// Gauges, averaged over the interval.
	Items, Bytes, Limit, Conns int64
	// Counts during the interval.
	Hits, Misses, Evictions, Commands uint64
	// Secs is the interval's length in seconds.
	Secs int64
}

// OpsPerSec is the request rate over the interval.
func (p Point) OpsPerSec() float64 {
	if p.Secs <= 0 {
		return 0
	}
	return float64(p.Commands) / float64(p.Secs)
}

// HitRatio is hits over retrievals during the interval; -1 without any.
func (p Point) HitRatio() float64 {
	if p.Hits+p.Misses == 0 {
		return -1
	}
	return float64(p.Hits) / float64(p.Hits+p.Misses)
}

// series is one tenant's two rings and the state to fold them.
type series struct {
	fine, coarse ring
	last         Sample // previous cumulative counters
	lastT        int64
	acc          []Point // this minute's fine points, to fold
}

// Recorder keeps every tenant's series. It is safe for concurrent use.
type Recorder struct {
	mu      sync.Mutex
	tenants map[string]*series
}

// New returns an empty Recorder.
func New() *Recorder { return &Recorder{tenants: map[string]*series{}} }

func newSeries() *series {
	return &series{fine: newRing(int(FineSpan / Step)), coarse: newRing(int(CoarseSpan / CoarseStep))}
}

// Record adds one sample per tenant taken at now. A tenant absent from
// samples keeps its history (it may come back); Forget drops it.
func (r *Recorder) Record(now time.Time, samples []Sample) {
	t := now.Unix()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range samples {
		se := r.tenants[s.Tenant]
		if se == nil {
			se = newSeries()
			r.tenants[s.Tenant] = se
		}
		se.record(t, s)
	}
}

// delta is cur-prev of a cumulative counter; a counter that went back
// (the store restarted) counts from zero.
func delta(cur, prev uint64) uint64 {
	if cur < prev {
		return cur
	}
	return cur - prev
}

func (se *series) record(t int64, s Sample) {
	if se.lastT == 0 || t <= se.lastT {
		se.last, se.lastT = s, t
		return
	}
	p := Point{T: se.lastT, Items: s.Items, Bytes: s.Bytes, Limit: s.Limit, Conns: s.Conns,
		Hits: delta(s.Hits, se.last.Hits), Misses: delta(s.Misses, se.last.Misses),
		Evictions: delta(s.Evictions, se.last.Evictions), Commands: delta(s.Commands, se.last.Commands),
		Secs: t - se.lastT}
	se.last, se.lastT = s, t
	se.fine.add(p)
	minute := p.T - p.T%int64(CoarseStep/time.Second)
	if len(se.acc) > 0 && se.acc[0].T-se.acc[0].T%60 != minute {
		se.coarse.add(fold(se.acc))
		se.acc = se.acc[:0]
	}
	se.acc = append(se.acc, p)
}

// fold makes one point of several consecutive ones: gauges averaged,
// counts added up.
func fold(ps []Point) Point {
	out := Point{T: ps[0].T - ps[0].T%60}
	var items, bytes, limit, conns int64
	for _, p := range ps {
		items, bytes, limit, conns = items+p.Items, bytes+p.Bytes, limit+p.Limit, conns+p.Conns
		out.Hits += p.Hits
		out.Misses += p.Misses
		out.Evictions += p.Evictions
		out.Commands += p.Commands
		out.Secs += p.Secs
	}
	n := int64(len(ps))
	out.Items, out.Bytes, out.Limit, out.Conns = items/n, bytes/n, limit/n, conns/n
	return out
}

// Forget drops a tenant's history (the tenant was removed).
func (r *Recorder) Forget(tenant string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.tenants, tenant)
}

// Tenants lists the tenants with a history, sorted.
func (r *Recorder) Tenants() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.tenants))
	for t := range r.tenants {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// Series returns a tenant's points from since on, oldest first: the 10 s
// points where they reach back far enough, else the 1-minute ones (and
// the 10 s ones after the last minute folded).
func (r *Recorder) Series(tenant string, since time.Time) []Point {
	r.mu.Lock()
	defer r.mu.Unlock()
	se := r.tenants[tenant]
	if se == nil {
		return nil
	}
	from := since.Unix()
	fine := se.fine.since(from)
	if len(fine) > 0 && fine[0].T <= from+int64(Step/time.Second) {
		return fine
	}
	coarse := se.coarse.since(from)
	var after int64
	if len(coarse) > 0 {
		after = coarse[len(coarse)-1].T + 60
	}
	for _, p := range fine {
		if p.T >= after {
			coarse = append(coarse, p)
		}
	}
	return coarse
}

// ring keeps the newest n points.
type ring struct {
	pts  []Point
	next int
	full bool
}

func newRing(n int) ring { return ring{pts: make([]Point, n)} }

func (g *ring) add(p Point) {
	g.pts[g.next] = p
	g.next++
	if g.next == len(g.pts) {
		g.next, g.full = 0, true
	}
}

// all returns the points, oldest first.
func (g *ring) all() []Point {
	if !g.full {
		return slices.Clone(g.pts[:g.next])
	}
	return append(slices.Clone(g.pts[g.next:]), g.pts[:g.next]...)
}

func (g *ring) since(t int64) []Point {
	all := g.all()
	i := sort.Search(len(all), func(i int) bool { return all[i].T >= t })
	return all[i:]
}
