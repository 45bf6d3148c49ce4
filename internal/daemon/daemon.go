// Package daemon is lbd's wiring: it loads the configuration, picks this
// node's role, and keeps the kernel and the KVS in step with the desired
// state (the file plus runtime changes), reconciling on reload, on health
// transitions and periodically.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lbd-project/lbd/internal/credential"
	"github.com/lbd-project/lbd/internal/events"
	"github.com/lbd-project/lbd/internal/history"
	"github.com/lbd-project/lbd/pkg/cluster"
	"github.com/lbd-project/lbd/pkg/config"
	"github.com/lbd-project/lbd/pkg/healthcheck"
	"github.com/lbd-project/lbd/pkg/kvs"
)

// Options configures a Daemon.
type Options struct {
	// ConfigPath is the YAML file.
	ConfigPath string
	// Node is this node's name in the file; empty means the hostname.
	Node string
	// StateDir overrides the file's daemon.state_dir.
	StateDir string
	// Socket overrides the file's daemon.socket; "-" disables the API.
	Socket string
	// Logger receives everything lbd logs.
	Logger *slog.Logger
	// ResyncInterval bounds how long a failed or drifted kernel state
	// waits for the next reconcile. Zero means 30s.
	ResyncInterval time.Duration
	// KVS shapes a storage node's KVS tier (event loops, their CPUs and
	// scheduling policy); the Go memory limit always follows the tenants.
	KVS kvs.Options
}

// Daemon runs one lbd node.
type Daemon struct {
	opts   Options
	log    *slog.Logger
	events *events.Bus
	health *healthcheck.Checker

	ops     chan op
	kick    chan struct{}
	started time.Time

	// store holds the desired state (desired.go); set by Run before the
	// API serves, never changed after.
	store cluster.Store
	// kvsJoined: this storage node's tier joined the storage tier's
	// cluster (with a cluster section; see joinKVSCluster).
	kvsJoined atomic.Bool
	fileData  []byte // the file as read at start (seeds an empty store)
	// writeMu gives one writer at a time the turn to propose the pending
	// runtime changes (pendMu guards pending; runtime.go).
	writeMu sync.Mutex
	pendMu  sync.Mutex
	pending []*pendingChange

	// mu guards what the API reads while the loop changes it. Only the
	// loop goroutine writes.
	mu      sync.RWMutex
	file    *config.Config // the configuration as applied (the cluster's, or the file at first start)
	cfg     *config.Config // with runtime changes merged: the desired state
	gen     uint64         // numbers cfg: bumped by every reload, apply and runtime change
	node    config.Node
	overlay *Overlay
	recon   reconcileStats
	sub     subsystems
	st      storeState
	ctl     clusterControl
	// creds holds the hashed credentials and API tokens (safe for
	// concurrent use).
	creds *credential.Store
	// hist keeps the tenants' series on a storage node (set by Run).
	hist *history.Recorder
}

// op is work that must run on the loop goroutine, serialized with
// reconciles: reloads and runtime changes.
type op struct {
	fn   func(ctx context.Context) error
	done chan error
}

// reconcileStats tells how reconciles went.
type reconcileStats struct {
	last     time.Time
	took     time.Duration
	err      error
	count    uint64
	failures uint64
	writes   uint64 // IPVS netlink writes
	gen      uint64 // the desired state's generation the last reconcile applied
}

// New checks the options and loads the configuration. Nothing in the
// kernel changes until Run.
func New(opts Options) (*Daemon, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.ResyncInterval <= 0 {
		opts.ResyncInterval = 30 * time.Second
	}
	if opts.Node == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("daemon: node name: %w", err)
		}
		opts.Node = h
	}
	d := &Daemon{
		opts:    opts,
		log:     opts.Logger,
		events:  events.NewBus(1000),
		ops:     make(chan op),
		kick:    make(chan struct{}, 1),
		started: time.Now(),
	}
	file, data, _, err := d.load()
	if err != nil {
		return nil, err
	}
	d.fileData = data
	// The state this node last applied, if any, wins over the file.
	if err := d.initialState(file, data); err != nil {
		return nil, err
	}
	if d.creds, err = loadCredentials(d.stateDir(file)); err != nil {
		return nil, err
	}
	return d, nil
}

