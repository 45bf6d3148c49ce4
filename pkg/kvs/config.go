package kvs

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/lbd-project/lbd/internal/sysmem"
)

// StoreKind selects a tenant's storage.
type StoreKind string

const (
	// StoreMemory keeps items in memory with LRU eviction (memcached).
	StoreMemory StoreKind = "memory"
	// StoreDurable keeps items in a Pebble database in the tenant's Dir.
	StoreDurable StoreKind = "durable"
)

// SyncMode is the durable store's write-ahead-log sync policy.
type SyncMode string

const (
	// SyncAlways syncs the log before a write is acknowledged. Concurrent
	// writers share one fsync (Pebble's commit pipeline).
	SyncAlways SyncMode = "always"
	// SyncGroup acknowledges writes at once and syncs the log one
	// SyncInterval after the first unsynced write: a crash (kill -9 or
	// power loss) loses the writes acknowledged within SyncInterval plus
	// the duration of one sync (two, when syncs outlast the interval)
	// before it.
	SyncGroup SyncMode = "group"
)

// Defaults for zero fields of TenantConfig.
const (
	DefaultMemoryLimit  = 64 << 20
	DefaultMaxConns     = 4096
	DefaultSyncInterval = 10 * time.Millisecond
	DefaultMaxGetLine   = 1 << 20
)

// TenantConfig describes one tenant of the tier.
type TenantConfig struct {
	// Name identifies the tenant; unique within a Tier.
	Name string
	// Listen is the TCP address (host:port) the tenant is served on.
	Listen string
	// Store is the storage kind; memory if empty.
	Store StoreKind
	// MemoryLimit is the memory budget in bytes: the item bytes of a
	// memory store (like memcached -m), the caches of a durable store.
	MemoryLimit int64
	// Dir is the data directory of a durable store; required for it and
	// never shared with another tenant.
	Dir string
	// Sync is the durable store's sync policy; always if empty.
	Sync SyncMode
	// SyncInterval is the group-commit period for SyncGroup.
	SyncInterval time.Duration
	// MaxItemSize is the largest item (key, value and header) accepted,
	// like memcached -I; 1 MiB if zero.
	MaxItemSize int
	// MaxConns caps concurrent connections; further ones are closed.
	MaxConns int
	// IdleTimeout closes connections idle that long; 0 disables it, as in
	// memcached.
	IdleTimeout time.Duration
	// MaxGetLine bounds a multi-get request line; longer ones close the
	// connection. Other commands are bounded by the 16 KiB read buffer.
	MaxGetLine int
}

// withDefaults fills zero fields.
func (c TenantConfig) withDefaults() TenantConfig {
	c.Store = cmp.Or(c.Store, StoreMemory)
	c.MemoryLimit = cmp.Or(c.MemoryLimit, DefaultMemoryLimit)
	c.Sync = cmp.Or(c.Sync, SyncAlways)
	c.SyncInterval = cmp.Or(c.SyncInterval, DefaultSyncInterval)
	c.MaxItemSize = cmp.Or(c.MaxItemSize, DefaultMaxItemSize)
	c.MaxConns = cmp.Or(c.MaxConns, DefaultMaxConns)
	c.MaxGetLine = cmp.Or(c.MaxGetLine, DefaultMaxGetLine)
	if c.Dir != "" {
		c.Dir = filepath.Clean(c.Dir)
		if abs, err := filepath.Abs(c.Dir); err == nil {
			c.Dir = abs
		}
	}
	return c
}

// Validate checks one tenant's configuration on its own.
func (c TenantConfig) Validate() error { return c.withDefaults().validate() }

