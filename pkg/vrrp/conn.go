package vrrp

import (
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// conn is a raw socket for IP protocol 112 on one interface: IPv4, or IPv6
// when src is an IPv6 address. Exactly one of pc4 and pc6 is set.
type conn struct {
	pc4  *ipv4.PacketConn
	pc6  *ipv6.PacketConn
	ifi  *net.Interface
	src  netip.Addr
	dsts []netip.Addr // the group, or the unicast peers
}

// rxPacket is one received advert, before decoding.
type rxPacket struct {
	b        []byte
	src, dst netip.Addr
	ttl      int // IPv4 TTL or IPv6 hop limit
}

// listen opens the socket adverts from src go out of: to peers if any,
// else to the family's multicast group, which it joins.
func listen(ifi *net.Interface, src netip.Addr, peers []netip.Addr) (*conn, error) {
	if src.Is6() {
		return listen6(ifi, src, peers)
	}
	c, err := net.ListenPacket(fmt.Sprintf("ip4:%d", IPProtocol), "0.0.0.0")
	if err != nil {
		return nil, fmt.Errorf("vrrp: open raw socket: %w", err)
	}
	pc := ipv4.NewPacketConn(c)
	cn := &conn{pc4: pc, ifi: ifi, src: src}
	fail := func(what string, err error) (*conn, error) {
		pc.Close()
		return nil, fmt.Errorf("vrrp: %s on %s: %w", what, ifi.Name, err)
	}
	if err := pc.SetControlMessage(ipv4.FlagTTL|ipv4.FlagDst|ipv4.FlagInterface, true); err != nil {
		return fail("enable control messages", err)
	}
	if err := pc.SetTTL(TTL); err != nil {
		return fail("set TTL", err)
	}
	// keepalived marks adverts as internetwork control (DSCP CS6).
	if err := pc.SetTOS(0xc0); err != nil {
		return fail("set TOS", err)
	}
	if len(peers) > 0 {
		cn.dsts = peers
		return cn, nil
	}
	cn.dsts = []netip.Addr{GroupIPv4}
	if err := pc.JoinGroup(ifi, &net.IPAddr{IP: GroupIPv4.AsSlice()}); err != nil {
		return fail("join 224.0.0.18", err)
	}
	if err := pc.SetMulticastInterface(ifi); err != nil {
		return fail("set multicast interface", err)
	}
	if err := pc.SetMulticastTTL(TTL); err != nil {
		return fail("set multicast TTL", err)
	}
	if err := pc.SetMulticastLoopback(false); err != nil {
		return fail("disable multicast loopback", err)
	}
	return cn, nil
}

// listen6 is listen for IPv6 (RFC 5798 section 5.1.2): hop limit 255, the
// group ff02::12, and src (the link-local address, or unicast_src_ip) set
// on every packet. The checksum is computed by Marshal over the IPv6
// pseudo-header; the kernel leaves it alone on this socket (no
// IPV6_CHECKSUM), and Decode checks it on receipt.
func listen6(ifi *net.Interface, src netip.Addr, peers []netip.Addr) (*conn, error) {
	c, err := net.ListenPacket(fmt.Sprintf("ip6:%d", IPProtocol), "::")
	if err != nil {
		return nil, fmt.Errorf("vrrp: open raw IPv6 socket: %w", err)
	}
	pc := ipv6.NewPacketConn(c)
	cn := &conn{pc6: pc, ifi: ifi, src: src}
	fail := func(what string, err error) (*conn, error) {
		pc.Close()
		return nil, fmt.Errorf("vrrp: %s on %s: %w", what, ifi.Name, err)
	}
	if err := pc.SetControlMessage(ipv6.FlagHopLimit|ipv6.FlagDst|ipv6.FlagInterface, true); err != nil {
		return fail("enable control messages", err)
	}
	if err := pc.SetHopLimit(TTL); err != nil {
		return fail("set hop limit", err)
	}
	if err := pc.SetTrafficClass(0xc0); err != nil {
		return fail("set traffic class", err)
	}
	if len(peers) > 0 {
		cn.dsts = peers
		return cn, nil
	}
	cn.dsts = []netip.Addr{GroupIPv6}
	if err := pc.JoinGroup(ifi, &net.IPAddr{IP: GroupIPv6.AsSlice()}); err != nil {
		return fail("join ff02::12", err)
	}
	if err := pc.SetMulticastInterface(ifi); err != nil {
		return fail("set multicast interface", err)
	}
	if err := pc.SetMulticastHopLimit(TTL); err != nil {
		return fail("set multicast hop limit", err)
	}
	if err := pc.SetMulticastLoopback(false); err != nil {
		return fail("disable multicast loopback", err)
	}
	return cn, nil
}

// send sends a to every destination.
func (c *conn) send(a *Advertisement) error {
	for _, dst := range c.dsts {
		b, err := a.Marshal(c.src, dst)
		if err != nil {
			return err
		}
		to := &net.IPAddr{IP: dst.AsSlice()}
		if c.pc6 != nil {
			if dst.IsLinkLocalUnicast() || dst.IsLinkLocalMulticast() {
				to.Zone = c.ifi.Name
			}
			cm := &ipv6.ControlMessage{HopLimit: TTL, IfIndex: c.ifi.Index, Src: c.src.AsSlice()}
			_, err = c.pc6.WriteTo(b, cm, to)
		} else {
			cm := &ipv4.ControlMessage{IfIndex: c.ifi.Index, Src: c.src.AsSlice()}
			_, err = c.pc4.WriteTo(b, cm, to)
		}
		if err != nil {
			return fmt.Errorf("vrrp: send advert to %s on %s: %w", dst, c.ifi.Name, err)
		}
	}
	return nil
}

// read blocks for the next packet received on c's interface.
func (c *conn) read(buf []byte) (rxPacket, error) {
	for {
		var (
			n        int
			from     net.Addr
			ifIndex  int
			dst      net.IP
			ttl      int
			err      error
			received bool
		)
		if c.pc6 != nil {
			var cm *ipv6.ControlMessage
			n, cm, from, err = c.pc6.ReadFrom(buf)
			if cm != nil {
				received, ifIndex, dst, ttl = true, cm.IfIndex, cm.Dst, cm.HopLimit
			}
		} else {
			var cm *ipv4.ControlMessage
			n, cm, from, err = c.pc4.ReadFrom(buf)
			if cm != nil {
				received, ifIndex, dst, ttl = true, cm.IfIndex, cm.Dst, cm.TTL
			}
		}
		if err != nil {
			return rxPacket{}, fmt.Errorf("vrrp: read on %s: %w", c.ifi.Name, err)
		}
		if !received || ifIndex != c.ifi.Index {
			continue
		}
		ia, ok := from.(*net.IPAddr)
		if !ok {
			continue
		}
		s, ok1 := netip.AddrFromSlice(ia.IP)
		d, ok2 := netip.AddrFromSlice(dst)
		if !ok1 || !ok2 {
			continue
		}
		return rxPacket{b: append([]byte(nil), buf[:n]...), src: s.Unmap(), dst: d.Unmap(), ttl: ttl}, nil
	}
}

func (c *conn) close() error {
	if c.pc6 != nil {
		return c.pc6.Close()
	}
	return c.pc4.Close()
}