// warn logs what the configuration's validation accepted but an operator
// should hear.
func (d *Daemon) warn(cfg *config.Config) {
	for _, w := range cfg.Warnings() {
		d.log.Warn("configuration: "+w.Msg, "at", w.String())
	}
}

// fitOverlay merges the saved runtime changes ov over the file. A saved
// change must not keep lbd from starting: when a tenant added at runtime
// no longer fits (the file changed, or this version bounds what an older
// one let through), the tenants added at runtime are taken one by one and
// those that do not fit are left out and named in dropped. Anything else
// that does not fit is an error, as it was.
func fitOverlay(file *config.Config, ov *Overlay, stateDir string) (cfg *config.Config, kept *Overlay, dropped []string, err error) {
	fits := func(o *Overlay) (*config.Config, error) {
		c, err := merge(file, o)
		if err == nil {
			err = runnable(c, stateDir)
		}
		return c, err
	}
	if !ov.structural() {
		return file, ov, nil, nil // the file alone: the tier isolates what cannot run
	}
	if cfg, err = fits(ov); err == nil || len(ov.Tenants) == 0 {
		return cfg, ov, nil, err
	}
	kept = ov.clone()
	kept.Tenants = nil
	for _, t := range ov.Tenants {
		try := kept.clone()
		try.Tenants = append(try.Tenants, t)
		if _, e := fits(try); e != nil {
			dropped = append(dropped, t.Name)
			delete(try.Allow, t.Name)
			kept.Allow = try.Allow
			continue
		}
		kept = try
	}
	c, e := fits(kept)
	if e != nil {
		return nil, nil, nil, err
	}
	return c, kept, dropped, nil
}

// load reads and validates the file and finds this node in it.
func (d *Daemon) load() (*config.Config, []byte, config.Node, error) {
	cfg, data, err := config.LoadData(d.opts.ConfigPath)
	if err != nil {
		return nil, nil, config.Node{}, err
	}
	node, ok := cfg.NodeByName(d.opts.Node)
	if !ok {
		return nil, nil, config.Node{}, fmt.Errorf("daemon: node %q is not in %s (use --node)", d.opts.Node, d.opts.ConfigPath)
	}
	return cfg, data, node, nil
}

func (d *Daemon) stateDir(cfg *config.Config) string {
	if d.opts.StateDir != "" {
		return d.opts.StateDir
	}
	return cfg.Daemon.StateDir
}

// Events is the daemon's event stream (implements api.Backend).
func (d *Daemon) Events() *events.Bus { return d.events }

// Reload re-reads the file: a file whose content changed since this node
// last read or wrote it is applied cluster-wide (like apply -f); an
// unchanged one changes nothing. An invalid file changes nothing and its
// problems are returned.
func (d *Daemon) Reload(ctx context.Context) error { return d.reloadFile(ctx) }

