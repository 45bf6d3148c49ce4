package daemon

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/lbd-project/lbd/internal/api"
	"github.com/lbd-project/lbd/internal/events"
	"github.com/lbd-project/lbd/internal/statefile"
	"github.com/lbd-project/lbd/pkg/cluster"
	"github.com/lbd-project/lbd/pkg/config"
)

// The desired state lives in the Store under two keys: cluster.KeyConfig
// (the configuration file as last applied cluster-wide, a configValue)
// and cluster.KeyOverlay (the runtime changes on top of it, an Overlay as
// JSON). Every node reconciles from what its Store has applied; a write
// (runtime change, apply -f, SIGHUP of a changed file) is validated here,
// proposed, and comes back through the Store's Watch like anyone else's.

// appliedFile keeps, under the state dir, the desired state this node
// last applied: a restart reconciles from it, never from an older file,
// and never from a Store that has not yet replayed as far.
const appliedFile = "applied-state.json"

// maxProposeTries bounds the compare-and-set retries of a runtime change
// racing others.
const maxProposeTries = 8

// storeWait bounds how long a write waits for this node's Store to have
// replayed as far as the state the node last applied.
const storeWait = 5 * time.Second

// configValue is the value of cluster.KeyConfig.
type configValue struct {
	// Name is the file's name, for error messages.
	Name string `json:"name"`
	// YAML is the file's content.
	YAML string `json:"yaml"`
}

// appliedCopy is the content of appliedFile.
type appliedCopy struct {
	Index   uint64        `json:"index"`
	Config  cluster.Entry `json:"config"`
	Overlay cluster.Entry `json:"overlay"`
}

// storeState is where this node is in the Store's history. Guarded by
// Daemon.mu; only the loop goroutine writes, except where noted.
type storeState struct {
	index      uint64 // the store index the desired state reflects
	cfgVer     uint64 // version of the config entry d.file came from (0: the file)
	ovVer      uint64 // version of the overlay entry d.overlay came from
	reconciled uint64 // index of the last desired state reconciled without error
	attempted  uint64 // index of the last desired state this node tried
	err        error  // why attempted failed, if it did
	unsaved    bool   // the last applied copy could not be saved
	fileHash   [32]byte
	caughtUp   bool
	stale      string // why this node serves its last state without having caught up
	// done is closed and replaced whenever reconciled or attempted moves.
	done chan struct{}
}

func decodeConfig(e cluster.Entry) (*config.Config, configValue, error) {
	var cv configValue
	if err := json.Unmarshal(e.Value, &cv); err != nil {
		return nil, cv, fmt.Errorf("daemon: cluster config entry (version %d): %w", e.Version, err)
	}
	c, err := config.Parse([]byte(cv.YAML), cv.Name)
	return c, cv, err
}

func decodeOverlay(e cluster.Entry, ok bool) (*Overlay, error) {
	ov := &Overlay{}
	if !ok || len(e.Value) == 0 {
		return ov, nil
	}
	if err := json.Unmarshal(e.Value, ov); err != nil {
		return nil, fmt.Errorf("daemon: cluster overlay entry (version %d): %w", e.Version, err)
	}
	return ov, nil
}

func configOp(name string, yaml []byte) (cluster.Op, error) {
	v, err := json.Marshal(configValue{Name: name, YAML: string(yaml)})
	return cluster.Op{Key: cluster.KeyConfig, Value: v}, err
}

func overlayOp(ov *Overlay) (cluster.Op, error) {
	v, err := json.Marshal(ov)
	return cluster.Op{Key: cluster.KeyOverlay, Value: v}, err
}

func loadApplied(dir string) (*appliedCopy, error) {
	var c appliedCopy
	ok, err := statefile.Load(filepath.Join(dir, appliedFile), &c)
	if err != nil || !ok {
		return nil, err
	}
	return &c, nil
}

