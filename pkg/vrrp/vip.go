package vrrp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"github.com/vishvananda/netlink"
)

// vipManager adds and removes the VIPs on one link through netlink. It
// keeps one netlink socket open (h) rather than one per request: a takeover
// should cost one round trip per VIP, not a socket setup too.
type vipManager struct {
	h    *netlink.Handle
	link netlink.Link
	vips []netip.Prefix
}

func toNetlinkAddr(p netip.Prefix) *netlink.Addr {
	return &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
}

// add adds every VIP; one that is already there is not an error.
func (v *vipManager) add() error {
	var errs []error
	for _, p := range v.vips {
		if err := v.h.AddrAdd(v.link, toNetlinkAddr(p)); err != nil && !errors.Is(err, syscall.EEXIST) {
			errs = append(errs, fmt.Errorf("vrrp: add %s to %s: %w", p, v.link.Attrs().Name, err))
		}
	}
	return errors.Join(errs...)
}

// remove removes every VIP; one that is not there is not an error.
func (v *vipManager) remove() error {
	var errs []error
	for _, p := range v.vips {
		err := v.h.AddrDel(v.link, toNetlinkAddr(p))
		if err != nil && !errors.Is(err, syscall.EADDRNOTAVAIL) && !errors.Is(err, syscall.ENODEV) {
			errs = append(errs, fmt.Errorf("vrrp: remove %s from %s: %w", p, v.link.Attrs().Name, err))
		}
	}
	return errors.Join(errs...)
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
