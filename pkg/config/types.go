// Package config reads lbd's YAML file: one file describes a whole cluster
// (directors, storage nodes, VRRP, tenants and plain virtual services).
//
// Decoding is strict (an unknown key is an error) and every problem is
// reported with file:line, all at once, like `keepalived -t`. Defaults follow
// keepalived where keepalived has one.
package config

import "go.yaml.in/yaml/v3"

// Config is a decoded and validated lbd configuration file.
type Config struct {
	// Nodes lists every host of the cluster; `lbd --node NAME` picks one.
	Nodes []Node `yaml:"nodes,omitempty"`
	// VRRP describes the failover of the VIPs between the directors.
	VRRP *VRRP `yaml:"vrrp,omitempty"`
	// Defaults apply to every tenant and virtual service that does not
	// override them.
	Defaults Defaults `yaml:"defaults,omitempty"`
	// Tenants are the KVS customers: a port on a VIP, an allow-list, a store.
	Tenants []Tenant `yaml:"tenants,omitempty"`
	// VirtualServices are plain L4 services not tied to a tenant.
	VirtualServices []VirtualService `yaml:"virtual_services,omitempty"`
	// Daemon holds process-level settings.
	Daemon Daemon `yaml:"daemon,omitempty"`
	// Cluster replicates the desired state between the nodes (raft over
	// mutual TLS). Without it the node keeps its state to itself.
	Cluster *Cluster `yaml:"cluster,omitempty"`
	// Panel is the web control panel; off unless listen is set.
	Panel Panel `yaml:"panel,omitempty"`

	// File is the path the configuration was read from ("" for in-memory).
	File string `yaml:"-"`
	// root is the parsed document, kept to map paths to line numbers.
	root *yaml.Node
	// services is every virtual service, resolved by validation.
	services []ResolvedService
	// warnings are what validation accepted but an operator should hear.
	warnings []Problem
}

// Role is what a node does in the cluster.
type Role string

// The roles a node can take. A small install can be both.
const (
	RoleDirector Role = "director"
	RoleStorage  Role = "storage"
	RoleBoth     Role = "both"
)

// IsDirector reports whether the role programs IPVS, ACLs and VRRP.
func (r Role) IsDirector() bool { return r == RoleDirector || r == RoleBoth }

// IsStorage reports whether the role serves the KVS and the DR real-server side.
func (r Role) IsStorage() bool { return r == RoleStorage || r == RoleBoth }

// Node is one host of the cluster.
type Node struct {
	// Name identifies the node (`lbd --node NAME`, default the hostname).
	Name string `yaml:"name,omitempty"`
	// Role is director, storage or both.
	Role Role `yaml:"role,omitempty"`
	// Address is the node's own address: the real-server address of a
	// storage node, the VRRP source/unicast peer address of a director.
	Address string `yaml:"address,omitempty"`
	// Interface faces the clients (directors) or the directors (storage).
	Interface string `yaml:"interface,omitempty"`
	// Priority is the director's VRRP priority (1-255, 255 = address owner).
	Priority int `yaml:"priority,omitempty"`
	// ClusterAddress overrides where the other nodes reach this node's
	// cluster listener (host:port; default address:cluster.port), for
	// setups where nodes share an address.
	ClusterAddress string `yaml:"cluster_address,omitempty"`
}

// VRRP is the failover of the VIPs between the directors (VRRPv3, RFC 5798).
type VRRP struct {
	// VirtualRouterID is the VRID, 1-255, shared by both directors.
	VirtualRouterID int `yaml:"virtual_router_id,omitempty"`
	// AdvertInterval is how often the master advertises (keepalived's
	// advert_int); a multiple of 10ms up to 40.95s. Default 1s.
	AdvertInterval Duration `yaml:"advert_interval,omitempty"`
	// VIPs are the addresses that move with the master.
	VIPs []string `yaml:"vips,omitempty"`
	// NoPreempt keeps a recovered higher-priority node in backup.
	NoPreempt bool `yaml:"nopreempt,omitempty"`
	// PreemptDelay delays preemption after start (keepalived preempt_delay).
	PreemptDelay Duration `yaml:"preempt_delay,omitempty"`
	// Unicast sends adverts to the other directors' addresses instead of
	// the multicast group, and accepts adverts only from them.
	Unicast bool `yaml:"unicast,omitempty"`
	// GARPMasterDelay is the delay before the second burst of gratuitous
	// ARPs after becoming master (keepalived garp_master_delay, default 5s).
	GARPMasterDelay *Duration `yaml:"garp_master_delay,omitempty"`
	// GARPMasterRefresh repeats gratuitous ARPs while master (0 = off).
	GARPMasterRefresh Duration `yaml:"garp_master_refresh,omitempty"`
	// TrackReals lowers the priority by this much while no real server of
	// any service is up (like a keepalived track_script weight), so a
	// director that cannot reach its backends hands the VIPs over.
	TrackReals int `yaml:"track_reals,omitempty"`
	// TrackInterfaces puts the instance in FAULT when any of them is down.
	TrackInterfaces []string `yaml:"track_interface,omitempty"`
	// NotifyMaster, NotifyBackup and NotifyFault are scripts run on the
	// corresponding state change.
	NotifyMaster string `yaml:"notify_master,omitempty"`
	NotifyBackup string `yaml:"notify_backup,omitempty"`
	NotifyFault  string `yaml:"notify_fault,omitempty"`
	// LVSSyncDaemon runs the kernel's IPVS connection synchronisation
	// between the directors (keepalived's lvs_sync_daemon), so that a
	// failover keeps the established connections.
	LVSSyncDaemon *LVSSyncDaemon `yaml:"lvs_sync_daemon,omitempty"`
}

