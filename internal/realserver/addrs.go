package realserver

import (
	"fmt"
	"net/netip"
	"syscall"

	"github.com/lbd-project/lbd/internal/ifaddr"
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
	addrs ifaddr.Manager
}

// newNetlinkLo returns lo as seen through h.
func newNetlinkLo(h *netlink.Handle) netlinkLo {
	return netlinkLo{addrs: ifaddr.Manager{
		Handle: h,
		// lo does no DAD, but say so: the VIP must be usable at once.
		NoDAD: true,
		// Besides EADDRNOTAVAIL, ENOENT from a delete means "not there".
		Absent: []syscall.Errno{syscall.ENOENT},
	}}
}

func (n netlinkLo) link() (netlink.Link, error) {
	l, err := n.addrs.Handle.LinkByName("lo")
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
	ps, err := n.addrs.List(l, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("realserver: %w", err)
	}
	return ps, nil
}

func (n netlinkLo) Add(p netip.Prefix) error {
	l, err := n.link()
	if err != nil {
		return err
	}
	if err := n.addrs.Add(l, p); err != nil {
		return fmt.Errorf("realserver: %w", err)
	}
	return nil
}

func (n netlinkLo) Del(p netip.Prefix) error {
	l, err := n.link()
	if err != nil {
		return err
	}
	if _, err := n.addrs.Del(l, p); err != nil {
		return fmt.Errorf("realserver: %w", err)
	}
	return nil
}