// initialState is the desired state at start: the state this node last
// applied if it has one; else (first start, or an upgrade from a node
// without a Store) the file with runtime.json's changes.
func (d *Daemon) initialState(file *config.Config, data []byte) error {
	dir := d.stateDir(file)
	d.st = storeState{fileHash: sha256.Sum256(data), done: make(chan struct{})}
	cp, err := loadApplied(dir)
	if err != nil {
		return fmt.Errorf("daemon: last applied state: %w", err)
	}
	if cp != nil {
		base, cv, err := decodeConfig(cp.Config)
		if err != nil {
			return fmt.Errorf("daemon: last applied state in %s: %w", dir, err)
		}
		base.File = cv.Name
		node, ok := base.NodeByName(d.opts.Node)
		if !ok {
			return fmt.Errorf("daemon: node %q is not in the configuration it last applied (%s)", d.opts.Node, filepath.Join(dir, appliedFile))
		}
		ov, err := decodeOverlay(cp.Overlay, true)
		if err != nil {
			return err
		}
		cfg, ov, err := d.fit(base, ov, dir)
		if err != nil {
			return fmt.Errorf("daemon: last applied state in %s: %w", dir, err)
		}
		d.file, d.cfg, d.node, d.overlay = base, cfg, node, ov
		d.st.index = cp.Index
		d.st.cfgVer, d.st.ovVer = cp.Config.Version, cp.Overlay.Version
		return nil
	}
	node, _ := file.NodeByName(d.opts.Node)
	if d.overlay, err = loadOverlay(dir); err != nil {
		return err
	}
	cfg, ov, err := d.fit(file, d.overlay, dir)
	if err != nil {
		return fmt.Errorf("daemon: runtime changes in %s no longer fit the file: %w", dir, err)
	}
	d.file, d.cfg, d.node, d.overlay = file, cfg, node, ov
	return nil
}

// fit is fitOverlay at start: tenants added at runtime that cannot run
// are left out, and said so; what the configuration accepted but an
// operator should hear is logged.
func (d *Daemon) fit(base *config.Config, ov *Overlay, dir string) (*config.Config, *Overlay, error) {
	cfg, kept, dropped, err := fitOverlay(base, ov, dir)
	if err != nil {
		return nil, nil, err
	}
	for _, name := range dropped {
		d.log.Error("saved runtime tenant cannot run; left out (add it again, fixed)", "tenant", name, "state_dir", dir)
		d.events.Publish(events.Config, "saved runtime tenant cannot run; left out", "tenant", name)
	}
	d.warn(cfg)
	return cfg, kept, nil
}

// appliedYAML returns the content of the configuration the desired state
// came from, if it came from the Store or the applied copy.
func (d *Daemon) appliedYAML() ([]byte, bool) {
	if d.st.cfgVer == 0 {
		return nil, false
	}
	e, ok := d.store.Get(cluster.KeyConfig)
	if ok && e.Version == d.st.cfgVer {
		if _, cv, err := decodeConfig(e); err == nil {
			return []byte(cv.YAML), true
		}
	}
	cp, err := loadApplied(d.stateDir(d.file))
	if err != nil || cp == nil || cp.Config.Version != d.st.cfgVer {
		return nil, false
	}
	var cv configValue
	if json.Unmarshal(cp.Config.Value, &cv) != nil {
		return nil, false
	}
	return []byte(cv.YAML), true
}

// seed gives a Store without a configuration its first: this node's last
// applied state if it has one, else the file with runtime.json's changes
// (imported once: the file is then renamed runtime.json.imported). The
// write is a compare-and-set on an absent config, so of nodes seeding at
// once exactly one wins and the others adopt it.
func (d *Daemon) seed(ctx context.Context, fileData []byte) error {
	dir := d.stateDir(d.file)
	legacy := filepath.Join(dir, overlayFile)
	if _, ok := d.store.Get(cluster.KeyConfig); ok {
		d.retire(legacy, ".superseded", "the cluster already has a configuration; this node's runtime.json is superseded by its runtime changes")
		return nil
	}
	d.mu.RLock()
	ov, cfgVer := d.overlay, d.st.cfgVer
	d.mu.RUnlock()
	data, name := fileData, d.opts.ConfigPath
	if cfgVer != 0 {
		if y, ok := d.appliedYAML(); ok {
			data = y
		}
	}
	cop, err := configOp(name, data)
	if err != nil {
		return err
	}
	cop.IfVersion = cluster.Version(0)
	oop, err := overlayOp(ov)
	if err != nil {
		return err
	}
	_, err = d.store.Propose(ctx, cop, oop)
	switch {
	case errors.Is(err, cluster.ErrConflict):
		d.log.Info("cluster configuration seeded by another node")
		return nil
	case err != nil:
		return fmt.Errorf("daemon: seed the cluster's configuration: %w", err)
	}
	d.log.Info("cluster configuration seeded", "from", name, "runtime_changes", ov.structural() || len(ov.Allow) > 0 || len(ov.Weights) > 0)
	d.retire(legacy, ".imported", "runtime.json imported into the cluster state")
	return nil
}