// LVSSyncDaemon configures the kernel's IPVS sync daemons. Every director
// runs both: a master daemon that sends the connections it schedules under
// its own sync id (syncid for the first director in the file, syncid+1 for
// the second, ...), and a backup daemon that receives the other director's,
// so both directors know every connection whichever holds the VIPs, on
// failover and on failback alike.
type LVSSyncDaemon struct {
	// Interface carries the sync messages; default the node's interface.
	Interface string `yaml:"interface,omitempty"`
	// SyncID is the first director's sync id (0-255); default the
	// virtual_router_id.
	SyncID *int `yaml:"syncid,omitempty"`
	// Version is the sync protocol (sysctl net.ipv4.vs.sync_version): 1
	// (the kernel's default since 2.6.39) or 0 for older peers. Unset
	// leaves the sysctl alone.
	Version *int `yaml:"version,omitempty"`
	// Group is the multicast group (default 224.0.0.81; ff02::81 when the
	// VIPs are IPv6).
	Group string `yaml:"group,omitempty"`
	// Port is the UDP port (default 8848).
	Port int `yaml:"port,omitempty"`
	// TTL of the multicast packets (default 1).
	TTL int `yaml:"ttl,omitempty"`
	// MaxLen caps the payload of a sync message (default: from the MTU).
	MaxLen int `yaml:"maxlen,omitempty"`
}

// Defaults apply where a tenant or virtual service says nothing.
type Defaults struct {
	// Health is the default health check.
	Health Health `yaml:"health,omitempty"`
	// Scheduler is the default IPVS scheduler (keepalived lb_algo).
	Scheduler string `yaml:"scheduler,omitempty"`
	// Forward is the default forwarding method (keepalived lb_kind).
	Forward string `yaml:"forward,omitempty"`
	// DrainPeriod is how long a removed real server keeps weight 0 before
	// it is deleted, so established connections finish. Default 30s.
	DrainPeriod *Duration `yaml:"drain_period,omitempty"`
	// ACLAction is what a source outside a tenant's allow-list gets: drop
	// (default: silence) or reject (a TCP reset / ICMP unreachable).
	ACLAction string `yaml:"acl_action,omitempty"`
	// StorageACL makes storage nodes enforce the tenants' allow-lists too,
	// as a second line behind the directors (the directors' own addresses
	// are always admitted, for health checks). Default true: the lists
	// are replicated to every node. Read it with StorageACLOn.
	StorageACL *bool `yaml:"storage_acl,omitempty"`
}

