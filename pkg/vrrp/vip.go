package vrrp

import (
	"errors"
	"fmt"
	"net/netip"
	"syscall"

	"github.com/lbd-project/lbd/internal/ifaddr"
	"github.com/vishvananda/netlink"
)

// vipManager adds and removes the VIPs on one link through netlink. It
// keeps one netlink socket open (in addrs) rather than one per request: a
// takeover should cost one round trip per VIP, not a socket setup too.
type vipManager struct {
	addrs ifaddr.Manager
	link  netlink.Link
	vips  []netip.Prefix
}

// newVIPManager returns the manager of vips on link, through h.
func newVIPManager(h *netlink.Handle, link netlink.Link, vips []netip.Prefix) *vipManager {
	return &vipManager{
		// Besides EADDRNOTAVAIL, ENODEV from a delete (the link or its
		// IPv4 configuration is gone) means the VIP is not there.
		addrs: ifaddr.Manager{Handle: h, Absent: []syscall.Errno{syscall.ENODEV}},
		link:  link,
		vips:  vips,
	}
}

// add adds every VIP; one that is already there is not an error.
func (v *vipManager) add() error {
	var errs []error
	for _, p := range v.vips {
		if err := v.addrs.Add(v.link, p); err != nil {
			errs = append(errs, fmt.Errorf("vrrp: %w", err))
		}
	}
	return errors.Join(errs...)
}

// remove removes every VIP and returns those that were there; one that is
// not there is not an error. It keeps going after an error.
func (v *vipManager) remove() ([]netip.Prefix, error) {
	var (
		errs    []error
		removed []netip.Prefix
	)
	for _, p := range v.vips {
		was, err := v.addrs.Del(v.link, p)
		if err != nil {
			errs = append(errs, fmt.Errorf("vrrp: %w", err))
			continue
		}
		if was {
			removed = append(removed, p)
		}
	}
	return removed, errors.Join(errs...)
}

// primaryAddr returns the first primary IPv4 address of link that is not
// one of vips: the source of adverts.
func primaryAddr(link netlink.Link, vips []netip.Prefix) (netip.Addr, error) {
	addrs, err := netlink.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("vrrp: list addresses of %s: %w", link.Attrs().Name, err)
	}
	isVIP := map[netip.Addr]bool{}
	for _, p := range vips {
		isVIP[p.Addr()] = true
	}
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok || a.Flags&syscall.IFA_F_SECONDARY != 0 || isVIP[ip.Unmap()] {
			continue
		}
		return ip.Unmap(), nil
	}
	return netip.Addr{}, fmt.Errorf("vrrp: %s has no IPv4 address to send adverts from", link.Attrs().Name)
}
