package ipvs

import (
	"sort"
	"time"
)

// svcRec is what the Reconciler knows of one service it owns: the
// configuration it last applied or read back, and drain deadlines.
type svcRec struct {
	svc        Service // Dests is nil; see dests
	dests      map[DestKey]*destRec
	drainUntil time.Time // non-zero while the whole service drains
}

type destRec struct {
	d          Dest      // Port is filled in (never zero)
	drainUntil time.Time // non-zero while draining
}

type opKind int

const (
	opAddService opKind = iota
	opUpdateService
	opDelService
	opAddDest
	opUpdateDest
	opDelDest
	opMark // bookkeeping only (a drain deadline set or cleared): no write
)

func (k opKind) String() string {
	return [...]string{"add service", "update service", "delete service",
		"add real server", "update real server", "delete real server", "mark"}[k]
}

// op is one step of a plan: at most one netlink write.
type op struct {
	kind opKind
	svc  Service // the service (Dests nil)
	dest Dest    // for dest ops and dest marks; Port filled in
	// until is the drain deadline to record for dest (opUpdateDest,
	// opMark with hasDest) or for the service (opMark without); zero clears.
	until   time.Time
	hasDest bool
}

// plan computes the writes that turn have into want. It is pure: it reads
// its arguments and returns the steps, in an order that never takes capacity
// away before adding it (creates, then updates, then deletions). Keys in skip
// are left alone (conflicts with services lbd does not own).
func plan(want map[Key]*Service, order []Key, have map[Key]*svcRec, skip map[Key]bool, now time.Time, drain time.Duration) []op {
	var adds, updates, dels []op
	for _, k := range order {
		s := want[k]
		if skip[k] {
			continue
		}
		bare := *s
		bare.Dests = nil
		rec := have[k]
		if rec == nil {
			adds = append(adds, op{kind: opAddService, svc: bare})
			for i := range s.Dests {
				d := s.Dests[i]
				d.Port = d.key(s).Port
				d.Addr = d.Addr.Unmap()
				adds = append(adds, op{kind: opAddDest, svc: bare, dest: d, hasDest: true})
			}
			continue
		}
		if !rec.drainUntil.IsZero() {
			updates = append(updates, op{kind: opMark, svc: bare})
		}
		if rec.svc.attrs() != s.attrs() {
			updates = append(updates, op{kind: opUpdateService, svc: bare})
		}
		matched := 0
		for i := range s.Dests {
			d := s.Dests[i]
			dk := d.key(s)
			d.Port, d.Addr = dk.Port, dk.Addr
			dr := rec.dests[dk]
			switch {
			case dr == nil:
				adds = append(adds, op{kind: opAddDest, svc: bare, dest: d, hasDest: true})
				continue
			case dr.d.Weight != d.Weight || dr.d.Forward != d.Forward:
				updates = append(updates, op{kind: opUpdateDest, svc: bare, dest: d, hasDest: true})
			case !dr.drainUntil.IsZero():
				updates = append(updates, op{kind: opMark, svc: bare, dest: d, hasDest: true})
			}
			matched++
		}
		if matched == len(rec.dests) {
			continue // no real server left the desired state
		}
		wanted := make(map[DestKey]bool, len(s.Dests))
		for i := range s.Dests {
			wanted[s.Dests[i].key(s)] = true
		}
		for _, dk := range sortedDestKeys(rec.dests) {
			if !wanted[dk] {
				dels = append(dels, drainDest(bare, rec.dests[dk], now, drain)...)
			}
		}
	}
	var gone []Key
	for k := range have {
		if _, ok := want[k]; !ok {
			gone = append(gone, k)
		}
	}
	sort.Slice(gone, func(i, j int) bool { return keyLess(gone[i], gone[j]) })
	for _, k := range gone {
		rec := have[k]
		switch {
		case drain <= 0 || len(rec.dests) == 0:
			dels = append(dels, op{kind: opDelService, svc: rec.svc})
		case rec.drainUntil.IsZero():
			for _, dk := range sortedDestKeys(rec.dests) {
				if dr := rec.dests[dk]; dr.d.Weight != 0 {
					d := dr.d
					d.Weight = 0
					dels = append(dels, op{kind: opUpdateDest, svc: rec.svc, dest: d, hasDest: true, until: dr.drainUntil})
				}
			}
			dels = append(dels, op{kind: opMark, svc: rec.svc, until: now.Add(drain)})
		case !now.Before(rec.drainUntil):
			dels = append(dels, op{kind: opDelService, svc: rec.svc})
		}
	}
	out := make([]op, 0, len(adds)+len(updates)+len(dels))
	out = append(out, adds...)
	out = append(out, updates...)
	return append(out, dels...)
}

// drainDest returns the steps for a real server that left the desired
// state: weight 0 and a deadline first, deletion once the deadline passed.
func drainDest(svc Service, dr *destRec, now time.Time, drain time.Duration) []op {
	switch {
	case drain <= 0:
		return []op{{kind: opDelDest, svc: svc, dest: dr.d, hasDest: true}}
	case dr.drainUntil.IsZero() && dr.d.Weight != 0:
		d := dr.d
		d.Weight = 0
		return []op{{kind: opUpdateDest, svc: svc, dest: d, hasDest: true, until: now.Add(drain)}}
	case dr.drainUntil.IsZero():
		// Already at weight 0 (say, inhibited by a failed check): it may
		// still carry connections, so it drains all the same.
		return []op{{kind: opMark, svc: svc, dest: dr.d, hasDest: true, until: now.Add(drain)}}
	case !now.Before(dr.drainUntil):
		return []op{{kind: opDelDest, svc: svc, dest: dr.d, hasDest: true}}
	}
	return nil
}

func sortedDestKeys(m map[DestKey]*destRec) []DestKey {
	ks := make([]DestKey, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Slice(ks, func(i, j int) bool {
		if c := ks[i].Addr.Compare(ks[j].Addr); c != 0 {
			return c < 0
		}
		return ks[i].Port < ks[j].Port
	})
	return ks
}
