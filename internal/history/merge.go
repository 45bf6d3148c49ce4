package history

import "time"

// maxMerged bounds the points of a merged series.
const maxMerged = 100_000

// MergeStep is the resolution Merge should use for a span: Step up to
// FineSpan, CoarseStep beyond.
func MergeStep(span time.Duration) time.Duration {
	if span <= FineSpan {
		return Step
	}
	return CoarseStep
}

// Merge adds up the series of several nodes (each keeps its own, sampled
// at its own times and perhaps at another resolution) into one series of
// step-long points over [from, to): gauges are summed, counts are summed
// as rates. A node's points are folded into the step they start in; a
// node without a point in a step is held at its last value while that
// value is fresh (within its own interval and one step), so that nodes
// sampling at different phases do not make the sum dip. A step without
// any node's value is left out (a gap, not a zero).
func Merge(series [][]Point, from, to time.Time, step time.Duration) []Point {
	st := int64(step / time.Second)
	if st <= 0 {
		return nil
	}
	if span := to.Unix() - from.Unix(); span/st > maxMerged {
		st = (span + maxMerged - 1) / maxMerged // a wider step, not an unbounded series
	}
	lo := from.Unix() - from.Unix()%st
	hi := to.Unix()
	if hi <= lo {
		return nil
	}
	n := int((hi - lo + st - 1) / st)
	type acc struct {
		have                       bool
		items, bytes, limit, conns float64
		hits, misses, ev, cmds     float64 // rates, per second
	}
	total := make([]acc, n)
	for _, pts := range series {
		own := make([]acc, n)
		counts := make([]int, n)
		secs := make([]int64, n)
		for _, p := range pts {
			if p.T < lo || p.T >= hi {
				continue
			}
			i := int((p.T - lo) / st)
			a := &own[i]
			a.have = true
			counts[i]++
			a.items += float64(p.Items)
			a.bytes += float64(p.Bytes)
			a.limit += float64(p.Limit)
			a.conns += float64(p.Conns)
			a.hits += float64(p.Hits)
			a.misses += float64(p.Misses)
			a.ev += float64(p.Evictions)
			a.cmds += float64(p.Commands)
			secs[i] += max(p.Secs, 1)
		}
		var last acc
		var lastEnd int64 // when the held value goes stale
		for i := range own {
			b := lo + int64(i)*st
			a := own[i]
			if a.have {
				c, s := float64(counts[i]), float64(secs[i])
				a.items, a.bytes, a.limit, a.conns = a.items/c, a.bytes/c, a.limit/c, a.conns/c
				a.hits, a.misses, a.ev, a.cmds = a.hits/s, a.misses/s, a.ev/s, a.cmds/s
				last, lastEnd = a, b+max(secs[i]/int64(counts[i]), st)+st
			} else if last.have && b < lastEnd {
				a = last
			} else {
				continue
			}
			t := &total[i]
			t.have = true
			t.items += a.items
			t.bytes += a.bytes
			t.limit += a.limit
			t.conns += a.conns
			t.hits += a.hits
			t.misses += a.misses
			t.ev += a.ev
			t.cmds += a.cmds
		}
	}
	var out []Point
	for i, a := range total {
		if !a.have {
			continue
		}
		f := float64(st)
		out = append(out, Point{T: lo + int64(i)*st, Items: round(a.items), Bytes: round(a.bytes), Limit: round(a.limit), Conns: round(a.conns),
			Hits: uint64(round(a.hits * f)), Misses: uint64(round(a.misses * f)), Evictions: uint64(round(a.ev * f)), Commands: uint64(round(a.cmds * f)),
			Secs: st})
	}
	return out
}

func round(v float64) int64 {
	if v < 0 {
		return int64(v - 0.5)
	}
	return int64(v + 0.5)
}
