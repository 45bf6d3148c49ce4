package vrrp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"syscall"
	"time"

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
		// IPv6 VIPs skip duplicate address detection, as keepalived's do:
		// the VIP is meant to move, and DAD would hold it tentative (or
		// fail it while the old Master still answers).
		addrs: ifaddr.Manager{Handle: h, NoDAD: true, Absent: []syscall.Errno{syscall.ENODEV}},
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

// linkLocalWarn is how long an IPv6 instance waits at start for a usable
// link-local address before it logs that it is still waiting.
const linkLocalWarn = 10 * time.Second

// linkLocalAddr returns link's IPv6 link-local address, the source of
// IPv6 adverts (RFC 5798 section 5.1.2.1). It waits until there is one
// that passed duplicate address detection (right after the link came up
// the kernel needs a second or two; a link that is down has none), until
// ctx is done, as keepalived waits in FAULT: without it the instance can
// neither send nor hold VIPs.
func linkLocalAddr(ctx context.Context, link netlink.Link, log *slog.Logger) (netip.Addr, error) {
	warnAt := time.Now().Add(linkLocalWarn)
	for {
		addrs, err := netlink.AddrList(link, netlink.FAMILY_V6)
		if err != nil {
			return netip.Addr{}, fmt.Errorf("vrrp: list addresses of %s: %w", link.Attrs().Name, err)
		}
		for _, a := range addrs {
			ip, ok := netip.AddrFromSlice(a.IP)
			if ok && ip.IsLinkLocalUnicast() && a.Flags&(syscall.IFA_F_TENTATIVE|syscall.IFA_F_DADFAILED) == 0 {
				return ip, nil
			}
		}
		if !warnAt.IsZero() && time.Now().After(warnAt) {
			log.Warn("vrrp: waiting for an IPv6 link-local address to send adverts from", "interface", link.Attrs().Name)
			warnAt = time.Time{}
		}
		select {
		case <-ctx.Done():
			return netip.Addr{}, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// ipv6Forwarding reports whether the interface forwards IPv6, which sets
// the Router flag of its neighbour advertisements (as the kernel's own).
func ipv6Forwarding(name string) bool {
	b, err := os.ReadFile("/proc/sys/net/ipv6/conf/" + name + "/forwarding")
	return err == nil && len(b) > 0 && b[0] == '1'
}
