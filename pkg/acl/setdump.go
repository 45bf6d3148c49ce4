package acl

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// ipset netlink attribute numbers (linux/netfilter/ipset/ip_set.h).
const (
	nlaTypeMask      = 0x3fff // strips NLA_F_NESTED and NLA_F_NET_BYTEORDER
	nlaFNetByteorder = 1 << 14

	ipsetAttrSetName  = 2
	ipsetAttrTypeName = 3
	ipsetAttrFamily   = 5
	ipsetAttrData     = 7
	ipsetAttrADT      = 8
	ipsetAttrElements = 24 // inside DATA of a list dump
	ipsetAttrIP       = 1  // inside DATA
	ipsetAttrCIDR     = 3  // inside DATA
	ipsetAttrIPv4     = 1  // inside IP
	ipsetAttrIPv6     = 2  // inside IP

	afInet  = 2
	afInet6 = 10
)

// nlAttr is one netlink attribute: type (flags included) and value.
type nlAttr struct {
	typ uint16
	val []byte
}

// parseAttrs splits a run of netlink attributes (host-endian headers,
// values padded to four bytes).
func parseAttrs(b []byte) ([]nlAttr, error) {
	var out []nlAttr
	for len(b) > 0 {
		if len(b) < 4 {
			return nil, fmt.Errorf("netlink attribute: %d trailing bytes", len(b))
		}
		l := int(binary.NativeEndian.Uint16(b[0:2]))
		if l < 4 || l > len(b) {
			return nil, fmt.Errorf("netlink attribute: length %d of %d bytes", l, len(b))
		}
		out = append(out, nlAttr{typ: binary.NativeEndian.Uint16(b[2:4]), val: b[4:l]})
		b = b[min((l+3)&^3, len(b)):]
	}
	return out, nil
}

func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// msgAttrs returns the attributes of one ipset dump message, after its
// 4-byte nfgenmsg.
func msgAttrs(msg []byte) ([]nlAttr, error) {
	if len(msg) < 4 {
		return nil, fmt.Errorf("ipset dump: short message (%d bytes)", len(msg))
	}
	attrs, err := parseAttrs(msg[4:])
	if err != nil {
		return nil, fmt.Errorf("ipset dump: %w", err)
	}
	return attrs, nil
}

// parseSetDump decodes the messages of an ipset list dump (each starting
// with its 4-byte nfgenmsg). Only sets for which keep returns true are
// decoded and returned; a set spread over several messages is merged (only
// its first message carries the type and family). vishvananda/netlink's
// own decoder is not used because it returns one result per message,
// logs through the global logger on attributes it does not know (those
// of sets made by a newer ipset tool), and may panic on unexpected errors.
func parseSetDump(msgs [][]byte, keep func(name string) bool) ([]setInfo, error) {
	var out []setInfo
	index := map[string]int{}
	for _, msg := range msgs {
		attrs, err := msgAttrs(msg)
		if err != nil {
			return nil, err
		}
		var (
			name, typ string
			af        uint8
			adt       []byte
		)
		for _, a := range attrs {
			switch a.typ & nlaTypeMask {
			case ipsetAttrSetName:
				name = cString(a.val)
			case ipsetAttrTypeName:
				typ = cString(a.val)
			case ipsetAttrFamily:
				if len(a.val) > 0 {
					af = a.val[0]
				}
			case ipsetAttrADT:
				adt = a.val
			}
		}
		if name == "" || !keep(name) {
			continue
		}
		i, seen := index[name]
		if !seen {
			i = len(out)
			index[name] = i
			out = append(out, setInfo{name: name})
		}
		s := &out[i]
		if typ != "" {
			s.typ = typ
			s.family = v4
			if af == afInet6 {
				s.family = v6
			}
		}
		if adt != nil {
			if s.entries, err = parseADT(adt, s.entries); err != nil {
				return nil, fmt.Errorf("ipset dump: set %s: %w", name, err)
			}
		}
	}
	for i := range out {
		sortPrefixes(out[i].entries)
	}
	return out, nil
}

// parseADT appends the IP/CIDR entries of an IPSET_ATTR_ADT list.
func parseADT(b []byte, entries []netip.Prefix) ([]netip.Prefix, error) {
	items, err := parseAttrs(b)
	if err != nil {
		return nil, err
	}
	for _, item := range items {
		if item.typ&nlaTypeMask != ipsetAttrData {
			continue
		}
		fields, err := parseAttrs(item.val)
		if err != nil {
			return nil, err
		}
		var (
			addr netip.Addr
			bits = -1
		)
		for _, f := range fields {
			switch f.typ & nlaTypeMask {
			case ipsetAttrIP:
				ips, err := parseAttrs(f.val)
				if err != nil {
					return nil, err
				}
				for _, ip := range ips {
					switch t := ip.typ & nlaTypeMask; {
					case t == ipsetAttrIPv4 && len(ip.val) == 4:
						addr = netip.AddrFrom4([4]byte(ip.val))
					case t == ipsetAttrIPv6 && len(ip.val) == 16:
						addr = netip.AddrFrom16([16]byte(ip.val))
					}
				}
			case ipsetAttrCIDR:
				if len(f.val) > 0 {
					bits = int(f.val[0])
				}
			}
		}
		if !addr.IsValid() {
			return nil, fmt.Errorf("entry without an address")
		}
		if bits < 0 {
			bits = addr.BitLen()
		}
		if bits > addr.BitLen() {
			return nil, fmt.Errorf("entry %s/%d: prefix too long", addr, bits)
		}
		entries = append(entries, netip.PrefixFrom(addr, bits))
	}
	return entries, nil
}

// parseSetSizes decodes the messages of a header-only ipset list dump
// (IPSET_FLAG_LIST_HEADER) into every set's entry count. A set whose
// header carries no count is left out.
func parseSetSizes(msgs [][]byte) (map[string]int, error) {
	sizes := map[string]int{}
	for _, msg := range msgs {
		attrs, err := msgAttrs(msg)
		if err != nil {
			return nil, err
		}
		var name string
		n := -1
		for _, a := range attrs {
			switch a.typ & nlaTypeMask {
			case ipsetAttrSetName:
				name = cString(a.val)
			case ipsetAttrData:
				data, err := parseAttrs(a.val)
				if err != nil {
					return nil, fmt.Errorf("ipset dump: set %s: %w", name, err)
				}
				for _, d := range data {
					if d.typ&nlaTypeMask != ipsetAttrElements || len(d.val) < 4 {
						continue
					}
					if d.typ&nlaFNetByteorder != 0 {
						n = int(binary.BigEndian.Uint32(d.val))
					} else {
						n = int(binary.NativeEndian.Uint32(d.val))
					}
				}
			}
		}
		if name != "" && n >= 0 {
			sizes[name] = n
		}
	}
	return sizes, nil
}