// Health is a health check as written in the file; unset fields inherit.
type Health struct {
	// Type is tcp (TCP_CHECK), http (HTTP_GET), memcached, or none.
	Type string `yaml:"type,omitempty"`
	// ConnectTimeout bounds one attempt (keepalived default 5s).
	ConnectTimeout *Duration `yaml:"connect_timeout,omitempty"`
	// Retry is how many more attempts fail before a server is down (default 1).
	Retry *int `yaml:"retry,omitempty"`
	// DelayBeforeRetry spaces those attempts (default 1s).
	DelayBeforeRetry *Duration `yaml:"delay_before_retry,omitempty"`
	// DelayLoop is the interval between checks (default 60s).
	DelayLoop *Duration `yaml:"delay_loop,omitempty"`
	// Warmup spreads the first checks over a random delay up to this
	// (default delay_loop, as in keepalived; 0 checks at once).
	Warmup *Duration `yaml:"warmup,omitempty"`
	// Alpha starts servers down until a check proves them up.
	Alpha *bool `yaml:"alpha,omitempty"`
	// InhibitOnFailure sets a failed server's weight to 0 instead of
	// removing it (keepalived inhibit_on_failure).
	InhibitOnFailure *bool `yaml:"inhibit_on_failure,omitempty"`
	// ConnectPort overrides the port probed (keepalived connect_port).
	ConnectPort int `yaml:"connect_port,omitempty"`
	// Path is the HTTP_GET url path.
	Path string `yaml:"path,omitempty"`
	// StatusCode lists the HTTP status codes that mean healthy (default any 2xx).
	StatusCode []int `yaml:"status_code,omitempty"`
	// Digest is the expected MD5 hex digest of the HTTP body.
	Digest string `yaml:"digest,omitempty"`
	// Host is the HTTP Host header (virtualhost).
	Host string `yaml:"host,omitempty"`
}

// Service is where clients connect and how IPVS balances them: a
// tenant's service, and the first part of a virtual service.
type Service struct {
	// VIP is the virtual address (IPv4 or IPv6).
	VIP string `yaml:"vip,omitempty"`
	// Port is the virtual port.
	Port int `yaml:"port,omitempty"`
	// Protocol is tcp (default) or udp; a tenant's is tcp.
	Protocol string `yaml:"protocol,omitempty"`
	// Scheduler is IPVS's (keepalived's lb_algo); default defaults.scheduler.
	Scheduler string `yaml:"scheduler,omitempty"`
	// Forward is dr, nat or tun (lb_kind); default defaults.forward.
	Forward string `yaml:"forward,omitempty"`
	// SchedulerFlags are the scheduler's flags, as keepalived spells
	// them: sh-fallback and sh-port (scheduler sh), mh-fallback and
	// mh-port (mh), or flag-1, flag-2, flag-3. With a fallback, a client
	// hashed to a real server that is down goes to another one.
	SchedulerFlags []string `yaml:"scheduler_flags,omitempty"`
	// SorryServer takes the new connections while the service has lost
	// its quorum (by default: while no real server is up), as keepalived's
	// sorry_server.
	SorryServer *SorryServer `yaml:"sorry_server,omitempty"`
	// SorryServerInhibit keeps the sorry server in IPVS at weight 0 while
	// it is not needed, instead of removing it (sorry_server_inhibit).
	SorryServerInhibit bool `yaml:"sorry_server_inhibit,omitempty"`
	// SorryServerLVSMethod forwards to the sorry server with dr, nat or
	// tun (sorry_server_lvs_method); default the service's forward.
	SorryServerLVSMethod string `yaml:"sorry_server_lvs_method,omitempty"`
	// Quorum is the sum of the weights of the real servers that are up
	// below which the service has lost its quorum (default 1: none up).
	Quorum *int `yaml:"quorum,omitempty"`
	// Hysteresis widens the quorum: it is lost below quorum-hysteresis
	// and gained again at quorum+hysteresis.
	Hysteresis int `yaml:"hysteresis,omitempty"`
	// QuorumUp and QuorumDown are scripts (run by /bin/sh -c) run once
	// each time the quorum is gained or lost.
	QuorumUp   string `yaml:"quorum_up,omitempty"`
	QuorumDown string `yaml:"quorum_down,omitempty"`
	// PersistenceTimeout keeps a client on one real server this long
	// (persistence_timeout); 0 is off.
	PersistenceTimeout Duration `yaml:"persistence_timeout,omitempty"`
}

// SorryServer is where a service without quorum sends new connections.
type SorryServer struct {
	Address string `yaml:"address,omitempty"`
	// Port defaults to the service's port (and must equal it for dr/tun).
	Port int `yaml:"port,omitempty"`
}

// Tenant is one KVS customer: a port on a VIP, balanced to the storage
// nodes, fenced by an allow-list, served by its own store.
type Tenant struct {
	// Name identifies the tenant (letters, digits, '-', '_'; at most 32).
	Name string `yaml:"name,omitempty"`
	// Service is where the tenant's clients connect.
	Service Service `yaml:"service,omitempty"`
	// Allow lists the source addresses and CIDRs that may connect. Empty
	// means nobody.
	Allow []string `yaml:"allow,omitempty"`
	// AllowAny confirms that Allow may hold an entry that admits (nearly)
	// everybody: 0.0.0.0/0, ::/0, or any prefix shorter than /8. Without
	// it such an entry is an error.
	AllowAny bool `yaml:"allow_any,omitempty"`
	// Reals overrides the real servers; by default every storage node at
	// the tenant's port.
	Reals []Real `yaml:"reals,omitempty"`
	// Health overrides the default health check.
	Health *Health `yaml:"health,omitempty"`
	// KVS configures the tenant's store on the storage nodes.
	KVS KVS `yaml:"kvs,omitempty"`
	// REST serves the tenant's REST/JSON data API on a port of its own
	// beside the memcached port: same VIP, same real servers, same
	// allow-list and fences. Off when absent.
	REST *REST `yaml:"rest,omitempty"`
}