// do runs fn on the loop goroutine and waits for it.
func (d *Daemon) do(ctx context.Context, fn func(ctx context.Context) error) error {
	o := op{fn: fn, done: make(chan error, 1)}
	select {
	case d.ops <- o:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-o.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// overlayNow returns the current runtime changes.
func (d *Daemon) overlayNow() *Overlay {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.overlay
}

// Kick asks for a reconcile soon (coalesced).
func (d *Daemon) Kick() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// Run programs this node's role and keeps it in step until ctx is done.
// Kernel state is left in place on return, so a restart loses no
// connection and no tenant port opens.
func (d *Daemon) Run(ctx context.Context) error {
	d.log.Info("lbd starting", "node", d.node.Name, "role", d.node.Role, "config", d.opts.ConfigPath)
	if err := os.MkdirAll(d.stateDir(d.cfg), 0o700); err != nil {
		return fmt.Errorf("daemon: state dir: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait() // runs after cancel: every worker sees ctx done
	defer cancel()

	d.health = healthcheck.New(healthcheck.Options{
		Logger:       d.log,
		OnTransition: d.onTransition,
	})
	if d.node.Role.IsDirector() {
		wg.Go(func() {
			if err := d.health.Run(ctx); err != nil {
				d.log.Error("health checker stopped", "error", err)
			}
		})
	}
	if err := d.startSubsystems(ctx); err != nil {
		return err
	}
	watch, err := d.startStore(ctx, &wg)
	if err != nil {
		return err
	}
	d.runKVSCluster(ctx, &wg)
	d.runCredentials(ctx, &wg)
	d.handlePanelCalls()
	d.runHistory(ctx, &wg)
	srv, err := d.listenAPI()
	if err != nil {
		return err
	}
	panelLn, panelSrv, err := d.listenPanel()
	if err != nil {
		return err
	}
	// What the Store applied beyond this node's last applied state, if
	// anything, then the first reconcile.
	d.syncStore(ctx)
	if err := d.reconcile(ctx); err != nil {
		d.log.Error("first reconcile incomplete; will retry", "error", err)
	}
	// Answer only once the first reconcile is done, so that the first
	// status an operator sees describes the kernel, not a plan.
	d.serveAPI(ctx, &wg, srv)
	d.servePanel(ctx, &wg, panelLn, panelSrv)
	resync := time.NewTicker(d.opts.ResyncInterval)
	defer resync.Stop()
	for {
		select {
		case <-ctx.Done():
			d.log.Info("lbd stopping; kernel state left in place")
			d.stopSubsystems()
			if err := d.ctl.Close(); err != nil {
				d.log.Error("cluster state close", "error", err)
			}
			return nil
		case o := <-d.ops:
			o.done <- o.fn(ctx)
		case <-watch:
			d.syncStore(ctx)
		case <-d.kick:
			d.reconcileLogged(ctx, "kick")
		case <-resync.C:
			d.reconcileLogged(ctx, "resync")
		case <-d.sub.wake.C:
			d.reconcileLogged(ctx, "drain or retry due")
		}
	}
}

func (d *Daemon) reconcileLogged(ctx context.Context, why string) {
	if err := d.reconcile(ctx); err != nil {
		d.log.Error("reconcile failed; previous state keeps serving", "trigger", why, "error", err)
	}
}

// sameRole refuses a new configuration that changes this node's role: the
// workers of a role are set up at start, so that takes a restart.
func (d *Daemon) sameRole(node config.Node) error {
	if node.Role != d.node.Role {
		return fmt.Errorf("daemon: node %s changes role from %s to %s: restart lbd to apply it", node.Name, d.node.Role, node.Role)
	}
	return nil
}

// onTransition runs on the checker's goroutine: publish and ask for a
// reconcile, which recomputes weights.
func (d *Daemon) onTransition(tr healthcheck.Transition) {
	state := "down"
	if tr.Up {
		state = "up"
	}
	d.events.Publish(events.Health, "real server "+state, "id", tr.ID, "addr", tr.Addr.String(), "reason", tr.Reason)
	d.Kick()
}

// reconcile brings every subsystem of this node's role in step with the
// desired state. Each subsystem applies only the difference; an error in
// one does not stop the others.
func (d *Daemon) reconcile(ctx context.Context) error {
	d.mu.RLock()
	cfg, node, ov, gen, index := d.cfg, d.node, d.overlay, d.gen, d.st.index
	d.mu.RUnlock()
	start := time.Now()
	var errs []error
	if node.Role.IsDirector() {
		if err := d.health.Update(healthTargets(cfg.Services())); err != nil {
			errs = append(errs, err)
		}
		eff := effectiveServices(cfg.Services(), d.health, ov)
		errs = append(errs, d.reconcileDirector(ctx, cfg, node, eff)...)
	}
	if node.Role.IsStorage() {
		errs = append(errs, d.reconcileStorage(ctx, cfg, node)...)
	}
	d.forgetRemovedTenants(cfg)
	err := errors.Join(errs...)
	took := time.Since(start)
	d.mu.Lock()
	d.recon.last, d.recon.took, d.recon.err, d.recon.gen = start, took, err, gen
	d.recon.count++
	msg := "reconciled"
	if err != nil {
		d.recon.failures++
		msg = "reconcile failed"
	}
	d.mu.Unlock()
	d.events.Publish(events.Reconcile, msg, "took", took.String())
	d.noteReconciled(index, err)
	return err
}
