package vrrp

import (
	"encoding/binary"
	"net"
	"net/netip"
)

// Unsolicited neighbour advertisements (RFC 4861 section 7.2.6), the IPv6
// counterpart of gratuitous ARP: a new Master sends one per IPv6 VIP to
// all-nodes, with the Override flag, so that neighbours that have an entry
// for the VIP point it at the new Master's MAC address.

const (
	etherTypeIPv6      = 0x86dd
	protoICMPv6        = 58
	icmpv6NeighborAdv  = 136
	naFlagRouter       = 0x80
	naFlagOverride     = 0x20
	ndOptTargetLLAddr  = 2
	ipv6HeaderLen      = 40
	neighborAdvLen     = 24 // type, code, checksum, flags, target
	neighborAdvOptsLen = 8  // target link-layer address option for Ethernet
)

var (
	allNodes    = netip.MustParseAddr("ff02::1")
	allNodesMAC = net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}
)

// naFrame returns an Ethernet frame carrying an unsolicited neighbour
// advertisement for ip from mac, as the kernel sends its own
// (ndisc_send_unsol_na): source address ip itself, destination ff02::1, hop
// limit 255, Override set, Solicited clear, the target link-layer address
// option, and Router set when router (the interface forwards IPv6).
func naFrame(mac net.HardwareAddr, ip netip.Addr, router bool) []byte {
	icmpLen := neighborAdvLen + neighborAdvOptsLen
	b := make([]byte, 14+ipv6HeaderLen+icmpLen)
	copy(b[0:6], allNodesMAC)
	copy(b[6:12], mac)
	binary.BigEndian.PutUint16(b[12:14], etherTypeIPv6)
	h := b[14 : 14+ipv6HeaderLen]
	h[0] = 6 << 4 // version; traffic class and flow label 0
	binary.BigEndian.PutUint16(h[4:6], uint16(icmpLen))
	h[6] = protoICMPv6
	h[7] = TTL // hop limit: receivers drop NDP with anything else
	src, dst := ip.As16(), allNodes.As16()
	copy(h[8:24], src[:])
	copy(h[24:40], dst[:])
	m := b[14+ipv6HeaderLen:]
	m[0] = icmpv6NeighborAdv
	m[4] = naFlagOverride
	if router {
		m[4] |= naFlagRouter
	}
	copy(m[8:24], src[:])
	m[24], m[25] = ndOptTargetLLAddr, 1 // length in units of 8 bytes
	copy(m[26:32], mac)
	binary.BigEndian.PutUint16(m[2:4], checksum(ip, allNodes, protoICMPv6, m))
	return b
}
