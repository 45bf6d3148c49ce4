package config

import (
	"net/netip"
	"time"

	"github.com/lbd-project/lbd/pkg/healthcheck"
)

// Keepalived's defaults, used where the file says nothing. The checker's
// own (pkg/healthcheck) are the single source for the check timings.
const (
	DefaultConnectTimeout   = healthcheck.DefaultConnectTimeout
	DefaultRetry            = healthcheck.DefaultRetry
	DefaultDelayBeforeRetry = healthcheck.DefaultDelayBeforeRetry
	DefaultDelayLoop        = healthcheck.DefaultDelayLoop
	DefaultWeight           = 1
	DefaultScheduler        = "wlc" // ipvsadm's and keepalived's default lb_algo
	DefaultForward          = "dr"
	DefaultProtocol         = "tcp"
	DefaultAdvertInterval   = time.Second
	DefaultPriority         = 100
	DefaultClusterPort      = 7380
	DefaultKVSPeerPort      = 7381
	DefaultCatchupTimeout   = 10 * time.Second
	DefaultGARPMasterDelay  = 5 * time.Second
	DefaultDrainPeriod      = 30 * time.Second
	DefaultKVSMemory        = 64 << 20
	DefaultKVSMaxItemSize   = 1 << 20
	DefaultKVSSyncInterval  = 10 * time.Millisecond
	DefaultKVSSync          = "always" // as lbd kvs: no acknowledged write is lost
	DefaultKVSMaxConns      = 1024     // memcached -c
	DefaultStateDir         = "/var/lib/lbd"
	DefaultSocket           = "/run/lbd/lbd.sock"
)

// Schedulers lists the IPVS schedulers lbd accepts.
var Schedulers = []string{"rr", "wrr", "lc", "wlc", "sh", "dh", "mh", "sed", "nq"}

// Forwards lists the forwarding methods (keepalived lb_kind).
var Forwards = []string{"dr", "nat", "tun"}

// HealthSpec is a fully resolved health check.
type HealthSpec struct {
	Type             string // tcp, http, memcached, none
	ConnectTimeout   time.Duration
	Retry            int
	DelayBeforeRetry time.Duration
	DelayLoop        time.Duration
	Warmup           time.Duration
	Alpha            bool
	InhibitOnFailure bool
	ConnectPort      int
	Path             string
	StatusCodes      []int // empty: any 2xx
	Digest           string
	Host             string
}

// ResolvedReal is a real server with every default applied.
type ResolvedReal struct {
	Addr   netip.Addr
	Port   uint16
	Weight int
	// Forward overrides the service's forwarding method ("" keeps it;
	// set for a sorry server).
	Forward string
	// Node names the storage node behind this address, if any.
	Node string
}

// ResolvedService is a virtual service with every default applied: what a
// director programs into IPVS and checks.
type ResolvedService struct {
	// Name is the tenant's name, or proto/vip:port for a plain service.
	Name string
	// Tenant is the owning tenant, "" for a plain virtual service.
	Tenant string
	// Part is which of a tenant's services this is: "" for its memcached
	// port, PartREST for its REST API.
	Part      string
	VIP       netip.Addr
	Port      uint16
	Protocol  string // tcp or udp
	Scheduler string
	// SchedulerFlags are as written, checked against the scheduler.
	SchedulerFlags []string
	Forward        string // dr, nat or tun
	Persistence    time.Duration
	Reals          []ResolvedReal
	// Sorry is the sorry server (nil: none); its Forward is set.
	Sorry *ResolvedReal
	// SorryInhibit keeps the sorry server at weight 0 while unused.
	SorryInhibit bool
	// Quorum, Hysteresis, QuorumUp and QuorumDown are as in the file,
	// with the default quorum 1.
	Quorum, Hysteresis   int
	QuorumUp, QuorumDown string
	Health               HealthSpec
	// Allow is the tenant's allow-list; nil for a plain virtual service
	// (not fenced). An empty, non-nil list admits nobody.
	Allow []netip.Prefix
	// Line is where the service is defined in the file.
	Line int
}

// PartREST marks a tenant's REST API service (ResolvedService.Part).
const PartREST = "rest"

// Fence is the name of the allow-list fence of a tenant's service: the
// tenant's name for its memcached port, "NAME+PART" for its other ports
// (no tenant's name holds a '+').
func (s ResolvedService) Fence() string {
	if s.Part == "" {
		return s.Tenant
	}
	return s.Tenant + "+" + s.Part
}

// Services returns every virtual service of the cluster, tenants first, in
// file order.
func (c *Config) Services() []ResolvedService { return c.services }

// NodeByName returns the node called name.
func (c *Config) NodeByName(name string) (Node, bool) {
	for _, n := range c.Nodes {
		if n.Name == name {
			return n, true
		}
	}
	return Node{}, false
}

// Directors returns the nodes that act as directors, in file order.
func (c *Config) Directors() []Node { return c.nodesWhere(Role.IsDirector) }

// StorageNodes returns the nodes that serve the KVS, in file order.
func (c *Config) StorageNodes() []Node { return c.nodesWhere(Role.IsStorage) }

func (c *Config) nodesWhere(f func(Role) bool) []Node {
	var out []Node
	for _, n := range c.Nodes {
		if f(n.Role) {
			out = append(out, n)
		}
	}
	return out
}

// VIPs returns every service VIP of the cluster, without duplicates, in
// file order: the addresses a storage node puts on lo for DR.
func (c *Config) VIPs() []netip.Addr {
	seen := map[netip.Addr]bool{}
	var out []netip.Addr
	for _, s := range c.services {
		if !seen[s.VIP] {
			seen[s.VIP] = true
			out = append(out, s.VIP)
		}
	}
	return out
}

// VRRPVIPs returns the parsed VRRP VIPs (nil when VRRP is off).
func (c *Config) VRRPVIPs() []netip.Addr {
	if c.VRRP == nil {
		return nil
	}
	out := make([]netip.Addr, 0, len(c.VRRP.VIPs))
	for _, s := range c.VRRP.VIPs {
		if a, err := netip.ParseAddr(s); err == nil {
			out = append(out, a)
		}
	}
	return out
}

// ParseAllow parses allow-list entries as written in the file or sent to
// the API: addresses (as /32 or /128) and networks in CIDR notation.
// IPv4-mapped IPv6 entries become IPv4. An entry with host bits set is
// refused ("10.0.0.1/8" is almost always a typo), as is one listed twice.
func ParseAllow(entries []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(entries))
	seen := map[netip.Prefix]bool{}
	for _, e := range entries {
		p, err := parsePrefix(e)
		if err != nil {
			return nil, err
		}
		if seen[p] {
			return nil, &allowError{entry: e, msg: "listed twice"}
		}
		seen[p] = true
		out = append(out, p)
	}
	return out, nil
}

type allowError struct{ entry, msg string }

func (e *allowError) Error() string { return "allow " + quote(e.entry) + ": " + e.msg }

// SyncID is the first director's IPVS sync id: lvs_sync_daemon.syncid,
// else the virtual_router_id (keepalived's default too).
func (v *VRRP) SyncID() int {
	if v.LVSSyncDaemon != nil && v.LVSSyncDaemon.SyncID != nil {
		return *v.LVSSyncDaemon.SyncID
	}
	return v.VirtualRouterID
}
