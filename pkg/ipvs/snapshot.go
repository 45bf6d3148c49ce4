package ipvs

import (
	"context"
	"fmt"
	"sort"
)

// Snapshot reads every virtual service and real server from the kernel with
// their connection counts and rates (what `ipvsadm -Ln --stats --rate`
// shows), marking the ones lbd owns and the real servers it is draining. It
// writes nothing and does not change the Reconciler's record. Services are
// sorted by address, protocol and port.
func (r *Reconciler) Snapshot(ctx context.Context) ([]ServiceStatus, error) {
	ks, err := r.k.Services()
	if err != nil {
		return nil, fmt.Errorf("ipvs: list services: %w", err)
	}
	for i := range ks {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		s := &ks[i]
		ds, err := r.k.Dests(s.Service)
		if err != nil {
			return nil, fmt.Errorf("ipvs: list real servers of %s: %w", s.Service.Key(), err)
		}
		s.Dests = ds
	}
	r.mu.Lock()
	for i := range ks {
		s := &ks[i]
		k := s.Service.Key()
		rec := r.have[k]
		if rec == nil {
			_, s.Owned = r.loaded.keys[k]
			continue
		}
		s.Owned = true
		for j := range s.Dests {
			d := &s.Dests[j]
			if dr := rec.dests[DestKey{Addr: d.Addr, Port: d.Port}]; dr != nil {
				d.Draining = !dr.drainUntil.IsZero() || !rec.drainUntil.IsZero()
			}
		}
	}
	r.mu.Unlock()
	sort.Slice(ks, func(i, j int) bool { return keyLess(ks[i].Service.Key(), ks[j].Service.Key()) })
	return ks, nil
}

// Owned returns the services lbd owns as last applied or read (draining
// ones included), from the Reconciler's record: no kernel request. Until
// the first Apply has read the kernel's table, that record is the state
// file, so a restarted lbd already knows which services it still has.
func (r *Reconciler) Owned() []Key {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Key, 0, len(r.have)+len(r.loaded.keys))
	for k := range r.have {
		out = append(out, k)
	}
	if !r.synced {
		for k := range r.loaded.keys {
			if r.have[k] == nil {
				out = append(out, k)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return keyLess(out[i], out[j]) })
	return out
}