// retire renames a file that is no longer read, keeping its content.
func (d *Daemon) retire(path, suffix, why string) {
	if _, err := os.Stat(path); err != nil {
		return
	}
	if err := os.Rename(path, path+suffix); err != nil {
		d.log.Error("cannot rename "+path, "error", err)
		return
	}
	d.log.Info(why, "file", path, "kept_as", path+suffix)
}

// syncStore brings the desired state in step with what the Store has
// applied, on the loop goroutine. It never goes back to a state older
// than the one this node last applied (a restarting node's Store replays
// its log from a snapshot first).
func (d *Daemon) syncStore(ctx context.Context) {
	idx := d.store.AppliedIndex()
	ce, okc := d.store.Get(cluster.KeyConfig)
	oe, oko := d.store.Get(cluster.KeyOverlay)
	d.mu.RLock()
	st := d.st
	d.mu.RUnlock()
	if idx <= st.index || !okc {
		return // behind this node's last applied state, or not seeded yet
	}
	if ce.Version == st.cfgVer && oe.Version == st.ovVer {
		d.mu.Lock()
		d.st.index = idx
		if d.st.reconciled == st.index && d.recon.err == nil {
			d.st.reconciled = idx // nothing of ours changed: still in step
		}
		d.broadcastLocked()
		d.mu.Unlock()
		return
	}
	err := d.adopt(ctx, idx, ce, oe, oko)
	if err != nil {
		d.log.Error("cluster state not applied on this node; previous state keeps serving", "index", idx, "error", err)
		d.events.Publish(events.Config, "cluster state rejected on this node; running state unchanged", "index", fmt.Sprint(idx), "error", err.Error())
		d.mu.Lock()
		d.st.attempted, d.st.err = idx, err
		d.broadcastLocked()
		d.mu.Unlock()
	}
}

// adopt makes the Store's entries at idx the desired state: decoded and
// validated, saved as the applied copy, written to the file (a new
// configuration), then reconciled.
func (d *Daemon) adopt(ctx context.Context, idx uint64, ce, oe cluster.Entry, oko bool) error {
	d.mu.RLock()
	base, node, cfgVer := d.file, d.node, d.st.cfgVer
	d.mu.RUnlock()
	var newYAML []byte
	if ce.Version != cfgVer {
		c, cv, err := decodeConfig(ce)
		if err != nil {
			return err
		}
		n, ok := c.NodeByName(d.opts.Node)
		if !ok {
			return fmt.Errorf("daemon: node %q is not in the cluster's configuration", d.opts.Node)
		}
		if err := d.sameRole(n); err != nil {
			return err
		}
		base, node, newYAML = c, n, []byte(cv.YAML)
	}
	ov, err := decodeOverlay(oe, oko)
	if err != nil {
		return err
	}
	cfg, err := merge(base, ov)
	if err != nil {
		return err
	}
	// Saved before it is applied, so what the kernel enforces is never
	// newer than what a restart reconciles from.
	persistErr := statefile.Save(filepath.Join(d.stateDir(base), appliedFile), appliedCopy{Index: idx, Config: ce, Overlay: oe})
	if persistErr != nil {
		d.log.Error("cannot save the applied state; this node reports the change as not applied", "error", persistErr)
	}
	if newYAML != nil {
		d.writeFile(newYAML)
	}
	d.mu.Lock()
	d.file, d.cfg, d.node, d.overlay = base, cfg, node, ov
	d.st.index, d.st.cfgVer, d.st.ovVer = idx, ce.Version, oe.Version
	d.st.unsaved = persistErr != nil
	d.gen++
	d.mu.Unlock()
	d.warn(cfg)
	d.events.Publish(events.Config, "cluster state applied", "index", fmt.Sprint(idx))
	if err := d.reconcile(ctx); err != nil {
		d.log.Error("reconcile failed; lbd retries", "index", idx, "error", err)
	}
	return nil
}

