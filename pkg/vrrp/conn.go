package vrrp

import (
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/net/ipv4"
)

// conn is a raw IPv4 socket for protocol 112 on one interface.
type conn struct {
	pc    *ipv4.PacketConn
	ifi   *net.Interface
	src   netip.Addr
	dsts  []netip.Addr // the group, or the unicast peers
	peers map[netip.Addr]bool
}

// rxPacket is one received advert, before decoding.
type rxPacket struct {
	b        []byte
	src, dst netip.Addr
	ttl      int
}

func listen(ifi *net.Interface, src netip.Addr, peers []netip.Addr) (*conn, error) {
	c, err := net.ListenPacket(fmt.Sprintf("ip4:%d", IPProtocol), "0.0.0.0")
	if err != nil {
		return nil, fmt.Errorf("vrrp: open raw socket: %w", err)
	}
	pc := ipv4.NewPacketConn(c)
	cn := &conn{pc: pc, ifi: ifi, src: src, peers: map[netip.Addr]bool{}}
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
		for _, p := range peers {
			cn.peers[p] = true
		}
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

// send sends a to every destination.
func (c *conn) send(a *Advertisement) error {
	for _, dst := range c.dsts {
		b, err := a.Marshal(c.src, dst)
		if err != nil {
			return err
		}
		cm := &ipv4.ControlMessage{IfIndex: c.ifi.Index, Src: c.src.AsSlice()}
		if _, err := c.pc.WriteTo(b, cm, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
			return fmt.Errorf("vrrp: send advert to %s on %s: %w", dst, c.ifi.Name, err)
		}
	}
	return nil
}

// read blocks for the next packet received on c's interface.
func (c *conn) read(buf []byte) (rxPacket, error) {
	for {
		n, cm, src, err := c.pc.ReadFrom(buf)
		if err != nil {
			return rxPacket{}, fmt.Errorf("vrrp: read on %s: %w", c.ifi.Name, err)
		}
		if cm == nil || cm.IfIndex != c.ifi.Index {
			continue
		}
		ia, ok := src.(*net.IPAddr)
		if !ok {
			continue
		}
		s, ok1 := netip.AddrFromSlice(ia.IP)
		d, ok2 := netip.AddrFromSlice(cm.Dst)
		if !ok1 || !ok2 {
			continue
		}
		return rxPacket{b: append([]byte(nil), buf[:n]...), src: s.Unmap(), dst: d.Unmap(), ttl: cm.TTL}, nil
	}
}

func (c *conn) close() error { return c.pc.Close() }
