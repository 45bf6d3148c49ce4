package realserver

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"github.com/vishvananda/netlink"
)

// loopback manages the addresses on lo.
type loopback interface {
	// Addrs lists the prefixes on lo.
	Addrs() ([]netip.Prefix, error)
	// Add puts p on lo.
	Add(p netip.Prefix) error
	// Del removes p from lo; a missing address is not an error.
	Del(p netip.Prefix) error
}

// netlinkLo is lo through a netlink handle (bound to a namespace).
type netlinkLo struct {
	h *netlink.Handle
}

func (n netlinkLo) link() (netlink.Link, error) {
	l, err := n.h.LinkByName("lo")
	if err != nil {
		return nil, fmt.Errorf("realserver: find lo: %w", err)
	}
	return l, nil
}

func (n netlinkLo) Addrs() ([]netip.Prefix, error) {
	l, err := n.link()
	if err != nil {
		return nil, err
	}
	as, err := n.h.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("realserver: list addresses on lo: %w", err)
	}
	out := make([]netip.Prefix, 0, len(as))
	for _, a := range as {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		ones, _ := a.Mask.Size()
		out = append(out, netip.PrefixFrom(ip.Unmap(), ones))
	}
	return out, nil
}

func toAddr(p netip.Prefix) *netlink.Addr {
	a := &netlink.Addr{IPNet: &net.IPNet{
		IP:   p.Addr().AsSlice(),
		Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen()),
	}}
	if p.Addr().Is6() {
		// lo does no DAD, but say so: the VIP must be usable at once.
		a.Flags = syscall.IFA_F_NODAD
	}
	return a
}

func (n netlinkLo) Add(p netip.Prefix) error {
	l, err := n.link()
	if err != nil {
		return err
	}
	if err := n.h.AddrAdd(l, toAddr(p)); err != nil && !errors.Is(err, syscall.EEXIST) {
		return fmt.Errorf("realserver: add %s to lo: %w", p, err)
	}
	return nil
}

func (n netlinkLo) Del(p netip.Prefix) error {
	l, err := n.link()
	if err != nil {
		return err
	}
	err = n.h.AddrDel(l, toAddr(p))
	if err != nil && !errors.Is(err, syscall.EADDRNOTAVAIL) && !errors.Is(err, syscall.ENOENT) {
		return fmt.Errorf("realserver: delete %s from lo: %w", p, err)
	}
	return nil
}