// Panel configures the web control panel, served over HTTPS.
type Panel struct {
	// Listen is the panel's address (host:port); empty: no panel.
	Listen string `yaml:"listen,omitempty"`
	// TLSCert and TLSKey are the certificate and key files (PEM).
	TLSCert string `yaml:"tls_cert,omitempty"`
	TLSKey  string `yaml:"tls_key,omitempty"`
}

// REST configures a tenant's REST/JSON data API.
type REST struct {
	// Port is the API's port on the tenant's VIP (and on the storage
	// nodes, as the memcached port).
	Port int `yaml:"port,omitempty"`
	// CORSOrigins are the origins ("https://app.example:8443") whose pages
	// may call the API from a browser; "*" admits any. Empty: none.
	CORSOrigins []string `yaml:"cors_origins,omitempty"`
}

// KVS configures one tenant's store.
type KVS struct {
	// Memory is the memory limit of the tenant's cache (memcached -m).
	// Default 64MiB.
	Memory Size `yaml:"memory,omitempty"`
	// Storage is memory (a cache, like memcached) or durable (on disk).
	Storage string `yaml:"storage,omitempty"`
	// Sync is the durable store's policy: always (a write is acknowledged
	// once synced; concurrent writes share a sync) or group (acknowledged
	// at once, synced one SyncInterval after the first unsynced write: a
	// crash loses the writes acknowledged within SyncInterval plus one
	// sync's duration before it). Default always, as `lbd kvs`.
	Sync string `yaml:"sync,omitempty"`
	// SyncInterval is the group-commit interval. Default 10ms.
	SyncInterval Duration `yaml:"sync_interval,omitempty"`
	// MaxItemSize is the largest value accepted (memcached -I). Default 1MiB.
	MaxItemSize Size `yaml:"max_item_size,omitempty"`
	// MaxConnections caps the tenant's simultaneous connections (memcached
	// -c). Default 1024.
	MaxConnections int `yaml:"max_connections,omitempty"`
	// IdleTimeout closes connections idle that long (memcached
	// idle_timeout). Default 0: never.
	IdleTimeout Duration `yaml:"idle_timeout,omitempty"`
	// Replicas is the number of backups of each slot of the tenant's keys
	// on other storage nodes (okuyama's replication count): 0, 1 or 2.
	// Default 0.
	Replicas int `yaml:"replicas,omitempty"`
	// Replication is sync (a write is acknowledged once every in-sync
	// backup has it) or async (once the primary has it: may lose the
	// replication lag on failover). Default sync.
	Replication string `yaml:"replication,omitempty"`
}

// VirtualService is a plain L4 service not tied to a tenant.
type VirtualService struct {
	Service `yaml:",inline"`
	// Reals are the real servers.
	Reals []Real `yaml:"reals,omitempty"`
	// Health overrides the default health check.
	Health *Health `yaml:"health,omitempty"`
}

// Real is one real server of a service.
type Real struct {
	Address string `yaml:"address,omitempty"`
	// Port defaults to the service's port (and must equal it for dr/tun).
	Port int `yaml:"port,omitempty"`
	// Weight defaults to 1; 0 keeps the server configured but idle.
	Weight *int `yaml:"weight,omitempty"`
}

// Daemon holds process-level settings.
type Daemon struct {
	// StateDir keeps what lbd created and runtime changes (default /var/lib/lbd).
	StateDir string `yaml:"state_dir,omitempty"`
	// Socket is the control API's unix socket (default /run/lbd/lbd.sock).
	Socket string `yaml:"socket,omitempty"`
	// SocketGroup is a group granted access to the socket (default: root only).
	SocketGroup string `yaml:"socket_group,omitempty"`
	// Listen also serves the API on TCP (host:port); it needs TokenFile.
	Listen string `yaml:"listen,omitempty"`
	// TokenFile holds the bearer token TCP clients must present.
	TokenFile string `yaml:"token_file,omitempty"`
	// TLSCert and TLSKey serve the TCP API over TLS.
	TLSCert string `yaml:"tls_cert,omitempty"`
	TLSKey  string `yaml:"tls_key,omitempty"`
	// Insecure allows what lbd otherwise refuses: the TCP API without TLS
	// (the token would cross the network in clear), and a token file
	// that group or others may read.
	Insecure bool `yaml:"insecure,omitempty"`
}

