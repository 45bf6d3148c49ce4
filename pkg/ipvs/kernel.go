package ipvs

// Kernel is the narrow interface to the kernel's IPVS table that a
// Reconciler drives. Every method is one netlink request. NewNetlink
// implements it; ipvstest.Fake is an in-memory one for tests.
//
// Services and Dests are reads (dumps); the other methods are writes. The
// Dests field of a Service passed to or returned by a Kernel is ignored or
// empty.
type Kernel interface {
	// Services dumps every virtual service, with its statistics.
	Services() ([]ServiceStatus, error)
	// Dests dumps the real servers of one service, with their statistics.
	Dests(svc Service) ([]DestStatus, error)
	// AddService creates a virtual service.
	AddService(svc Service) error
	// UpdateService changes a service's scheduler and persistence.
	UpdateService(svc Service) error
	// DelService deletes a service and its real servers.
	DelService(svc Service) error
	// AddDest adds a real server to a service.
	AddDest(svc Service, d Dest) error
	// UpdateDest changes a real server's weight or forwarding method.
	UpdateDest(svc Service, d Dest) error
	// DelDest removes a real server from a service.
	DelDest(svc Service, d Dest) error
}

// Stats are the traffic counters and rates of a service or real server, as
// `ipvsadm -Ln --stats --rate` shows them. Rates are per second, averaged by
// the kernel over a few seconds.
type Stats struct {
	Conns      uint64 // connections scheduled
	PacketsIn  uint64
	PacketsOut uint64
	BytesIn    uint64
	BytesOut   uint64
	CPS        uint64 // connections per second
	PPSIn      uint64
	PPSOut     uint64
	BPSIn      uint64 // bytes per second
	BPSOut     uint64
}

// ServiceStatus is a virtual service as the kernel reports it.
type ServiceStatus struct {
	// Service is the service's configuration; its Dests field is empty
	// (see Dests below).
	Service Service
	// Owned reports whether lbd created (or adopted) this service; lbd
	// changes nothing else.
	Owned bool
	Stats Stats
	// Dests are the real servers, with their connection counts.
	Dests []DestStatus
}

// DestStatus is a real server as the kernel reports it.
type DestStatus struct {
	Dest
	ActiveConns   int
	InactiveConns int
	// Draining reports that lbd set the weight to 0 and will delete the
	// real server once its drain period is over.
	Draining bool
	Stats    Stats
}
