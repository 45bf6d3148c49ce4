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

// writeEach performs the steps of a plan one Kernel write at a time and
// returns one error (or nil) per op, as batcher.batch does; opMark, which is
// bookkeeping only, writes nothing.
func writeEach(k Kernel, ops []op) []error {
	errs := make([]error, len(ops))
	for i := range ops {
		o := &ops[i]
		switch o.kind {
		case opAddService:
			errs[i] = k.AddService(o.svc)
		case opUpdateService:
			errs[i] = k.UpdateService(o.svc)
		case opDelService:
			errs[i] = k.DelService(o.svc)
		case opAddDest:
			errs[i] = k.AddDest(o.svc, o.dest)
		case opUpdateDest:
			errs[i] = k.UpdateDest(o.svc, o.dest)
		case opDelDest:
			errs[i] = k.DelDest(o.svc, o.dest)
		}
	}
	return errs
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