// writeFile makes the configuration file say what the cluster applied,
// so that lbd -t and the operator see the truth. A file the operator
// changed is kept as FILE.prev.
func (d *Daemon) writeFile(yaml []byte) {
	path := d.opts.ConfigPath
	cur, err := os.ReadFile(path)
	if err == nil && bytes.Equal(cur, yaml) {
		d.setFileHash(yaml)
		return
	}
	if err == nil {
		if err := statefile.WriteAtomic(path+".prev", cur); err != nil {
			d.log.Error("cannot keep the previous configuration file", "error", err)
			return
		}
	}
	if err := statefile.WriteAtomic(path, yaml); err != nil {
		d.log.Error("cannot write the cluster's configuration to the file", "file", path, "error", err)
		return
	}
	d.setFileHash(yaml)
	d.log.Info("configuration file updated from the cluster state", "file", path, "previous", path+".prev")
}

func (d *Daemon) setFileHash(data []byte) {
	d.mu.Lock()
	d.st.fileHash = sha256.Sum256(data)
	d.mu.Unlock()
}

// broadcastLocked wakes the writers waiting for this node to apply.
// The caller holds d.mu.
func (d *Daemon) broadcastLocked() {
	if d.st.done == nil {
		return
	}
	close(d.st.done)
	d.st.done = make(chan struct{})
}

// noteReconciled records a reconcile's outcome for the state at index.
func (d *Daemon) noteReconciled(index uint64, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.st.attempted, d.st.err = index, err
	if err == nil && !d.st.unsaved && index > d.st.reconciled {
		d.st.reconciled = index
	}
	if d.ctl != nil {
		d.ctl.SetReconciled(d.st.reconciled)
	}
	d.broadcastLocked()
}

// waitReconciled waits for this node to have reconciled index.
func (d *Daemon) waitReconciled(ctx context.Context, index uint64) error {
	for {
		d.mu.RLock()
		rec, att, err, done := d.st.reconciled, d.st.attempted, d.st.err, d.st.done
		d.mu.RUnlock()
		switch {
		case rec >= index:
			return nil
		case att >= index && err != nil:
			return fmt.Errorf("change committed (index %d) but not fully applied on this node (lbd retries): %w", index, err)
		}
		select {
		case <-done:
		case <-ctx.Done():
			return fmt.Errorf("change committed (index %d); this node has not applied it yet: %w", index, ctx.Err())
		}
	}
}

