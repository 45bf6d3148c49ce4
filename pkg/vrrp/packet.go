package vrrp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Protocol constants from RFC 5798.
const (
	// IPProtocol is the IP protocol number of VRRP.
	IPProtocol = 112
	// Version is the only VRRP version this package speaks.
	Version = 3
	// TypeAdvertisement is the only VRRP packet type.
	TypeAdvertisement = 1
	// TTL is the IPv4 TTL (or IPv6 hop limit) every advertisement must carry.
	TTL = 255
	// PriorityStop is sent by a Master that stops, so a Backup takes over at once.
	PriorityStop = 0
	// PriorityOwner is the priority of the router that owns the VIPs.
	PriorityOwner = 255
	// MaxAdvertInterval is the largest interval the 12-bit field can carry.
	MaxAdvertInterval = 4095 * 10 * time.Millisecond
	// headerLen is the fixed part of an advertisement.
	headerLen = 8
)

// Multicast groups adverts are sent to (RFC 5798 section 5.1.1.2 and 5.1.2.2).
var (
	GroupIPv4 = netip.MustParseAddr("224.0.0.18")
	GroupIPv6 = netip.MustParseAddr("ff02::12")
)

// Errors returned by Decode. They are wrapped with details; test with errors.Is.
var (
	ErrTooShort = errors.New("vrrp: packet too short")
	ErrVersion  = errors.New("vrrp: unsupported version")
	ErrType     = errors.New("vrrp: unknown packet type")
	ErrLength   = errors.New("vrrp: address count does not match length")
	ErrChecksum = errors.New("vrrp: bad checksum")
	ErrFamily   = errors.New("vrrp: mixed or invalid address family")
)

// Advertisement is a VRRPv3 advertisement (RFC 5798 section 5.2).
type Advertisement struct {
	// VRID is the virtual router ID, 1-255.
	VRID uint8
	// Priority is the sender's priority: 0 = stopping, 1-254, 255 = owner.
	Priority uint8
	// Interval is the sender's advertisement interval. It is carried in
	// centiseconds; Marshal rounds down and rejects values that do not fit.
	Interval time.Duration
	// Addresses are the virtual addresses, all IPv4 or all IPv6.
	Addresses []netip.Addr
}

// String formats the advert for logs.
func (a *Advertisement) String() string {
	return fmt.Sprintf("vrid=%d prio=%d int=%s addrs=%v", a.VRID, a.Priority, a.Interval, a.Addresses)
}

// Marshal encodes a with a checksum over the pseudo-header made of src and
// dst, which must be the IP source and destination the packet will carry.
// src and dst decide the address family; a's addresses must match it.
func (a *Advertisement) Marshal(src, dst netip.Addr) ([]byte, error) {
	is4 := src.Is4()
	if is4 != dst.Is4() || (!is4 && (!src.Is6() || !dst.Is6())) {
		return nil, fmt.Errorf("vrrp: marshal: src %s and dst %s: %w", src, dst, ErrFamily)
	}
	if len(a.Addresses) > 255 {
		return nil, fmt.Errorf("vrrp: marshal: %d addresses, at most 255", len(a.Addresses))
	}
	cs := a.Interval / (10 * time.Millisecond)
	if cs < 1 || cs > 4095 {
		return nil, fmt.Errorf("vrrp: marshal: interval %s out of range 10ms-%s", a.Interval, MaxAdvertInterval)
	}
	alen := 16
	if is4 {
		alen = 4
	}
	b := make([]byte, headerLen+alen*len(a.Addresses))
	b[0] = Version<<4 | TypeAdvertisement
	b[1] = a.VRID
	b[2] = a.Priority
	b[3] = uint8(len(a.Addresses))
	binary.BigEndian.PutUint16(b[4:6], uint16(cs))
	off := headerLen
	for _, ip := range a.Addresses {
		if ip.Is4() != is4 || (!is4 && !ip.Is6()) {
			return nil, fmt.Errorf("vrrp: marshal: address %s: %w", ip, ErrFamily)
		}
		copy(b[off:], ip.AsSlice())
		off += alen
	}
	binary.BigEndian.PutUint16(b[6:8], Checksum(src, dst, b))
	return b, nil
}

// Decode parses an advertisement received with IP source src and
// destination dst (needed for the checksum and the address family). It does
// not check the TTL, which is not part of the VRRP payload; the caller must.
func Decode(b []byte, src, dst netip.Addr) (*Advertisement, error) {
	if len(b) < headerLen {
		return nil, fmt.Errorf("%w: %d bytes", ErrTooShort, len(b))
	}
	if v := b[0] >> 4; v != Version {
		return nil, fmt.Errorf("%w: %d", ErrVersion, v)
	}
	if t := b[0] & 0x0f; t != TypeAdvertisement {
		return nil, fmt.Errorf("%w: %d", ErrType, t)
	}
	is4 := src.Is4()
	if is4 != dst.Is4() || (!is4 && (!src.Is6() || !dst.Is6())) {
		return nil, fmt.Errorf("vrrp: decode: src %s and dst %s: %w", src, dst, ErrFamily)
	}
	alen := 16
	if is4 {
		alen = 4
	}
	n := int(b[3])
	// The count must fit in what was received; bytes past it are ignored
	// (RFC 5798 section 7.1 asks only that the length cover the count).
	if len(b) < headerLen+n*alen {
		return nil, fmt.Errorf("%w: count %d needs %d bytes, have %d", ErrLength, n, headerLen+n*alen, len(b))
	}
	b = b[:headerLen+n*alen]
	if Checksum(src, dst, b) != 0 {
		return nil, ErrChecksum
	}
	a := &Advertisement{
		VRID:      b[1],
		Priority:  b[2],
		Interval:  time.Duration(binary.BigEndian.Uint16(b[4:6])&0x0fff) * 10 * time.Millisecond,
		Addresses: make([]netip.Addr, 0, n),
	}
	for off := headerLen; off < len(b); off += alen {
		if is4 {
			a.Addresses = append(a.Addresses, netip.AddrFrom4([4]byte(b[off:off+4])))
		} else {
			a.Addresses = append(a.Addresses, netip.AddrFrom16([16]byte(b[off:off+16])))
		}
	}
	return a, nil
}

// Checksum returns the Internet checksum of the VRRP message b preceded by
// the pseudo-header for src and dst (RFC 5798 section 5.2.8: RFC 768 style
// for IPv4, RFC 8200 section 8.1 for IPv6). Over a message whose checksum
// field is filled in, it returns 0 when the checksum is right.
func Checksum(src, dst netip.Addr, b []byte) uint16 {
	return checksum(src, dst, IPProtocol, b)
}

// checksum is the Internet checksum of b preceded by the pseudo-header for
// src, dst and the upper-layer protocol proto (VRRP, or ICMPv6 for the
// neighbour adverts in ndisc.go).
func checksum(src, dst netip.Addr, proto uint32, b []byte) uint16 {
	var sum uint32
	add := func(p []byte) {
		for len(p) >= 2 {
			sum += uint32(binary.BigEndian.Uint16(p))
			p = p[2:]
		}
		if len(p) == 1 {
			sum += uint32(p[0]) << 8
		}
	}
	s, d := src.AsSlice(), dst.AsSlice()
	add(s)
	add(d)
	if src.Is4() {
		// zero, protocol, VRRP length (16 bits)
		sum += proto + uint32(len(b))
	} else {
		// upper-layer length (32 bits), three zero bytes, next header
		sum += uint32(len(b)>>16) + uint32(len(b)&0xffff) + proto
	}
	add(b)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
