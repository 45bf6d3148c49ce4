package memcload

import (
	"math/bits"
	"time"
)

// histogram is a log-linear latency histogram: 16 sub-buckets per power of
// two of nanoseconds, about 6% resolution.
type histogram struct {
	counts [64 * 16]uint64
	total  uint64
	max    time.Duration
}

func bucketOf(ns uint64) int {
	if ns < 16 {
		return int(ns)
	}
	e := bits.Len64(ns) - 1 // >= 4
	m := (ns >> (e - 4)) & 15
	return (e-3)*16 + int(m)
}

// bucketValue is the upper bound of bucket b in nanoseconds.
func bucketValue(b int) uint64 {
	if b < 16 {
		return uint64(b)
	}
	e := b/16 + 3
	m := uint64(b % 16)
	return (16 + m + 1) << (e - 4)
}

func (h *histogram) add(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[bucketOf(uint64(d))]++
	h.total++
	if d > h.max {
		h.max = d
	}
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.total += o.total
	h.max = max(h.max, o.max)
}

func (h *histogram) quantile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	rank := uint64(q*float64(h.total-1)) + 1
	var seen uint64
	for b, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(time.Duration(bucketValue(b)), h.max)
		}
	}
	return h.max
}
