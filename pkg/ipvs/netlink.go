//go:build linux

package ipvs

import (
	"fmt"
	"net"
	"net/netip"
	"syscall"

	mipvs "github.com/moby/ipvs"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Kernel service flags (IP_VS_SVC_F_*). The kernel also reports internal
// flags (IP_VS_SVC_F_HASHED), which are masked out when comparing.
const (
	svcFlagPersistent = 0x0001
)

// Netlink is the Kernel of one network namespace, spoken over generic
// netlink through github.com/moby/ipvs.
type Netlink struct {
	h *mipvs.Handle
	b *batchConn // nil: every write is its own system call
}

var _ Kernel = (*Netlink)(nil)

// NewNetlink opens an IPVS netlink handle in the network namespace at
// netnsPath (for example /var/run/netns/director), or in the caller's
// namespace when netnsPath is empty. It loads the ip_vs module if needed.
func NewNetlink(netnsPath string) (*Netlink, error) {
	// moby/ipvs logs but does not return a failure to find the IPVS
	// generic-netlink family, and its requests then "succeed" doing
	// nothing: ask for the family first.
	fam, err := ipvsFamily(netnsPath)
	if err != nil {
		return nil, fmt.Errorf("ipvs: kernel IPVS unavailable (netns %q; is ip_vs loaded?): %w", netnsPath, err)
	}
	h, err := mipvs.New(netnsPath)
	if err != nil {
		return nil, fmt.Errorf("ipvs: open netlink handle (netns %q): %w", netnsPath, err)
	}
	n := &Netlink{h: h}
	if b, err := openBatch(netnsPath, fam); err == nil {
		n.b = b
	}
	if _, err := h.GetServices(); err != nil {
		n.Close()
		return nil, fmt.Errorf("ipvs: kernel IPVS unavailable (netns %q): %w", netnsPath, err)
	}
	return n, nil
}

// ipvsFamily returns the ID of the IPVS generic-netlink family, asking the
// kernel of the namespace at path (the caller's when empty), which fails
// when that kernel does not know the family.
func ipvsFamily(path string) (uint16, error) {
	h := &netlink.Handle{}
	if path != "" {
		ns, err := netns.GetFromPath(path)
		if err != nil {
			return 0, err
		}
		defer ns.Close()
		if h, err = netlink.NewHandleAt(ns); err != nil {
			return 0, err
		}
		defer h.Close()
	}
	f, err := h.GenlFamilyGet("IPVS")
	if err != nil {
		return 0, err
	}
	return f.ID, nil
}

// Close releases the netlink socket.
func (n *Netlink) Close() error {
	n.h.Close()
	if n.b != nil {
		n.b.close()
	}
	return nil
}

// batch implements batcher, when the batching socket could be opened.
func (n *Netlink) batch(ops []op) []error {
	if n.b == nil {
		return writeEach(n, ops)
	}
	return n.b.batch(ops)
}

// Services implements Kernel.
func (n *Netlink) Services() ([]ServiceStatus, error) {
	ss, err := n.h.GetServices()
	if err != nil {
		return nil, err
	}
	out := make([]ServiceStatus, 0, len(ss))
	for _, s := range ss {
		st, err := fromKernelService(s)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

// Dests implements Kernel.
func (n *Netlink) Dests(svc Service) ([]DestStatus, error) {
	ds, err := n.h.GetDestinations(toKernelService(&svc))
	if err != nil {
		return nil, err
	}
	out := make([]DestStatus, 0, len(ds))
	for _, d := range ds {
		addr, ok := netip.AddrFromSlice(d.Address)
		if !ok {
			return nil, fmt.Errorf("bad real server address %v", d.Address)
		}
		out = append(out, DestStatus{
			Dest: Dest{
				Addr:    addr.Unmap(),
				Port:    d.Port,
				Weight:  d.Weight,
				Forward: forwardFromKernel(d.ConnectionFlags),
			},
			ActiveConns:   d.ActiveConnections,
			InactiveConns: d.InactiveConnections,
			Stats:         fromKernelStats(mipvs.SvcStats(d.Stats)),
		})
	}
	return out, nil
}

// AddService implements Kernel.
func (n *Netlink) AddService(svc Service) error { return n.h.NewService(toKernelService(&svc)) }

// UpdateService implements Kernel.
func (n *Netlink) UpdateService(svc Service) error {
	return n.h.UpdateService(toKernelService(&svc))
}

// DelService implements Kernel.
func (n *Netlink) DelService(svc Service) error { return n.h.DelService(toKernelService(&svc)) }

// AddDest implements Kernel.
func (n *Netlink) AddDest(svc Service, d Dest) error {
	return n.h.NewDestination(toKernelService(&svc), toKernelDest(&svc, &d))
}

// UpdateDest implements Kernel.
func (n *Netlink) UpdateDest(svc Service, d Dest) error {
	return n.h.UpdateDestination(toKernelService(&svc), toKernelDest(&svc, &d))
}

// DelDest implements Kernel.
func (n *Netlink) DelDest(svc Service, d Dest) error {
	return n.h.DelDestination(toKernelService(&svc), toKernelDest(&svc, &d))
}

func family(a netip.Addr) uint16 {
	if a.Unmap().Is4() {
		return syscall.AF_INET
	}
	return syscall.AF_INET6
}

func toKernelService(s *Service) *mipvs.Service {
	k := s.Key()
	a := s.attrs()
	ks := &mipvs.Service{
		Address:       net.IP(k.Addr.AsSlice()),
		Protocol:      uint16(k.Protocol),
		Port:          k.Port,
		FWMark:        k.FWMark,
		SchedName:     a.Scheduler,
		AddressFamily: family(k.Addr),
		Netmask:       0xffffffff, // ipvsadm's default persistence granularity
	}
	if ks.AddressFamily == syscall.AF_INET6 {
		ks.Netmask = 128
	}
	if a.Timeout > 0 {
		ks.Flags = svcFlagPersistent
		ks.Timeout = a.Timeout
	}
	ks.Flags |= uint32(a.Flags)
	return ks
}

func toKernelDest(s *Service, d *Dest) *mipvs.Destination {
	k := d.key(s)
	return &mipvs.Destination{
		Address:         net.IP(k.Addr.AsSlice()),
		Port:            k.Port,
		Weight:          d.Weight,
		ConnectionFlags: d.Forward.kernel(),
		AddressFamily:   family(k.Addr),
	}
}

func fromKernelService(ks *mipvs.Service) (ServiceStatus, error) {
	var addr netip.Addr
	if len(ks.Address) > 0 {
		a, ok := netip.AddrFromSlice(ks.Address)
		if !ok {
			return ServiceStatus{}, fmt.Errorf("bad service address %v", ks.Address)
		}
		addr = a.Unmap()
	} else if ks.AddressFamily == syscall.AF_INET6 {
		addr = netip.IPv6Unspecified()
	} else {
		addr = netip.IPv4Unspecified()
	}
	s := Service{
		Addr:      addr,
		Port:      ks.Port,
		Protocol:  Protocol(ks.Protocol),
		FWMark:    ks.FWMark,
		Scheduler: ks.SchedName,
	}
	if ks.FWMark != 0 {
		s.Port, s.Protocol = 0, 0
	}
	if ks.Flags&svcFlagPersistent != 0 {
		s.Persistence = secondsToDuration(ks.Timeout)
	}
	s.Flags = SchedFlags(ks.Flags) & schedFlagsMask
	return ServiceStatus{Service: s, Stats: fromKernelStats(ks.Stats)}, nil
}

func fromKernelStats(s mipvs.SvcStats) Stats {
	return Stats{
		Conns: uint64(s.Connections), PacketsIn: uint64(s.PacketsIn), PacketsOut: uint64(s.PacketsOut),
		BytesIn: s.BytesIn, BytesOut: s.BytesOut, CPS: uint64(s.CPS),
		PPSIn: uint64(s.PPSIn), PPSOut: uint64(s.PPSOut), BPSIn: uint64(s.BPSIn), BPSOut: uint64(s.BPSOut),
	}
}