// validate is Validate on a config with its defaults filled.
func (c TenantConfig) validate() error {
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("name is empty"))
	}
	if _, _, err := splitListen(c.Listen); err != nil {
		errs = append(errs, err)
	}
	switch c.Store {
	case StoreMemory:
	case StoreDurable:
		if c.Dir == "" {
			errs = append(errs, errors.New("durable store needs a dir"))
		}
	default:
		errs = append(errs, fmt.Errorf("unknown store %q (want memory or durable)", c.Store))
	}
	switch c.Sync {
	case SyncAlways, SyncGroup:
	default:
		errs = append(errs, fmt.Errorf("unknown sync %q (want always or group)", c.Sync))
	}
	if c.MemoryLimit < 1<<20 {
		errs = append(errs, fmt.Errorf("memory limit %d below 1 MiB", c.MemoryLimit))
	}
	if err := checkMemoryLimit(c.MemoryLimit); err != nil {
		errs = append(errs, err)
	}
	if c.SyncInterval < 0 || c.IdleTimeout < 0 {
		errs = append(errs, errors.New("negative duration"))
	}
	if c.MaxItemSize < 1024 || int64(c.MaxItemSize) > c.MemoryLimit {
		errs = append(errs, fmt.Errorf("max item size %d outside [1 KiB, memory limit]", c.MaxItemSize))
	}
	if c.MaxConns < 1 {
		errs = append(errs, fmt.Errorf("max conns %d below 1", c.MaxConns))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("kvs: tenant %q: %w", c.Name, err)
	}
	return nil
}

// MaxMemoryLimit is the largest memory limit of a store on any machine; on
// a machine that tells its size, the bound is its physical memory.
const MaxMemoryLimit = 16 << 40

// checkMemoryLimit refuses a memory limit beyond this machine's memory:
// a store that could never hold it would only end out of memory.
func checkMemoryLimit(limit int64) error {
	most := int64(MaxMemoryLimit)
	if total := sysmem.Total(); total > 0 && total < most {
		most = total
	}
	if limit > most {
		return fmt.Errorf("memory limit %d bytes is more than this machine's memory (%d bytes)", limit, most)
	}
	return nil
}

// splitListen parses host:port; the port must be explicit (0 lets the
// kernel choose, for tests).
func splitListen(addr string) (net.IP, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, 0, fmt.Errorf("listen %q: %w", addr, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return nil, 0, fmt.Errorf("listen %q: bad port", addr)
	}
	if host == "" {
		return nil, port, nil
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return nil, 0, fmt.Errorf("listen %q: host must be an IP address", addr)
	}
	if ip.IsUnspecified() {
		return nil, port, nil
	}
	return ip, port, nil
}

// listenConflict reports whether two listen addresses would collide: the
// same port with the same or a wildcard host. Port 0 never collides.
func listenConflict(a, b string) bool {
	ipa, pa, erra := splitListen(a)
	ipb, pb, errb := splitListen(b)
	if erra != nil || errb != nil || pa != pb || pa == 0 {
		return false
	}
	return ipa == nil || ipb == nil || ipa.Equal(ipb)
}

// dirConflict reports whether two data directories overlap (equal or one
// inside the other).
func dirConflict(a, b string) bool {
	if a == "" || b == "" {
		return false
	}
	if a == b {
		return true
	}
	in := func(x, y string) bool {
		rel, err := filepath.Rel(y, x)
		return err == nil && rel != ".." && !filepath.IsAbs(rel) && (len(rel) < 3 || rel[:3] != "../")
	}
	return in(a, b) || in(b, a)
}

// ValidateTenants checks a whole tenant list: each tenant, and that no two
// share a name, a port or a data directory.
func ValidateTenants(tenants []TenantConfig) error {
	var errs []error
	// Defaults filled once per tenant, not once per pair (filling one
	// resolves its dir against the working directory).
	all := make([]TenantConfig, len(tenants))
	for i := range tenants {
		a := tenants[i].withDefaults()
		all[i] = a
		if err := a.validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		for j, b := range all[:i] {
			if a.Name == b.Name {
				errs = append(errs, fmt.Errorf("kvs: tenants %d and %d are both named %q", j, i, a.Name))
			}
			if listenConflict(a.Listen, b.Listen) {
				errs = append(errs, fmt.Errorf("kvs: tenants %q and %q both listen on %s / %s", b.Name, a.Name, b.Listen, a.Listen))
			}
			if a.Store == StoreDurable && b.Store == StoreDurable && dirConflict(a.Dir, b.Dir) {
				errs = append(errs, fmt.Errorf("kvs: tenants %q and %q share data dir %s / %s", b.Name, a.Name, b.Dir, a.Dir))
			}
		}
	}
	return errors.Join(errs...)
}
