package realserver

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Options configures a RealServer.
type Options struct {
	// StateDir holds the state file recording what lbd changed. Required;
	// one directory per network namespace managed.
	StateDir string
	// Logger receives every change made. Nil discards logs.
	Logger *slog.Logger
	// Netns is the path of the network namespace to work in, e.g.
	// /run/netns/NAME or /proc/PID/ns/net. Empty means the caller's.
	Netns string
}

// RealServer puts VIPs on lo and sets the ARP sysctls for DR, and undoes
// exactly what it did. Its methods are safe for concurrent use.
type RealServer struct {
	dir string
	log *slog.Logger
	lo  loopback
	sys sysctls

	closeFn func()

	mu sync.Mutex
	st *state
}

// New opens the namespace and loads the state left by a previous instance,
// which it adopts: what that instance added is this one's to remove.
func New(opts Options) (*RealServer, error) {
	if opts.StateDir == "" {
		return nil, errors.New("realserver: no state directory")
	}
	ns := netns.None()
	if opts.Netns != "" {
		var err error
		if ns, err = netns.GetFromPath(opts.Netns); err != nil {
			return nil, fmt.Errorf("realserver: open network namespace %s: %w", opts.Netns, err)
		}
	}
	var h *netlink.Handle
	var err error
	if ns.IsOpen() {
		h, err = netlink.NewHandleAt(ns)
	} else {
		h, err = netlink.NewHandle()
	}
	if err != nil {
		ns.Close()
		return nil, fmt.Errorf("realserver: open netlink in %q: %w", opts.Netns, err)
	}
	r, err := newWith(opts, newNetlinkLo(h), procSys{root: "/proc/sys", ns: ns})
	if err != nil {
		h.Close()
		ns.Close()
		return nil, err
	}
	r.closeFn = func() {
		h.Close()
		ns.Close()
	}
	return r, nil
}

// newWith builds a RealServer on the given lo and sysctls (fakes in tests).
func newWith(opts Options, lo loopback, sys sysctls) (*RealServer, error) {
	st, err := loadState(opts.StateDir)
	if err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.Netns != "" {
		log = log.With("netns", opts.Netns)
	}
	if !st.empty() {
		log.Info("realserver: adopted previous state",
			"addresses", len(st.Addresses), "sysctls", len(st.Sysctls))
	}
	return &RealServer{dir: opts.StateDir, log: log, lo: lo, sys: sys, st: st}, nil
}

// Close releases the namespace and netlink handle. It changes nothing on
// the host: the VIPs stay so that a restarted lbd loses no connection.
func (r *RealServer) Close() error {
	if r.closeFn != nil {
		r.closeFn()
		r.closeFn = nil
	}
	return nil
}

// Owned returns the addresses lbd added to lo and the sysctl keys it
// changed, as recorded in its state.
func (r *RealServer) Owned() (addrs []netip.Prefix, sysctlKeys []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	addrs = slices.Clone(r.st.Addresses)
	for k := range r.st.Sysctls {
		sysctlKeys = append(sysctlKeys, k)
	}
	slices.Sort(sysctlKeys)
	return addrs, sysctlKeys
}

// Apply makes the namespace a DR real server for vips: each VIP on lo as a
// host prefix, arp_ignore=1 and arp_announce=2 on all, lo and ifaces (the
// interfaces facing the director). It converges from whatever it finds:
// VIPs and interfaces that were applied before but are no longer listed are
// undone. Sysctls are set before addresses are added, so a VIP is never on
// lo while the host would still answer ARP for it. With no VIPs, Apply is
// Remove.
func (r *RealServer) Apply(ctx context.Context, vips []netip.Addr, ifaces []string) error {
	if len(vips) == 0 {
		return r.Remove(ctx)
	}
	want, err := wantPrefixes(vips)
	if err != nil {
		return err
	}
	keys, err := wantSysctls(ifaces)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()

	for _, k := range keys {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("realserver: apply: %w", err)
		}
		if err := r.setSysctl(k.key, k.value); err != nil {
			return err
		}
	}
	for key := range r.st.Sysctls {
		if !slices.ContainsFunc(keys, func(k sysctlKey) bool { return k.key == key }) {
			if err := r.restoreSysctl(key); err != nil {
				return err
			}
		}
	}

	have, err := r.lo.Addrs()
	if err != nil {
		return err
	}
	for _, p := range want {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("realserver: apply: %w", err)
		}
		if err := r.addAddr(p, have); err != nil {
			return err
		}
	}
	for _, p := range slices.Clone(r.st.Addresses) {
		if !slices.Contains(want, p) {
			if err := r.delAddr(p); err != nil {
				return err
			}
		}
	}
	return nil
}

// Remove deletes the addresses lbd added and puts back the sysctl values it
// found, unless someone changed them since. Addresses are deleted first, so
// no VIP is left on lo once ARP is answered normally again. It keeps going
// after an error and reports them all; what could not be undone stays
// recorded for the next attempt.
func (r *RealServer) Remove(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs []error
	for _, p := range slices.Clone(r.st.Addresses) {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("realserver: remove: %w", err)
		}
		errs = append(errs, r.delAddr(p))
	}
	keys := make([]string, 0, len(r.st.Sysctls))
	for k := range r.st.Sysctls {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		errs = append(errs, r.restoreSysctl(k))
	}
	return errors.Join(errs...)
}

