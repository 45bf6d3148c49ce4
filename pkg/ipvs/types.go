package ipvs

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Protocol is the transport protocol of a virtual service.
type Protocol uint16

// Protocols, numbered as in /etc/protocols (what the kernel expects).
const (
	TCP  Protocol = 6
	UDP  Protocol = 17
	SCTP Protocol = 132
)

// String returns "tcp", "udp", "sctp" or the number.
func (p Protocol) String() string {
	switch p {
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	case SCTP:
		return "sctp"
	}
	return strconv.Itoa(int(p))
}

// ParseProtocol parses "tcp", "udp" or "sctp" (any case).
func ParseProtocol(s string) (Protocol, error) {
	switch strings.ToLower(s) {
	case "tcp":
		return TCP, nil
	case "udp":
		return UDP, nil
	case "sctp":
		return SCTP, nil
	}
	return 0, fmt.Errorf("ipvs: unknown protocol %q (want tcp, udp or sctp)", s)
}

// Forward is the packet forwarding method for a real server.
type Forward uint32

// Forwarding methods, valued as the kernel's IP_VS_CONN_F_* flags. The zero
// value is DR, lbd's default (direct server return).
const (
	DR  Forward = 0 // direct routing (gatewaying); the kernel's value is 3
	NAT Forward = 1 // masquerading; the kernel's value is 0
	TUN Forward = 2 // IP-in-IP tunnelling; the kernel's value is 2
)

// String returns "dr", "nat" or "tun".
func (f Forward) String() string {
	switch f {
	case DR:
		return "dr"
	case NAT:
		return "nat"
	case TUN:
		return "tun"
	}
	return "forward(" + strconv.Itoa(int(f)) + ")"
}

// ParseForward parses "dr" (also "direct", "route", "gate"), "nat" (also
// "masq") or "tun" (also "tunnel", "ipip"), any case.
func ParseForward(s string) (Forward, error) {
	switch strings.ToLower(s) {
	case "dr", "direct", "route", "gate", "dsr":
		return DR, nil
	case "nat", "masq":
		return NAT, nil
	case "tun", "tunnel", "ipip":
		return TUN, nil
	}
	return 0, fmt.Errorf("ipvs: unknown forwarding method %q (want dr, nat or tun)", s)
}

// Kernel IP_VS_CONN_F_* forwarding values.
const (
	connFwdMasq   = 0x0
	connFwdTunnel = 0x2
	connFwdDirect = 0x3
	connFwdMask   = 0x7
)

func (f Forward) kernel() uint32 {
	switch f {
	case NAT:
		return connFwdMasq
	case TUN:
		return connFwdTunnel
	}
	return connFwdDirect
}

func forwardFromKernel(flags uint32) Forward {
	switch flags & connFwdMask {
	case connFwdMasq:
		return NAT
	case connFwdTunnel:
		return TUN
	}
	return DR
}

// Schedulers lists the scheduler names lbd accepts, as ipvsadm spells them.
var Schedulers = []string{"rr", "wrr", "lc", "wlc", "sh", "dh", "mh", "sed", "nq"}

// ValidScheduler reports whether name is one of Schedulers.
func ValidScheduler(name string) bool {
	for _, s := range Schedulers {
		if s == name {
			return true
		}
	}
	return false
}

// SchedFlags are the scheduler flags of a service (IP_VS_SVC_F_SCHED1..3),
// whose meaning depends on the scheduler: for sh and mh, SchedFallback
// sends a client whose real server has weight 0 (down) to another one
// instead of refusing it, and SchedPort hashes the source port too.
type SchedFlags uint32

// The scheduler flags, as the kernel numbers them.
const (
	SchedFlag1 SchedFlags = 0x0008 // IP_VS_SVC_F_SCHED1
	SchedFlag2 SchedFlags = 0x0010 // IP_VS_SVC_F_SCHED2
	SchedFlag3 SchedFlags = 0x0020 // IP_VS_SVC_F_SCHED3

	SchedFallback = SchedFlag1 // sh-fallback, mh-fallback
	SchedPort     = SchedFlag2 // sh-port, mh-port

	schedFlagsMask = SchedFlag1 | SchedFlag2 | SchedFlag3
)

