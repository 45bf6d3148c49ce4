package ipvs

import (
	"fmt"
	"time"
)

// observe reads the kernel's table where the record cannot be trusted: all
// of it at start, after Invalidate and every ResyncInterval, otherwise only
// the services whose writes failed (a failed dump forces a full read next
// time). With nothing to read it costs nothing.
func (r *Reconciler) observe(res *Result, now time.Time, want map[Key]*Service) error {
	full := !r.synced || (r.opts.ResyncInterval >= 0 && !now.Before(r.nextResync))
	if !full && len(r.dirty) == 0 {
		return nil
	}
	var ks []ServiceStatus
	if err := r.timed(res, false, func() (err error) { ks, err = r.k.Services(); return err }); err != nil {
		return fmt.Errorf("ipvs: list services: %w", err)
	}
	kernel := make(map[Key]*ServiceStatus, len(ks))
	for i := range ks {
		kernel[ks[i].Service.Key()] = &ks[i]
	}

	read := func(k Key, old *svcRec) (*svcRec, error) {
		st := kernel[k]
		var ds []DestStatus
		if err := r.timed(res, false, func() (err error) { ds, err = r.k.Dests(st.Service); return err }); err != nil {
			return nil, fmt.Errorf("ipvs: list real servers of %s: %w", k, err)
		}
		rec := &svcRec{svc: st.Service, dests: make(map[DestKey]*destRec, len(ds))}
		rec.svc.Dests = nil
		for _, d := range ds {
			dk := DestKey{Addr: d.Addr, Port: d.Port}
			rec.dests[dk] = &destRec{d: d.Dest}
		}
		// Drain deadlines live only in our record.
		if old != nil {
			rec.drainUntil = old.drainUntil
			for dk, d := range old.dests {
				if nd := rec.dests[dk]; nd != nil {
					nd.drainUntil = d.drainUntil
				}
			}
		} else {
			rec.drainUntil = r.loaded.drain[k]
			for dk, t := range r.loaded.dests[k] {
				if nd := rec.dests[dk]; nd != nil {
					nd.drainUntil = t
				}
			}
		}
		return rec, nil
	}

	if full {
		cand := make(map[Key]*svcRec, len(r.have)+len(r.loaded.keys))
		for k := range r.loaded.keys {
			cand[k] = nil
		}
		for k, rec := range r.have {
			cand[k] = rec
		}
		if r.opts.AdoptExisting {
			for k := range want {
				if _, ok := cand[k]; !ok {
					cand[k] = nil
				}
			}
		}
		have := make(map[Key]*svcRec, len(cand))
		for k, old := range cand {
			if kernel[k] == nil {
				r.stateStale = true // gone (deleted by hand, or never created)
				continue
			}
			rec, err := read(k, old)
			if err != nil {
				return err
			}
			have[k] = rec
		}
		r.have = have
		r.draining, r.dirty = map[Key]bool{}, map[Key]bool{}
		for k, rec := range have {
			if rec.hasDrain() {
				r.draining[k] = true
			}
		}
		r.loaded = ownedState{}
		r.synced = true
		r.nextResync = now.Add(r.resyncInterval())
		res.Full = true
	} else {
		for k := range r.dirty {
			old := r.have[k]
			if old == nil || kernel[k] == nil {
				r.stateStale = true
				delete(r.have, k)
				delete(r.dirty, k)
				continue
			}
			rec, err := read(k, old)
			if err != nil {
				return err
			}
			r.have[k] = rec
			delete(r.dirty, k)
		}
	}
	r.other = make(map[Key]bool)
	for k := range kernel {
		if r.have[k] == nil {
			r.other[k] = true
		}
	}
	return nil
}

func (rec *svcRec) hasDrain() bool {
	if !rec.drainUntil.IsZero() {
		return true
	}
	for _, d := range rec.dests {
		if !d.drainUntil.IsZero() {
			return true
		}
	}
	return false
}

func (r *Reconciler) resyncInterval() time.Duration {
	switch {
	case r.opts.ResyncInterval > 0:
		return r.opts.ResyncInterval
	case r.opts.ResyncInterval == 0:
		return DefaultResyncInterval
	}
	return 0
}
