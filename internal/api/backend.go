// Package api is lbd's control API: HTTP/JSON on a unix socket (and
// optionally TCP with a bearer token), served by the daemon and spoken by
// lbctl. The daemon implements Backend; this package owns the wire types.
package api

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/lbd-project/lbd/internal/events"
	"github.com/lbd-project/lbd/pkg/config"
)

// Backend is what the daemon offers the API. Every change goes through the
// daemon's desired state: validated like the file, applied by the same
// reconcile, persisted under the state directory. An invalid change
// changes nothing; a valid one whose kernel apply fails is kept (the
// kernel keeps its previous state where it failed, and lbd retries) and
// the error says so.
type Backend interface {
	// Status is a snapshot of this node.
	Status(ctx context.Context) (Status, error)
	// Events is the live event stream.
	Events() *events.Bus

	// Validate checks a configuration file's content (file names it in
	// errors); a *config.Error lists every problem with file:line.
	Validate(ctx context.Context, yaml []byte, file string) error
	// Diff tells what applying the content would change.
	Diff(ctx context.Context, yaml []byte, file string) (Diff, error)
	// Apply replaces the desired state with the content and returns what
	// changed. Nothing changes on error.
	Apply(ctx context.Context, yaml []byte, file string) (Diff, error)
	// Reload re-reads the daemon's configuration file.
	Reload(ctx context.Context) error

	// AddService adds a plain virtual service.
	AddService(ctx context.Context, vs config.VirtualService) error
	// DeleteService removes a service by name ("tcp/VIP:PORT").
	DeleteService(ctx context.Context, name string) error
	// AddReal adds a real server to a plain virtual service.
	AddReal(ctx context.Context, service string, r config.Real) error
	// DeleteReal removes a real server (drained first, then deleted).
	DeleteReal(ctx context.Context, service string, addr netip.AddrPort) error
	// SetWeight changes a real server's weight; 0 drains it.
	SetWeight(ctx context.Context, service string, addr netip.AddrPort, weight int) error

	// Tenants lists the tenants and their allow-lists.
	Tenants(ctx context.Context) ([]Tenant, error)
	// AddTenant adds a tenant.
	AddTenant(ctx context.Context, t config.Tenant) error
	// DeleteTenant removes a tenant (its port closes first).
	DeleteTenant(ctx context.Context, name string) error
	// ChangeAllow adds, deletes or replaces entries of a tenant's
	// allow-list, effective for the next packet, and returns the new list.
	ChangeAllow(ctx context.Context, tenant string, op AllowOp, entries []netip.Prefix) ([]netip.Prefix, error)

	// KVSStats returns this node's per-tenant KVS counters (storage nodes);
	// tenant "" means all.
	KVSStats(ctx context.Context, tenant string) ([]KVSStats, error)
}

// AllowOp is a change to an allow-list.
type AllowOp string

// The allow-list operations.
const (
	AllowAdd AllowOp = "add"
	AllowDel AllowOp = "del"
	AllowSet AllowOp = "set"
)

// Status is a snapshot of one lbd node.
type Status struct {
	Node       string    `json:"node"`
	Role       string    `json:"role"`
	ConfigFile string    `json:"config_file"`
	Started    time.Time `json:"started"`
	// VRRP is empty on nodes that are not directors or without vrrp.
	VRRP []VRRPStatus `json:"vrrp,omitempty"`
	// IPVSSync lists the IPVS sync daemons lbd runs (vrrp.lvs_sync_daemon),
	// as ipvsadm -Ln --daemon describes them.
	IPVSSync  []string        `json:"ipvs_sync,omitempty"`
	Services  []ServiceStatus `json:"services,omitempty"`
	ACL       []ACLStatus     `json:"acl,omitempty"`
	KVS       []KVSStats      `json:"kvs,omitempty"`
	Reconcile ReconcileStatus `json:"reconcile"`
	// Cluster is where this node is in the replicated state (no members:
	// see GET /v1/cluster/status).
	Cluster *ClusterStatus `json:"cluster,omitempty"`
}

// VRRPStatus is one VRRP instance.
type VRRPStatus struct {
	VRID      int          `json:"vrid"`
	Interface string       `json:"interface"`
	State     string       `json:"state"` // init, backup, master, fault
	Since     time.Time    `json:"since"`
	Priority  int          `json:"priority"`
	VIPs      []netip.Addr `json:"vips"`
	// Transitions counts how often this node became master.
	Transitions uint64 `json:"transitions"`
}

// ServiceStatus is one virtual service, like a block of `ipvsadm -Ln --stats`.
type ServiceStatus struct {
	Name        string        `json:"name"`
	Tenant      string        `json:"tenant,omitempty"`
	Protocol    string        `json:"protocol"`
	VIP         netip.Addr    `json:"vip"`
	Port        uint16        `json:"port"`
	Scheduler   string        `json:"scheduler"`
	Forward     string        `json:"forward"`
	Persistence time.Duration `json:"persistence,omitempty"`
	// InKernel is false when the service is desired but not (yet) programmed.
	InKernel bool         `json:"in_kernel"`
	Stats    Stats        `json:"stats"`
	Reals    []RealStatus `json:"reals"`
}

