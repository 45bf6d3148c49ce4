package kvs

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/lbd-project/lbd/pkg/slots"
)

// The join of a rebuilt backup. A backup joins a slot's in-sync set by the
// rebuild's commit (AddInSyncAll), once the rebuild's last record is
// applied; the primary learns the new map a little later still. A live
// write that leaves meanwhile would, by the map, not be waited for on the
// backup: if the backup failed to apply it (its stream died), the backup
// would be in sync without a write that was acknowledged. So, from the
// purge of a slot on (the live writes before it are dropped by the purge
// and sent again by the rebuild), a sync write of the slot waits for the
// rebuilt backup as for an in-sync one, and one that the backup did not
// apply either stops the join (before the commit: the rebuild does not ask
// for it) or, once the commit was asked for, takes the backup out of the
// in-sync set as for any in-sync backup (see await). The commit and a
// write's verdict are serialized by join.mu, so that no write's failure
// falls between the rebuild's last look and its commit. The join is
// dropped once the primary's map has the backup in sync (from then on the
// map says to wait for it), or when the rebuild fails, or the backup left.

// join is one rebuild's joining of a backup to some of this primary's
// slots.
type join struct {
	backup string
	epochs map[int]uint64 // the rebuild's slots and their epochs
	// live[i]: slot i's purge was queued; written and read under the
	// slot's lock.
	live [slots.Count]bool
	// mu is held across the commit and a failed write's verdict.
	mu sync.Mutex
	// failed: a write failed on the backup before the commit was asked
	// for: the rebuild does not ask for it.
	failed bool
	// committed: the commit was asked for (it may have happened even if
	// updateMap returned an error): a write that fails on the backup
	// from now on takes it out of the in-sync set.
	committed atomic.Bool
}

// joins is the replicator's registry of joins.
type joins struct {
	mu   sync.Mutex
	all  []*join
	many atomic.Int32 // len(all), read without mu by every write
}

// startJoin registers the join of backup to the slots of epochs.
func (rp *replicator) startJoin(backup string, epochs map[int]uint64) *join {
	j := &join{backup: backup, epochs: epochs}
	rp.js.mu.Lock()
	rp.js.all = append(rp.js.all, j)
	rp.js.many.Store(int32(len(rp.js.all)))
	rp.js.mu.Unlock()
	return j
}

// endJoin drops j from the registry (writes no longer wait for its backup
// by it).
func (rp *replicator) endJoin(j *join) {
	rp.js.mu.Lock()
	rp.js.all = slices.DeleteFunc(rp.js.all, func(x *join) bool { return x == j })
	rp.js.many.Store(int32(len(rp.js.all)))
	rp.js.mu.Unlock()
}

// joinsOf returns the joins live for slot; the caller holds the slot's
// lock. It must be called before the write loads the map it goes by: a
// join is dropped only once the map has its backup in sync (see
// joinsSeen), so a write that finds it no longer loads a map at least as
// new.
func (rp *replicator) joinsOf(slot int) []*join {
	if rp.js.many.Load() == 0 {
		return nil
	}
	rp.js.mu.Lock()
	defer rp.js.mu.Unlock()
	var out []*join
	for _, j := range rp.js.all {
		if j.live[slot] {
			out = append(out, j)
		}
	}
	return out
}

// joinFor returns the join of backup among js, or nil.
func joinFor(js []*join, backup string) *join {
	for _, j := range js {
		if j.backup == backup {
			return j
		}
	}
	return nil
}

// joinsSeen drops the committed joins that m, the primary's map now, has
// done with: each of their slots has the backup in sync, or is no longer
// this node's at the rebuild's epoch.
func (rp *replicator) joinsSeen(m *slots.Map) {
	if rp.js.many.Load() == 0 {
		return
	}
	self := rp.r.n.opts.Node
	rp.js.mu.Lock()
	defer rp.js.mu.Unlock()
	rp.js.all = slices.DeleteFunc(rp.js.all, func(j *join) bool {
		if !j.committed.Load() {
			return false
		}
		for i, e := range j.epochs {
			s := m.Slots[i]
			if s.Primary == self && s.Epoch == e && !slices.Contains(s.InSync, j.backup) {
				return false
			}
		}
		return true
	})
	rp.js.many.Store(int32(len(rp.js.all)))
}

// commitJoin asks for the backup of j to join the in-sync sets (commit),
// unless a write failed on it first.
func (rp *replicator) commitJoin(j *join, commit func() error) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.failed {
		return fmt.Errorf("backup %s did not apply a write during its rebuild", j.backup)
	}
	j.committed.Store(true)
	return commit()
}

// settleJoins waits for the answers of joining backups to a write (fs,
// from joins js) and returns waits and nodes with those that must be
// treated as an in-sync backup's answer (see await): a backup that did
// not apply the write after its join was asked for. One that did not
// before stops its join. ended are the joins of the answers added: the
// caller ends them once await is done (the backup left the in-sync set,
// or this node is no longer the slots' primary).
func (rp *replicator) settleJoins(fs []*future, js []*join, waits []*future, nodes []string) (_ []*future, _ []string, ended []*join) {
	for k, f := range fs {
		f.wait()
		if string(f.data) == "A\r\n" {
			continue
		}
		j := js[k]
		j.mu.Lock()
		if !j.committed.Load() {
			j.failed = true
			j.mu.Unlock()
			rp.endJoin(j)
			rp.r.n.log.Info("kvs: joining backup did not apply a write: its join stops", "tenant", rp.r.tenant,
				"backup", j.backup, "answer", strings.TrimSpace(string(f.data)))
			continue
		}
		j.mu.Unlock()
		waits, nodes, ended = append(waits, f), append(nodes, j.backup), append(ended, j)
	}
	return waits, nodes, ended
}