// current reads the desired state from the Store for a write: the
// configuration (parsed, or this node's if it is the same version), the
// overlay, and the overlay's entry as read (ok: present), both keys read
// at one applied index.
func (d *Daemon) current(ctx context.Context) (*config.Config, *Overlay, cluster.Entry, bool, error) {
	// A node that restarted reads its Store only once it has replayed as
	// far as the state it applied last (at most storeWait).
	d.mu.RLock()
	want := d.st.index
	d.mu.RUnlock()
	deadline := time.Now().Add(storeWait)
	for {
		_, ok := d.store.Get(cluster.KeyConfig)
		have := d.store.AppliedIndex()
		if ok && have >= want {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			if !ok && want == 0 {
				return nil, nil, cluster.Entry{}, false, fmt.Errorf("%w: the cluster has no configuration yet (it is seeded from the first node's file once a leader is elected)", api.ErrNoLeader)
			}
			return nil, nil, cluster.Entry{}, false, fmt.Errorf("%w: this node has not caught up with the cluster yet (its store is at index %d, it applied %d before)", api.ErrNoLeader, have, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
	var ce, oe cluster.Entry
	var oko bool
	for {
		at := d.store.AppliedIndex()
		ce, _ = d.store.Get(cluster.KeyConfig)
		oe, oko = d.store.Get(cluster.KeyOverlay)
		if d.store.AppliedIndex() == at {
			break // no write applied between the two reads
		}
	}
	d.mu.RLock()
	base, cfgVer := d.file, d.st.cfgVer
	d.mu.RUnlock()
	if ce.Version != cfgVer {
		c, cv, err := decodeConfig(ce)
		if err != nil {
			return nil, nil, cluster.Entry{}, false, err
		}
		c.File = cv.Name
		base = c
	}
	ov, err := decodeOverlay(oe, oko)
	if err != nil {
		return nil, nil, cluster.Entry{}, false, err
	}
	return base, ov, oe, oko, nil
}

// proposeErr says what a failed Propose means to the API's caller.
func proposeErr(err error) error {
	if errors.Is(err, cluster.ErrNoLeader) {
		return fmt.Errorf("%w: nothing was written: %w", api.ErrNoLeader, err)
	}
	return err
}

// holdVRRP reports whether this director must not run its VRRP instance
// yet: it has not caught up with the committed state, and the time to
// wait for a quorum has not run out.
func (d *Daemon) holdVRRP() bool {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.store != nil && !d.st.caughtUp && d.st.stale == ""
}

// catchUp waits for the Store to have applied what the leader had
// committed, at most catchup_timeout; a node that cannot reach a quorum
// in time serves its last state and says so. Runs on its own goroutine;
// the outcome is taken on the loop goroutine after the Store's state up
// to there is adopted, so VRRP never starts on an older one.
func (d *Daemon) catchUp(ctx context.Context, ctl clusterControl, timeout time.Duration) {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	err := ctl.WaitCaughtUp(wctx)
	cancel()
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		stale := fmt.Sprintf("no quorum answered within catchup_timeout %s: serving the last applied state: %v", timeout, err)
		d.log.Warn("not caught up with the cluster; serving the last applied state", "reason", stale)
		d.events.Publish(events.Config, "serving the last applied state", "reason", stale)
		_ = d.do(ctx, func(ctx context.Context) error {
			d.mu.Lock()
			d.st.stale = stale
			d.mu.Unlock()
			d.reconcileLogged(ctx, "catch-up timed out")
			return nil
		})
		// Keep trying: once a quorum answers, the node is caught up.
		for ctl.WaitCaughtUp(ctx) != nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	}
	_ = d.do(ctx, func(ctx context.Context) error {
		d.syncStore(ctx)
		d.mu.Lock()
		d.st.caughtUp, d.st.stale = true, ""
		d.mu.Unlock()
		d.log.Info("caught up with the cluster", "index", d.store.AppliedIndex())
		d.reconcileLogged(ctx, "caught up")
		return nil
	})
	// Only a node that has caught up may seed: an empty Store is then
	// the cluster's, not a node's that has not heard from it yet.
	for try := 0; ; try++ {
		err := d.seed(ctx, d.fileData)
		if err == nil {
			return
		}
		d.log.Warn("cannot seed the cluster's configuration yet", "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(min(try+1, 5)) * time.Second):
		}
	}
}

// startStore opens the Store and starts following it. A node without a
// cluster section seeds its Local store at once; a cluster node that has
// never applied a cluster state waits (up to catchup_timeout) to learn
// it before its first reconcile, so that it does not open a port the
// cluster has closed since its file was written.
func (d *Daemon) startStore(ctx context.Context, wg *sync.WaitGroup) (<-chan uint64, error) {
	store, ctl, err := d.openStore(ctx)
	if err != nil {
		return nil, fmt.Errorf("daemon: cluster state: %w", err)
	}
	d.mu.Lock()
	d.store, d.ctl = store, ctl
	d.mu.Unlock()
	watch := store.Watch(ctx)
	if y, ok := d.appliedYAML(); ok && !bytes.Equal(y, d.fileData) {
		d.log.Warn("the configuration file differs from the configuration this node last applied; the file is replaced by it (apply the old one with lbctl apply -f FILE.prev if it was meant)", "file", d.opts.ConfigPath)
		d.writeFile(y)
	}
	if _, local := ctl.(*localControl); local {
		d.mu.Lock()
		d.st.caughtUp = true
		d.mu.Unlock()
		if err := d.seed(ctx, d.fileData); err != nil {
			return nil, err
		}
		return watch, nil
	}
	timeout := d.cfg.Cluster.CatchupTimeoutD()
	if d.st.index == 0 {
		wctx, cancel := context.WithTimeout(ctx, timeout)
		if err := ctl.WaitCaughtUp(wctx); err != nil {
			d.log.Warn("no quorum answered before the first reconcile; starting from the file", "error", err)
		}
		cancel()
	}
	wg.Go(func() { d.catchUp(ctx, ctl, timeout) })
	return watch, nil
}
