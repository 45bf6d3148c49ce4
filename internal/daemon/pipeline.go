package daemon

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lbd-project/lbd/internal/api"
	"github.com/lbd-project/lbd/pkg/cluster"
	"github.com/lbd-project/lbd/pkg/config"
)

// pipeDepth is how many batches of runtime changes the leader keeps in
// flight at once: batch k+1 is computed on top of batch k's overlay and
// submitted before k is committed, so the raft round trips overlap.
const pipeDepth = 4

// pipeline is the leader's chain of proposed overlays. Only the goroutine
// draining the pending changes uses it, except where noted.
type pipeline struct {
	ok     bool           // the chain holds the overlay as last proposed
	base   *config.Config // the configuration the overlay is on
	ov     *Overlay       // the overlay as last proposed (or read)
	merged *config.Config
	hash   [32]byte // SHA-256 of the overlay's value as last proposed
	absent bool     // the store has no overlay yet
	// broken is set by a batch that did not commit (any goroutine): the
	// chain is re-read from the Store once the batches in flight are done.
	broken   atomic.Bool
	inflight sync.WaitGroup
	slots    chan struct{}
}

// submitter is what a Store offers to keep several writes in flight,
// in order (pkg/cluster's Node).
type submitter interface {
	Submit(ctx context.Context, ops ...cluster.Op) (func() (uint64, error), error)
}

// drainPending proposes the pending changes, batch after batch, until
// none is left. The batches carry many callers' changes: none is cut
// short by one caller going away. As the raft leader it pipelines the
// batches (proposePipelined); otherwise each batch is forwarded to the
// leader (proposeBatch), several at once.
func (d *Daemon) drainPending(ctx context.Context) {
	p := &d.pipe
	if p.slots == nil {
		p.slots = make(chan struct{}, pipeDepth)
	}
	for {
		// A slot first, then the batch: what arrives while every slot is
		// taken goes into the next batch, not into many small ones.
		p.slots <- struct{}{}
		d.pendMu.Lock()
		batch := d.pending
		d.pending = nil
		if len(batch) == 0 {
			d.proposing = false
			d.pendMu.Unlock()
			<-p.slots
			return
		}
		d.pendMu.Unlock()
		sub, self := d.submitter()
		switch {
		case self && sub != nil:
			d.proposePipelined(ctx, sub, batch) // frees its slot
			continue
		case self:
			// A Store that takes one write at a time (Local).
			p.inflight.Wait()
			bctx, cancel := context.WithTimeout(ctx, batchTimeout)
			d.proposeLocal(bctx, batch)
			cancel()
			<-p.slots
			continue
		}
		p.ok = false // a leader again later re-reads its chain
		p.inflight.Add(1)
		go func() {
			defer func() { <-p.slots; p.inflight.Done() }()
			bctx, cancel := context.WithTimeout(ctx, batchTimeout)
			defer cancel()
			d.proposeBatch(bctx, batch)
		}()
	}
}

// submitter returns the Store's submitter when this node is the leader
// and its Store can keep writes in flight.
func (d *Daemon) submitter() (submitter, bool) {
	ctl := d.control()
	if ctl == nil {
		return nil, true
	}
	self, _ := ctl.leader()
	sub, _ := d.store.(submitter)
	return sub, self
}

// proposePipelined computes batch on top of the chain and submits it as a
// write conditional on the chain's last overlay (Op.IfHash); the outcome
// is delivered when it commits. A batch that conflicts (an apply -f or a
// seed came between, or leadership moved) is put back in front of the
// pending changes, at most maxProposeTries times per change.
func (d *Daemon) proposePipelined(ctx context.Context, sub submitter, batch []*pendingChange) {
	p := &d.pipe
	release := func() { <-p.slots }
	if p.broken.Load() || !p.ok {
		p.inflight.Wait()
		p.broken.Store(false)
		if err := d.readChain(ctx); err != nil {
			for _, c := range batch {
				c.done <- proposed{err: err}
			}
			release()
			return
		}
	}
	ov, merged := p.ov, p.merged
	var kept []*pendingChange
	lists := map[*pendingChange]proposed{}
	for _, c := range batch {
		next := ov.clone()
		list, err := c.change.apply(next, merged)
		m := merged
		if err == nil && c.change.structural() {
			if m, err = merge(p.base, next); err != nil {
				err = fmt.Errorf("%w: %w", api.ErrInvalid, err)
			} else if rerr := runnable(m, d.stateDir(p.base)); rerr != nil {
				err = fmt.Errorf("%w: %w", api.ErrInvalid, rerr)
			}
		}
		if err != nil {
			c.done <- proposed{err: err}
			continue
		}
		ov, merged = next, m
		kept = append(kept, c)
		lists[c] = proposed{result: list}
	}
	if len(kept) == 0 {
		release()
		return
	}
	ov.Updated = time.Now()
	value, err := json.Marshal(ov)
	if err != nil {
		for _, c := range kept {
			c.done <- proposed{err: err}
		}
		release()
		return
	}
	op := cluster.Op{Key: cluster.KeyOverlay, Value: value}
	if p.absent {
		op.IfVersion = cluster.Version(0)
	} else {
		op.IfHash = p.hash[:]
	}
	bctx, cancel := context.WithTimeout(ctx, batchTimeout)
	wait, err := sub.Submit(bctx, op)
	if err != nil {
		cancel()
		p.ok = false
		// Not the leader any more, or shut down: nothing was written;
		// the changes go round again (forwarded, this time).
		d.requeue(kept, err)
		release()
		return
	}
	p.ov, p.merged, p.hash, p.absent = ov, merged, sha256.Sum256(value), false
	p.inflight.Add(1)
	go func() {
		defer func() { cancel(); release(); p.inflight.Done() }()
		idx, err := wait()
		switch {
		case errors.Is(err, cluster.ErrConflict):
			p.broken.Store(true)
			d.requeue(kept, err)
		case err != nil:
			p.broken.Store(true)
			err = proposeErr(err)
			for _, c := range kept {
				c.done <- proposed{err: err}
			}
		default:
			for _, c := range kept {
				r := lists[c]
				r.index = idx
				c.done <- r
			}
		}
	}()
}

// readChain starts the chain from what the Store has applied.
func (d *Daemon) readChain(ctx context.Context) error {
	p := &d.pipe
	base, ov, oe, ok, err := d.current(ctx)
	if err != nil {
		return err
	}
	merged, err := merge(base, ov)
	if err != nil {
		return fmt.Errorf("daemon: the cluster's runtime changes no longer fit its configuration: %w", err)
	}
	p.base, p.ov, p.merged, p.absent = base, ov, merged, !ok
	p.hash = sha256.Sum256(oe.Value)
	p.ok = true
	return nil
}

// requeue puts changes that were not written back in front of the
// pending ones (a change tried maxProposeTries times fails with err).
func (d *Daemon) requeue(changes []*pendingChange, err error) {
	var again []*pendingChange
	for _, c := range changes {
		if c.tries++; c.tries >= maxProposeTries {
			c.done <- proposed{err: fmt.Errorf("daemon: the runtime changes kept changing under this one (%d tries); try again: %w", c.tries, proposeErr(err))}
			continue
		}
		again = append(again, c)
	}
	if len(again) == 0 {
		return
	}
	d.pendMu.Lock()
	d.pending = append(again, d.pending...)
	start := !d.proposing
	d.proposing = true
	d.pendMu.Unlock()
	if start {
		go d.drainPending(context.Background())
	}
}