// addAddr puts p on lo unless the IP is already there (lbd's from an
// earlier run, or the operator's, which lbd then leaves alone). The state
// is saved before the address is added, so a crash in between cannot leave
// an address nobody owns.
func (r *RealServer) addAddr(p netip.Prefix, have []netip.Prefix) error {
	if slices.ContainsFunc(have, func(q netip.Prefix) bool { return q.Addr() == p.Addr() }) {
		if !r.st.ownsAddr(p) {
			r.log.Debug("realserver: VIP already on lo, not ours", "addr", p)
		}
		return nil
	}
	if !r.st.ownsAddr(p) {
		r.st.addAddr(p)
		if err := r.st.save(r.dir); err != nil {
			r.st.forgetAddr(p)
			return err
		}
	}
	if err := r.lo.Add(p); err != nil {
		return err
	}
	r.log.Info("realserver: added VIP to lo", "addr", p)
	return nil
}

// delAddr deletes an address lbd added and forgets it.
func (r *RealServer) delAddr(p netip.Prefix) error {
	if err := r.lo.Del(p); err != nil {
		return err
	}
	r.st.forgetAddr(p)
	if err := r.st.save(r.dir); err != nil {
		return err
	}
	r.log.Info("realserver: removed VIP from lo", "addr", p)
	return nil
}

// setSysctl makes key hold value, recording the value it found first. A
// value that already satisfies DR is left alone and not recorded.
func (r *RealServer) setSysctl(key, value string) error {
	cur, err := r.sys.Get(key)
	if err != nil {
		return err
	}
	if cur == value || satisfies(key, cur) {
		return nil
	}
	if _, owned := r.st.Sysctls[key]; !owned {
		// Record before writing: after a crash the old value is known.
		r.st.Sysctls[key] = sysctlChange{Prev: cur, Set: value}
		if err := r.st.save(r.dir); err != nil {
			delete(r.st.Sysctls, key)
			return err
		}
	}
	if err := r.sys.Set(key, value); err != nil {
		return err
	}
	r.log.Info("realserver: set sysctl", "key", key, "value", value, "was", cur)
	return nil
}

// restoreSysctl puts back the value lbd found, if the sysctl still holds
// the value lbd wrote (otherwise someone else changed it since, and it is
// theirs now), and forgets it.
func (r *RealServer) restoreSysctl(key string) error {
	ch := r.st.Sysctls[key]
	cur, err := r.sys.Get(key)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// The interface is gone; nothing to restore.
	case err != nil:
		return err
	case cur != ch.Set:
		r.log.Info("realserver: sysctl changed by someone else, leaving it",
			"key", key, "value", cur, "lbd_set", ch.Set)
	default:
		if err := r.sys.Set(key, ch.Prev); err != nil {
			return err
		}
		r.log.Info("realserver: restored sysctl", "key", key, "value", ch.Prev)
	}
	delete(r.st.Sysctls, key)
	return r.st.save(r.dir)
}

// wantPrefixes turns VIPs into host prefixes, deduplicated.
func wantPrefixes(vips []netip.Addr) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(vips))
	for _, v := range vips {
		if !v.IsValid() || v.IsUnspecified() || v.IsLoopback() || v.IsMulticast() {
			return nil, fmt.Errorf("realserver: %v is not a usable VIP", v)
		}
		v = v.Unmap()
		p := netip.PrefixFrom(v, v.BitLen())
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out, nil
}

// sysctlKey is one sysctl to set.
type sysctlKey struct{ key, value string }

const (
	arpIgnore   = "arp_ignore"
	arpAnnounce = "arp_announce"
)

// wantSysctls lists the sysctls for all, lo and ifaces.
func wantSysctls(ifaces []string) ([]sysctlKey, error) {
	names := []string{"all", "lo"}
	for _, n := range ifaces {
		if !validIface(n) {
			return nil, fmt.Errorf("realserver: bad interface name %q", n)
		}
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	var out []sysctlKey
	for _, n := range names {
		out = append(out,
			sysctlKey{"net/ipv4/conf/" + n + "/" + arpIgnore, "1"},
			sysctlKey{"net/ipv4/conf/" + n + "/" + arpAnnounce, "2"})
	}
	return out, nil
}

// validIface accepts what the kernel accepts as an interface name, which
// also keeps the name from escaping /proc/sys/net/ipv4/conf.
func validIface(n string) bool {
	if n == "" || len(n) > 15 || n == "." || n == ".." {
		return false
	}
	return !strings.ContainsAny(n, "/: \t\n")
}

// satisfies reports whether a value found in a sysctl already gives DR what
// it needs, so lbd need not touch it: arp_ignore 2 (same subnet too) and 8
// (never reply) are stricter than 1.
func satisfies(key, cur string) bool {
	if strings.HasSuffix(key, "/"+arpIgnore) {
		return cur == "1" || cur == "2" || cur == "8"
	}
	return false
}