// Cluster is the replicated state's setup: which nodes vote, where they
// listen, and the certificates of the mutual TLS between them.
type Cluster struct {
	// Port is the TCP port of every node's cluster listener (raft and
	// node-to-node calls share it). Default 7380.
	Port int `yaml:"port,omitempty"`
	// Voters names the nodes that vote in raft. Default: the directors,
	// then the storage nodes, in file order, up to 3 or 5 (an odd number);
	// one voter with two nodes. The other nodes follow as non-voters.
	Voters []string `yaml:"voters,omitempty"`
	// TLS holds the cluster CA and this node's certificate. "{node}" in a
	// path is replaced by the node's name.
	TLS ClusterTLS `yaml:"tls,omitempty"`
	// CatchupTimeout bounds how long a starting director waits to catch
	// up with the committed state before it may become VRRP master on its
	// last state. Default 10s.
	CatchupTimeout *Duration `yaml:"catchup_timeout,omitempty"`
	// RaftSnapshotThreshold, RaftSnapshotInterval and RaftTrailingLogs
	// tune raft's snapshots as Consul's keys of the same names do
	// (defaults 16384 entries, 30s, 10240 entries).
	RaftSnapshotThreshold int      `yaml:"raft_snapshot_threshold,omitempty"`
	RaftSnapshotInterval  Duration `yaml:"raft_snapshot_interval,omitempty"`
	RaftTrailingLogs      int      `yaml:"raft_trailing_logs,omitempty"`
	// RaftHeartbeatTimeout, RaftElectionTimeout and RaftLeaderLeaseTimeout
	// are hashicorp/raft's timing (default 500ms each: half of Consul's
	// raft_multiplier 1, and half of etcd's 1s election timeout): a
	// follower that has not heard from the leader for one to two heartbeat
	// timeouts stands for election. Shorter values elect a new leader
	// sooner after a kill -9 (and so fail a storage node that led raft
	// over sooner: at 1s the election alone takes 1-2.7s, too much for the
	// storage tier's 3s); too short for the network or the machines' load,
	// and leaders come and go. A LAN cluster's default; raise all three
	// together for slow links.
	RaftHeartbeatTimeout   Duration `yaml:"raft_heartbeat_timeout,omitempty"`
	RaftElectionTimeout    Duration `yaml:"raft_election_timeout,omitempty"`
	RaftLeaderLeaseTimeout Duration `yaml:"raft_leader_lease_timeout,omitempty"`
	// RaftCommitTimeout is hashicorp/raft's CommitTimeout: with no new
	// writes, the leader tells each follower the commit index this often
	// (one to two of it apart), so a write is applied on the followers
	// within that. Default 10ms (raft's is 50ms); each such message is an
	// RPC per follower, so an idle cluster of N nodes makes about
	// 70*(N-1) RPCs a second at 10ms: longer spares slow machines.
	RaftCommitTimeout Duration `yaml:"raft_commit_timeout,omitempty"`
	// KVSPeerPort is the TCP port of every storage node's node-to-node
	// listener of the storage tier (forwarded requests, replication,
	// probes; the cluster's mutual TLS). Default 7381.
	KVSPeerPort int `yaml:"kvs_peer_port,omitempty"`
	// KVSMonitorInterval and KVSMonitorThreshold: the raft leader probes
	// every storage node's peer listener KVSMonitorInterval apart and
	// declares it down, failing its primaries over, after
	// KVSMonitorThreshold failed probes (Flare's monitor-interval and
	// monitor-threshold; defaults 300ms and 3). A node serves its
	// primaries for two thirds of their product after its last probe, so
	// every node must use the same values: they are read when lbd starts;
	// change them on every node together.
	KVSMonitorInterval  Duration `yaml:"kvs_monitor_interval,omitempty"`
	KVSMonitorThreshold int      `yaml:"kvs_monitor_threshold,omitempty"`
}

// ClusterTLS names the PEM files of the cluster's mutual TLS.
type ClusterTLS struct {
	CA   string `yaml:"ca,omitempty"`
	Cert string `yaml:"cert,omitempty"`
	Key  string `yaml:"key,omitempty"`
}
