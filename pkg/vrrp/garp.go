package vrrp

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"github.com/mdlayher/packet"
)

const etherTypeARP = 0x0806

var broadcastMAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// garpFrame returns an Ethernet frame carrying a gratuitous ARP request for
// ip from mac: sender and target protocol address are both ip, target
// hardware address is broadcast, as keepalived sends it. Neighbours that
// already have an entry for ip update it to mac (RFC 5227 section 3).
func garpFrame(mac net.HardwareAddr, ip netip.Addr) []byte {
	b := make([]byte, 14+28)
	copy(b[0:6], broadcastMAC)
	copy(b[6:12], mac)
	binary.BigEndian.PutUint16(b[12:14], etherTypeARP)
	a := b[14:]
	binary.BigEndian.PutUint16(a[0:2], 1)      // hardware type: Ethernet
	binary.BigEndian.PutUint16(a[2:4], 0x0800) // protocol type: IPv4
	a[4], a[5] = 6, 4                          // hardware and protocol address lengths
	binary.BigEndian.PutUint16(a[6:8], 1)      // operation: request
	copy(a[8:14], mac)
	ip4 := ip.As4()
	copy(a[14:18], ip4[:])
	copy(a[18:24], broadcastMAC)
	copy(a[24:28], ip4[:])
	return b
}

// garpSender announces a fixed set of addresses on one interface over
// AF_PACKET: gratuitous ARPs for IPv4 addresses, unsolicited neighbour
// advertisements (ndisc.go) for IPv6 ones. The frames are built once.
type garpSender struct {
	c      *packet.Conn
	ifi    *net.Interface
	ips    []netip.Addr
	frames [][]byte
	dsts   []*packet.Addr
}

// newGARPSender opens the socket; router sets the Router flag of neighbour
// advertisements (the interface forwards IPv6, as a director's does).
func newGARPSender(ifi *net.Interface, ips []netip.Addr, router bool) (*garpSender, error) {
	if len(ifi.HardwareAddr) != 6 {
		return nil, fmt.Errorf("vrrp: %s has no Ethernet address for gratuitous ARP", ifi.Name)
	}
	// Protocol 0: send only; this socket never needs to receive.
	c, err := packet.Listen(ifi, packet.Raw, 0, nil)
	if err != nil {
		return nil, fmt.Errorf("vrrp: open AF_PACKET socket on %s: %w", ifi.Name, err)
	}
	g := &garpSender{c: c, ifi: ifi, ips: ips}
	for _, ip := range ips {
		if ip.Is4() {
			g.frames = append(g.frames, garpFrame(ifi.HardwareAddr, ip))
			g.dsts = append(g.dsts, &packet.Addr{HardwareAddr: broadcastMAC})
		} else {
			g.frames = append(g.frames, naFrame(ifi.HardwareAddr, ip, router))
			g.dsts = append(g.dsts, &packet.Addr{HardwareAddr: allNodesMAC})
		}
	}
	return g, nil
}

// send sends repeat announcements for each address.
func (g *garpSender) send(repeat int) error {
	for i := 0; i < repeat; i++ {
		for n, f := range g.frames {
			if _, err := g.c.WriteTo(f, g.dsts[n]); err != nil {
				what := "gratuitous ARP"
				if g.ips[n].Is6() {
					what = "neighbour advertisement"
				}
				return fmt.Errorf("vrrp: send %s for %s on %s: %w", what, g.ips[n], g.ifi.Name, err)
			}
		}
	}
	return nil
}

func (g *garpSender) close() error { return g.c.Close() }