// ParseSchedFlag parses a flag as ipvsadm -b and keepalived spell it:
// flag-1, flag-2, flag-3, or sh-fallback, sh-port (scheduler sh),
// mh-fallback, mh-port (mh). A named flag must match the scheduler.
func ParseSchedFlag(name, scheduler string) (SchedFlags, error) {
	switch name {
	case "flag-1":
		return SchedFlag1, nil
	case "flag-2":
		return SchedFlag2, nil
	case "flag-3":
		return SchedFlag3, nil
	}
	sched, flag, ok := strings.Cut(name, "-")
	if !ok || (sched != "sh" && sched != "mh") || (flag != "fallback" && flag != "port") {
		return 0, fmt.Errorf("ipvs: unknown scheduler flag %q (want sh-fallback, sh-port, mh-fallback, mh-port or flag-1..3)", name)
	}
	if sched != scheduler {
		return 0, fmt.Errorf("ipvs: scheduler flag %q is for the %s scheduler, not %q", name, sched, scheduler)
	}
	if flag == "fallback" {
		return SchedFallback, nil
	}
	return SchedPort, nil
}

// MaxWeight is the largest real-server weight the kernel accepts.
const MaxWeight = 65535

// Key identifies a virtual service: either protocol, address and port, or a
// firewall mark (then Protocol and Port are zero and Addr only gives the
// address family).
type Key struct {
	Protocol Protocol
	Addr     netip.Addr
	Port     uint16
	FWMark   uint32
}

// String formats the key like ipvsadm: "tcp 203.0.113.10:80",
// "udp [2001:db8::1]:53" or "fwm 7 (ipv4)".
func (k Key) String() string {
	if k.FWMark != 0 {
		fam := "ipv4"
		if k.Addr.Is6() {
			fam = "ipv6"
		}
		return fmt.Sprintf("fwm %d (%s)", k.FWMark, fam)
	}
	return k.Protocol.String() + " " + netip.AddrPortFrom(k.Addr, k.Port).String()
}

// Service is a virtual service and the real servers behind it.
type Service struct {
	// Addr is the virtual address (VIP). For a firewall-mark service only
	// its family matters.
	Addr netip.Addr
	// Port is the virtual port; zero for a firewall-mark service.
	Port uint16
	// Protocol is TCP or UDP (or SCTP); zero for a firewall-mark service.
	Protocol Protocol
	// FWMark, when non-zero, makes this a firewall-mark service.
	FWMark uint32
	// Scheduler is one of Schedulers; empty means "wlc", the kernel's and
	// ipvsadm's default.
	Scheduler string
	// Persistence, when positive, makes the service persistent for that
	// long (ipvsadm -p), rounded up to whole seconds.
	Persistence time.Duration
	// Flags are the scheduler's flags (ipvsadm -b).
	Flags SchedFlags
	// Dests are the real servers. Their order does not matter.
	Dests []Dest
}

// Key returns the identity of s.
func (s *Service) Key() Key {
	k := Key{Addr: s.Addr.Unmap(), FWMark: s.FWMark}
	if s.FWMark == 0 {
		k.Protocol, k.Port = s.Protocol, s.Port
	} else if k.Addr.Is4() {
		k.Addr = netip.IPv4Unspecified()
	} else {
		k.Addr = netip.IPv6Unspecified()
	}
	return k
}

// String returns s.Key().String().
func (s *Service) String() string { k := s.Key(); return k.String() }

// Dest is a real server.
type Dest struct {
	Addr netip.Addr
	// Port is the real server's port; zero means the virtual port. With DR
	// and TUN it must equal the virtual port.
	Port uint16
	// Weight is 0..MaxWeight; 0 takes the server out of rotation for new
	// connections while keeping established ones.
	Weight int
	// Forward is the forwarding method; the zero value is DR.
	Forward Forward
}

