package vrrp

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"
)

// checkNAFrame checks every field of an unsolicited neighbour advert and
// its checksum against x/net/icmp's, an independent implementation.
func checkNAFrame(t *testing.T, f []byte, mac net.HardwareAddr, ip netip.Addr, router bool) {
	t.Helper()
	if len(f) != 14+40+32 {
		t.Fatalf("frame length %d", len(f))
	}
	if !bytes.Equal(f[0:6], allNodesMAC) || !bytes.Equal(f[6:12], mac) || binary.BigEndian.Uint16(f[12:14]) != 0x86dd {
		t.Fatalf("Ethernet header %x", f[:14])
	}
	h, err := ipv6.ParseHeader(f[14:54])
	if err != nil {
		t.Fatal(err)
	}
	if h.Version != 6 || h.PayloadLen != 32 || h.NextHeader != 58 || h.HopLimit != 255 ||
		!h.Src.Equal(ip.AsSlice()) || !h.Dst.Equal(net.ParseIP("ff02::1")) {
		t.Fatalf("IPv6 header %+v", h)
	}
	m := f[54:]
	flags := byte(0x20)
	if router {
		flags |= 0x80
	}
	if m[0] != 136 || m[1] != 0 || m[4] != flags || !bytes.Equal(m[5:8], []byte{0, 0, 0}) {
		t.Fatalf("ICMPv6 NA header %x", m[:8])
	}
	if !bytes.Equal(m[8:24], ip.AsSlice()) || m[24] != 2 || m[25] != 1 || !bytes.Equal(m[26:32], mac) {
		t.Fatalf("target or option %x", m[8:])
	}
	body := append([]byte(nil), m[4:]...)
	want, err := (&icmp.Message{Type: ipv6.ICMPTypeNeighborAdvertisement, Body: &icmp.RawBody{Data: body}}).
		Marshal(icmp.IPv6PseudoHeader(h.Src, h.Dst))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m[2:4], want[2:4]) {
		t.Fatalf("checksum %x, x/net/icmp says %x", m[2:4], want[2:4])
	}
}

func TestNAFrame(t *testing.T) {
	mac := net.HardwareAddr{0x02, 0x00, 0x5e, 0x10, 0x20, 0x30}
	for _, tt := range []struct {
		ip     string
		router bool
	}{
		{"2001:db8::10", false},
		{"2001:db8::10", true},
		{"fd99::100", false},
		{"fe80::1", true},
	} {
		ip := netip.MustParseAddr(tt.ip)
		checkNAFrame(t, naFrame(mac, ip, tt.router), mac, ip, tt.router)
	}
}

func FuzzNAFrame(f *testing.F) {
	f.Add([]byte{2, 0, 0x5e, 1, 2, 3}, []byte(netip.MustParseAddr("2001:db8::10").AsSlice()), false)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, bytes.Repeat([]byte{0xff}, 16), true)
	f.Fuzz(func(t *testing.T, macb, ipb []byte, router bool) {
		if len(macb) != 6 || len(ipb) != 16 {
			return
		}
		ip := netip.AddrFrom16([16]byte(ipb))
		mac := net.HardwareAddr(macb)
		checkNAFrame(t, naFrame(mac, ip, router), mac, ip, router)
	})
}
