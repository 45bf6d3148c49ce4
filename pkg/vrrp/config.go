package vrrp

import (
	"fmt"
	"net/netip"
	"time"
)

// Defaults, as in keepalived.
const (
	DefaultAdvertInterval   = time.Second
	DefaultGARPMasterDelay  = 5 * time.Second
	DefaultGARPMasterRepeat = 5
)

// Config describes one VRRP instance (keepalived's vrrp_instance). The zero
// values of the optional fields mean keepalived's defaults.
type Config struct {
	// Name identifies the instance in logs, state changes and notify
	// scripts. Required.
	Name string
	// Interface is the link adverts are sent and received on and the VIPs
	// are added to. Required.
	Interface string
	// VRID is the virtual router ID, 1-255 (virtual_router_id). Required.
	VRID uint8
	// Priority is 1-254, or 255 for the address owner, whose VIPs are its
	// own addresses: it starts as Master and never removes them. Required.
	Priority uint8
	// AdvertInterval is advert_int: 10ms steps, default 1s.
	AdvertInterval time.Duration
	// VIPs are the virtual addresses (virtual_ipaddress), all IPv4 or all
	// IPv6 (RFC 5798: one instance per family). IPv6 VIPs make the
	// instance speak VRRP over IPv6. They are added with their prefix
	// length, IPv6 ones without duplicate address detection.
	VIPs []netip.Prefix
	// NoPreempt keeps a lower-priority Master in place (nopreempt).
	NoPreempt bool
	// PreemptDelay holds off preemption after start (preempt_delay).
	PreemptDelay time.Duration
	// UnicastPeers, if set, replaces multicast: adverts go to each peer and
	// adverts from any other source are dropped (unicast_peer). Same
	// family as the VIPs; a link-local peer is reached on Interface.
	UnicastPeers []netip.Addr
	// SourceAddr is the source of adverts (unicast_src_ip); default: the
	// interface's primary IPv4 address, or for IPv6 its link-local address
	// (which multicast IPv6 adverts must come from).
	SourceAddr netip.Addr
	// TrackInterfaces go to FAULT while any of them is down
	// (track_interface). Interface itself is always tracked.
	TrackInterfaces []string
	// GARPMasterDelay is when the second burst of gratuitous ARPs goes out
	// after becoming Master (garp_master_delay); default 5s, negative: none.
	GARPMasterDelay time.Duration
	// GARPMasterRepeat is how many gratuitous ARPs make a burst
	// (garp_master_repeat); default 5.
	GARPMasterRepeat int
	// GARPMasterRefresh, if positive, repeats a burst of
	// GARPMasterRefreshRepeat gratuitous ARPs this often while Master
	// (garp_master_refresh; default off).
	GARPMasterRefresh time.Duration
	// GARPMasterRefreshRepeat is the size of a refresh burst; default 1.
	GARPMasterRefreshRepeat int
	// Notify are the scripts run on state changes.
	Notify Notify
}

// withDefaults returns c with keepalived's defaults filled in.
func (c Config) withDefaults() Config {
	if c.AdvertInterval == 0 {
		c.AdvertInterval = DefaultAdvertInterval
	}
	if c.GARPMasterDelay == 0 {
		c.GARPMasterDelay = DefaultGARPMasterDelay
	}
	if c.GARPMasterRepeat == 0 {
		c.GARPMasterRepeat = DefaultGARPMasterRepeat
	}
	if c.GARPMasterRefreshRepeat == 0 {
		c.GARPMasterRefreshRepeat = 1
	}
	return c
}

// Validate reports the first problem with c.
func (c Config) Validate() error {
	c = c.withDefaults()
	if c.Name == "" {
		return fmt.Errorf("vrrp: instance has no name")
	}
	if c.Interface == "" {
		return fmt.Errorf("vrrp: instance %s: no interface", c.Name)
	}
	if c.VRID == 0 {
		return fmt.Errorf("vrrp: instance %s: virtual router id must be 1-255", c.Name)
	}
	if err := c.params().Validate(); err != nil {
		return fmt.Errorf("vrrp: instance %s: %w", c.Name, err)
	}
	if len(c.VIPs) == 0 {
		return fmt.Errorf("vrrp: instance %s: no virtual addresses", c.Name)
	}
	if len(c.VIPs) > 255 {
		return fmt.Errorf("vrrp: instance %s: %d virtual addresses, at most 255", c.Name, len(c.VIPs))
	}
	// RFC 5798 section 5.2.9: an instance's addresses are all IPv4 or all
	// IPv6; the family of the first VIP is the instance's.
	fam := family(c.VIPs[0].Addr())
	for _, p := range c.VIPs {
		switch {
		case !p.IsValid() || p.Addr().Is4In6():
			return fmt.Errorf("vrrp: instance %s: invalid virtual address %s", c.Name, p)
		case family(p.Addr()) != fam:
			return fmt.Errorf("vrrp: instance %s: virtual address %s is %s but %s is %s: one instance carries one address family (RFC 5798)",
				c.Name, p, family(p.Addr()), c.VIPs[0], fam)
		}
	}
	for _, p := range c.UnicastPeers {
		if !p.IsValid() || family(p) != fam {
			return fmt.Errorf("vrrp: instance %s: unicast peer %s is not %s like the virtual addresses", c.Name, p, fam)
		}
	}
	if s := c.SourceAddr; s.IsValid() {
		switch {
		case family(s) != fam:
			return fmt.Errorf("vrrp: instance %s: source address %s is not %s like the virtual addresses", c.Name, s, fam)
		case fam == "IPv6" && len(c.UnicastPeers) == 0 && !s.IsLinkLocalUnicast():
			return fmt.Errorf("vrrp: instance %s: source address %s: multicast IPv6 adverts must come from a link-local address (RFC 5798 section 5.1.2.1)", c.Name, s)
		}
	}
	if c.GARPMasterRepeat < 0 || c.GARPMasterRefreshRepeat < 0 || c.GARPMasterRefresh < 0 {
		return fmt.Errorf("vrrp: instance %s: negative gratuitous ARP setting", c.Name)
	}
	return nil
}

// IPv6 reports whether the instance speaks VRRP over IPv6 (its VIPs are
// IPv6): adverts to ff02::12 from the interface's link-local address, and
// unsolicited neighbour advertisements instead of gratuitous ARP.
func (c Config) IPv6() bool { return len(c.VIPs) > 0 && c.VIPs[0].Addr().Is6() }

// family names the address family of a.
func family(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}

// params returns the state machine's view of c (after withDefaults).
func (c Config) params() Params {
	return Params{
		Priority:     c.Priority,
		Interval:     c.AdvertInterval,
		Preempt:      !c.NoPreempt,
		PreemptDelay: c.PreemptDelay,
		LocalAddr:    c.SourceAddr,
		SoleBackup:   len(c.UnicastPeers) == 1,
	}
}

// vipAddrs returns the addresses carried in adverts.
func (c Config) vipAddrs() []netip.Addr {
	out := make([]netip.Addr, len(c.VIPs))
	for i, p := range c.VIPs {
		out[i] = p.Addr()
	}
	return out
}