// DestKey identifies a real server within a service.
type DestKey struct {
	Addr netip.Addr
	Port uint16
}

// String formats the key as address:port.
func (k DestKey) String() string { return netip.AddrPortFrom(k.Addr, k.Port).String() }

// attrs is the part of a service that UpdateService can change.
type attrs struct {
	Scheduler string     `json:"scheduler"`
	Timeout   uint32     `json:"timeout,omitempty"` // persistence, seconds; 0 = not persistent
	Flags     SchedFlags `json:"flags,omitempty"`
}

func (s *Service) attrs() attrs {
	a := attrs{Scheduler: s.Scheduler, Flags: s.Flags & schedFlagsMask}
	if a.Scheduler == "" {
		a.Scheduler = "wlc"
	}
	if s.Persistence > 0 {
		a.Timeout = uint32((s.Persistence + time.Second - 1) / time.Second)
	}
	return a
}

// destKey returns the identity of d within s, filling a zero port in.
func (d *Dest) key(s *Service) DestKey {
	p := d.Port
	if p == 0 {
		p = s.Port
	}
	return DestKey{Addr: d.Addr.Unmap(), Port: p}
}

// Validate reports every problem with s in one error.
func (s *Service) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if !s.Addr.IsValid() {
		bad("no virtual address")
	}
	if s.FWMark == 0 {
		switch s.Protocol {
		case TCP, UDP, SCTP:
		default:
			bad("protocol %s: want tcp, udp or sctp", s.Protocol)
		}
		if s.Port == 0 {
			bad("port 0 (only firewall-mark services have no port)")
		}
	}
	if s.Scheduler != "" && !ValidScheduler(s.Scheduler) {
		bad("unknown scheduler %q (want one of %s)", s.Scheduler, strings.Join(Schedulers, ", "))
	}
	if s.Flags&^schedFlagsMask != 0 {
		bad("scheduler flags %#x: only flag-1..3 (%#x)", uint32(s.Flags), uint32(schedFlagsMask))
	}
	if s.Persistence < 0 || s.Persistence > (1<<31)*time.Second {
		bad("persistence %v out of range", s.Persistence)
	}
	// A map only for long lists: most services have a handful of real
	// servers, and at 10,000 services hashing shows in a reload's profile.
	var seen map[DestKey]bool
	if len(s.Dests) > 16 {
		seen = make(map[DestKey]bool, len(s.Dests))
	}
	dup := func(i int, k DestKey) bool {
		if seen != nil {
			return seen[k]
		}
		for j := 0; j < i; j++ {
			if s.Dests[j].key(s) == k {
				return true
			}
		}
		return false
	}
	for i := range s.Dests {
		d := &s.Dests[i]
		k := d.key(s)
		switch {
		case !d.Addr.IsValid():
			bad("real server %d: no address", i)
			continue
		case dup(i, k):
			bad("real server %s listed twice", k)
		case d.Weight < 0 || d.Weight > MaxWeight:
			bad("real server %s: weight %d out of range 0..%d", k, d.Weight, MaxWeight)
		case d.Forward != DR && d.Forward != NAT && d.Forward != TUN:
			bad("real server %s: unknown forwarding method %d", k, d.Forward)
		case d.Addr.Unmap().Is4() != s.Addr.Unmap().Is4():
			// The kernel can tunnel across families, but only when told the
			// real server's family, which moby/ipvs never sends.
			bad("real server %s: address family differs from the virtual address", k)
		case d.Forward != NAT && s.FWMark == 0 && k.Port != s.Port:
			bad("real server %s: with %s the real port must equal the virtual port %d", k, d.Forward, s.Port)
		}
		if seen != nil {
			seen[k] = true
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("ipvs: service %s: %w", s, errors.Join(errs...))
}