// RealStatus is one real server of a service.
type RealStatus struct {
	Addr    netip.Addr `json:"addr"`
	Port    uint16     `json:"port"`
	Forward string     `json:"forward"`
	// Weight is the weight in the kernel; ConfigWeight the desired one
	// before health (they differ while a server is down or draining).
	Weight       int  `json:"weight"`
	ConfigWeight int  `json:"config_weight"`
	Draining     bool `json:"draining,omitempty"`
	// Health is up, down or unchecked; HealthSince when it last changed.
	Health      string    `json:"health"`
	HealthSince time.Time `json:"health_since,omitempty"`
	LastError   string    `json:"last_error,omitempty"`
	ActiveConns uint32    `json:"active_conns"`
	InactConns  uint32    `json:"inact_conns"`
	Stats       Stats     `json:"stats"`
}

// Stats are IPVS counters and rates (per second), as ipvsadm --stats/--rate.
type Stats struct {
	Conns    uint64 `json:"conns"`
	InPkts   uint64 `json:"in_pkts"`
	OutPkts  uint64 `json:"out_pkts"`
	InBytes  uint64 `json:"in_bytes"`
	OutBytes uint64 `json:"out_bytes"`
	CPS      uint32 `json:"cps"`
	InPPS    uint32 `json:"in_pps"`
	OutPPS   uint32 `json:"out_pps"`
	InBPS    uint32 `json:"in_bps"`
	OutBPS   uint32 `json:"out_bps"`
}

// ACLStatus is one tenant's allow-list in the kernel.
type ACLStatus struct {
	Tenant  string         `json:"tenant"`
	VIP     netip.Addr     `json:"vip"`
	Port    uint16         `json:"port"`
	Entries []netip.Prefix `json:"entries"`
	// Runtime is true when the list was changed through the API.
	Runtime bool   `json:"runtime,omitempty"`
	Drops   uint64 `json:"drops"`
}

// Tenant is a tenant as lbctl shows it.
type Tenant struct {
	Name    string         `json:"name"`
	VIP     netip.Addr     `json:"vip"`
	Port    uint16         `json:"port"`
	Storage string         `json:"storage"`
	Memory  int64          `json:"memory"`
	Allow   []netip.Prefix `json:"allow"`
	Runtime bool           `json:"runtime_allow,omitempty"`
}

// KVSStats are one tenant's KVS counters on one storage node (what
// flare-status showed).
type KVSStats struct {
	Node        string  `json:"node"`
	Tenant      string  `json:"tenant"`
	Listen      string  `json:"listen"`
	Items       uint64  `json:"items"`
	Bytes       uint64  `json:"bytes"`
	LimitBytes  uint64  `json:"limit_bytes"`
	Hits        uint64  `json:"hits"`
	Misses      uint64  `json:"misses"`
	Evictions   uint64  `json:"evictions"`
	CurrConns   uint64  `json:"curr_connections"`
	TotalConns  uint64  `json:"total_connections"`
	OpsPerSec   float64 `json:"ops_per_sec"`
	StorageKind string  `json:"storage"`
	// Commands counts requests served (memcached and REST).
	Commands uint64 `json:"commands"`
	// Error, set for a tenant this node cannot run, says why; the other
	// fields are then zero.
	Error string `json:"error,omitempty"`
}

// ReconcileStatus tells how the last reconcile went.
type ReconcileStatus struct {
	Last     time.Time     `json:"last"`
	Took     time.Duration `json:"took"`
	Error    string        `json:"error,omitempty"`
	Count    uint64        `json:"count"`
	Failures uint64        `json:"failures"`
	// Generation numbers the desired state (file reloads, applies and
	// runtime changes) that the last reconcile applied.
	Generation uint64 `json:"generation"`
	// IPVSWrites counts netlink writes to IPVS since lbd started: an
	// unchanged reload adds none.
	IPVSWrites uint64 `json:"ipvs_writes"`
	// IPVSError is why IPVS is not being programmed, if it is not.
	IPVSError string `json:"ipvs_error,omitempty"`
}

// Diff is what a change of desired state does.
type Diff struct {
	// Changes are human lines: "+ service tcp/203.0.113.10:13101",
	// "~ real 10.0.1.1:80 weight 1 -> 2", "- tenant user3".
	Changes []Change `json:"changes"`
}

// Change is one line of a Diff.
type Change struct {
	Op     string `json:"op"`     // add, del, change
	Kind   string `json:"kind"`   // service, real, tenant, allow, node, vrrp
	Name   string `json:"name"`   // what
	Detail string `json:"detail"` // e.g. "weight 1 -> 2"
}

// Errors a Backend wraps so the server can pick the status code.
var (
	// ErrNotFound: the service, real server or tenant does not exist (404).
	ErrNotFound = errors.New("not found")
	// ErrConflict: it exists already (409).
	ErrConflict = errors.New("already exists")
	// ErrInvalid: the request is malformed or not allowed (400).
	ErrInvalid = errors.New("invalid request")
)
