package keepalived

import (
	"net/netip"
	"strconv"
	"strings"
)

// vsAddresses returns the VIP:ports of a virtual_server: its own, or those
// of the virtual_server_group it names.
func (c *converter) vsAddresses(n *Node) []vsAddr {
	switch n.Arg(0) {
	case "fwmark":
		c.cannot(n, "lbd services are VIP:port; firewall-mark services are not supported")
		return nil
	case "group":
		g := c.groups[n.Arg(1)]
		if g == nil {
			c.cannot(n, "no virtual_server_group %q is defined", n.Arg(1))
			return nil
		}
		return c.groupAddresses(g)
	}
	a, _, ok := hostAddr(n.Arg(0))
	if !ok {
		c.cannot(n, "%q is not an IP address", n.Arg(0))
		return nil
	}
	port, ok := parsePort(n.Arg(1))
	if !ok {
		c.cannot(n, "lbd services need a port from 1 to 65535 (a port-less persistent service is not supported)")
		return nil
	}
	return []vsAddr{{vip: a, port: port}}
}

// maxGroupRange bounds the addresses one virtual_server_group line expands to.
const maxGroupRange = 256

// groupAddresses expands a virtual_server_group: addresses, ranges
// (10.0.0.1-10, 10.0.0.250-10.0.1.10, 10.0.0.8/29), each with a port.
func (c *converter) groupAddresses(g *Node) []vsAddr {
	var out []vsAddr
	for _, e := range g.Children {
		if e.Keyword == "fwmark" {
			c.cannot(e, "lbd services are VIP:port; firewall-mark services are not supported")
			continue
		}
		port, ok := parsePort(e.Arg(0))
		if !ok {
			c.cannot(e, "lbd services need a port from 1 to 65535")
			continue
		}
		addrs, err := expandRange(e.Keyword, maxGroupRange)
		if err != "" {
			c.cannot(e, "%s", err)
			continue
		}
		for _, a := range addrs {
			out = append(out, vsAddr{vip: a, port: port})
		}
	}
	if len(out) == 0 {
		c.cannot(g, "the group has no VIP:port that could be converted")
	}
	return out
}

// expandRange expands an address, an address range or a CIDR into at most
// limit addresses; it returns a reason on failure.
func expandRange(s string, limit int) ([]netip.Addr, string) {
	if a, bits, ok := hostAddr(s); ok {
		if bits < 0 || bits == a.BitLen() {
			return []netip.Addr{a}, ""
		}
		p := netip.PrefixFrom(a, bits).Masked()
		if a.BitLen()-bits > 8 {
			return nil, "the range has more than " + strconv.Itoa(limit) + " addresses"
		}
		return walk(p.Addr(), func(x netip.Addr) bool { return p.Contains(x) }, limit)
	}
	lo, hi, ok := strings.Cut(s, "-")
	first, err := netip.ParseAddr(lo)
	if !ok || err != nil {
		return nil, strconv.Quote(s) + " is not an address, range or CIDR"
	}
	last, err := netip.ParseAddr(hi)
	if err != nil {
		// 192.168.200.1-10: the end replaces the last part of the start.
		i := strings.LastIndexAny(lo, ".:")
		if last, err = netip.ParseAddr(lo[:i+1] + hi); err != nil || i < 0 {
			return nil, strconv.Quote(s) + " is not an address range"
		}
	}
	if last.Less(first) || last.Is4() != first.Is4() {
		return nil, strconv.Quote(s) + " is not an increasing range of one address family"
	}
	return walk(first, func(x netip.Addr) bool { return !last.Less(x) }, limit)
}

func walk(a netip.Addr, in func(netip.Addr) bool, limit int) ([]netip.Addr, string) {
	var out []netip.Addr
	for ; a.IsValid() && in(a); a = a.Next() {
		if len(out) == limit {
			return nil, "the range has more than " + strconv.Itoa(limit) + " addresses"
		}
		out = append(out, a)
	}
	return out, ""
}
