// Package ifaddr adds, deletes and lists the IP addresses of a network
// interface over netlink, the way lbd's VIP owners (the real server's lo,
// the VRRP interface) need it: adding an address that is already there and
// deleting one that is not are not errors.
package ifaddr

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"syscall"

	"github.com/vishvananda/netlink"
)

// Manager adds, deletes and lists interface addresses through one netlink
// handle. Its errors name the operation, the address and the link; callers
// add their own prefix.
type Manager struct {
	// Handle is the netlink socket the requests go through; it fixes the
	// network namespace worked in. Required.
	Handle *netlink.Handle
	// NoDAD marks IPv6 addresses IFA_F_NODAD, so that they are usable at
	// once, without duplicate address detection. IPv4 addresses are not
	// affected.
	NoDAD bool
	// Absent lists errnos that, from a delete, mean the address is not
	// there to delete, besides EADDRNOTAVAIL (the kernel's answer for an
	// address the link does not hold), which always does.
	Absent []syscall.Errno
}

// Addr returns the netlink form of p: its address and mask, plus
// IFA_F_NODAD if p is IPv6 and m.NoDAD is set. Scope, label, broadcast and
// lifetimes are left for netlink and the kernel to default. The result is
// fresh on every call (netlink fills in fields of the Addr it is given).
func (m Manager) Addr(p netip.Prefix) *netlink.Addr {
	a := &netlink.Addr{IPNet: &net.IPNet{
		IP:   p.Addr().AsSlice(),
		Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen()),
	}}
	if m.NoDAD && p.Addr().Is6() {
		a.Flags = syscall.IFA_F_NODAD
	}
	return a
}

// Add puts p on link. An address that is already there (EEXIST) is not an
// error.
func (m Manager) Add(link netlink.Link, p netip.Prefix) error {
	if err := m.check(link, p); err != nil {
		return fmt.Errorf("add %s: %w", p, err)
	}
	if err := m.Handle.AddrAdd(link, m.Addr(p)); err != nil && !errors.Is(err, syscall.EEXIST) {
		return fmt.Errorf("add %s to %s: %w", p, link.Attrs().Name, err)
	}
	return nil
}

// Del removes p from link and reports whether it was there: a delete that
// fails with EADDRNOTAVAIL or one of m.Absent returns false and no error.
func (m Manager) Del(link netlink.Link, p netip.Prefix) (bool, error) {
	if err := m.check(link, p); err != nil {
		return false, fmt.Errorf("delete %s: %w", p, err)
	}
	err := m.Handle.AddrDel(link, m.Addr(p))
	switch {
	case err == nil:
		return true, nil
	case m.absent(err):
		return false, nil
	default:
		return false, fmt.Errorf("delete %s from %s: %w", p, link.Attrs().Name, err)
	}
}

// List returns the addresses on link of family (netlink.FAMILY_ALL,
// FAMILY_V4 or FAMILY_V6) as prefixes, in the kernel's order, IPv4
// addresses as 4-byte ones.
func (m Manager) List(link netlink.Link, family int) ([]netip.Prefix, error) {
	if m.Handle == nil || link == nil {
		return nil, errors.New("list addresses: no netlink handle or link")
	}
	as, err := m.Handle.AddrList(link, family)
	if err != nil {
		return nil, fmt.Errorf("list addresses of %s: %w", link.Attrs().Name, err)
	}
	out := make([]netip.Prefix, 0, len(as))
	for _, a := range as {
		if p, ok := prefixOf(a); ok {
			out = append(out, p)
		}
	}
	return out, nil
}

// check rejects what would make a request panic or be nonsense.
func (m Manager) check(link netlink.Link, p netip.Prefix) error {
	switch {
	case m.Handle == nil:
		return errors.New("no netlink handle")
	case link == nil || link.Attrs() == nil:
		return errors.New("no link")
	case !p.IsValid():
		return errors.New("invalid prefix")
	}
	return nil
}

// absent reports whether a delete's error means there was nothing to delete.
func (m Manager) absent(err error) bool {
	return errors.Is(err, syscall.EADDRNOTAVAIL) ||
		slices.ContainsFunc(m.Absent, func(e syscall.Errno) bool { return errors.Is(err, e) })
}

// prefixOf converts an address netlink listed; ok is false if it has no
// usable IP.
func prefixOf(a netlink.Addr) (netip.Prefix, bool) {
	if a.IPNet == nil {
		return netip.Prefix{}, false
	}
	ip, ok := netip.AddrFromSlice(a.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := a.Mask.Size()
	return netip.PrefixFrom(ip.Unmap(), ones), true
}
