package acl

import (
	"fmt"
	"net/netip"
	"slices"
)

// Protocol is the transport protocol of a tenant's service.
type Protocol string

// The protocols a tenant's service can use.
const (
	TCP Protocol = "tcp"
	UDP Protocol = "udp"
)

// MaxNameLen is the longest tenant name accepted. The name is carried in
// rule comments and, shortened, in set names.
const MaxNameLen = 64

// Tenant is one fenced service and the sources allowed to reach it.
type Tenant struct {
	// Name identifies the fence; letters, digits, '.', '_', '-' and '+' only
	Name string
	// VIP is the service address. The zero Addr means every local address,
	// both families (a storage node fencing its real address as well as
	// the VIP on its loopback).
	VIP netip.Addr
	// Port is the service port; it must not be 0.
	Port uint16
	// Protocol is TCP or UDP; empty means TCP.
	Protocol Protocol
	// Allow lists the sources allowed in. Empty means nobody. Entries are
	// addresses (as /32 or /128) or networks; host bits are cleared.
	Allow []netip.Prefix
}

// family is an IP address family.
type family int

const (
	v4 family = 4
	v6 family = 6
)

func (f family) String() string { return fmt.Sprintf("IPv%d", int(f)) }

func familyOf(a netip.Addr) family {
	if a.Is4() {
		return v4
	}
	return v6
}

// families returns the families a tenant's service is fenced in.
func (t Tenant) families() []family {
	if !t.VIP.IsValid() {
		return []family{v4, v6}
	}
	return []family{familyOf(t.VIP)}
}

// key identifies the traffic a tenant's rule matches, for clash detection.
type serviceKey struct {
	vip   netip.Addr
	port  uint16
	proto Protocol
}

// normalize validates t and returns a copy with the VIP unmapped, the
// protocol defaulted and the allow-list canonical (see normalizeAllow).
func (t Tenant) normalize() (Tenant, error) {
	if err := validName(t.Name); err != nil {
		return Tenant{}, err
	}
	switch t.Protocol {
	case "":
		t.Protocol = TCP
	case TCP, UDP:
	default:
		return Tenant{}, fmt.Errorf("acl: tenant %s: protocol %q is not tcp or udp", t.Name, t.Protocol)
	}
	if t.Port == 0 {
		return Tenant{}, fmt.Errorf("acl: tenant %s: port 0", t.Name)
	}
	if t.VIP.IsValid() {
		if t.VIP.Zone() != "" {
			return Tenant{}, fmt.Errorf("acl: tenant %s: VIP %s has a zone", t.Name, t.VIP)
		}
		t.VIP = t.VIP.Unmap()
		if t.VIP.IsUnspecified() {
			return Tenant{}, fmt.Errorf("acl: tenant %s: VIP %s is unspecified; leave it empty for every address", t.Name, t.VIP)
		}
	}
	allow, err := normalizeAllow(t.Allow)
	if err != nil {
		return Tenant{}, fmt.Errorf("acl: tenant %s: %w", t.Name, err)
	}
	if t.VIP.IsValid() {
		for _, p := range allow {
			if familyOf(p.Addr()) != familyOf(t.VIP) {
				return Tenant{}, fmt.Errorf("acl: tenant %s: allow entry %s is %s but VIP %s is %s",
					t.Name, p, familyOf(p.Addr()), t.VIP, familyOf(t.VIP))
			}
		}
	}
	t.Allow = allow
	return t, nil
}

func validName(name string) error {
	if name == "" {
		return fmt.Errorf("acl: empty tenant name")
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("acl: tenant name %.20q... longer than %d bytes", name, MaxNameLen)
	}
	for _, r := range name {
		if !nameChar(r) {
			return fmt.Errorf("acl: tenant name %q: character %q not allowed", name, r)
		}
	}
	return nil
}

func nameChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
		r == '.' || r == '_' || r == '-' || r == '+'
}

// normalizeAllow returns the allow-list in canonical order without
// duplicates: host bits cleared, IPv4-mapped IPv6 prefixes turned into IPv4.
func normalizeAllow(in []netip.Prefix) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(in))
	for _, p := range in {
		np, err := normalizePrefix(p)
		if err != nil {
			return nil, err
		}
		out = append(out, np)
	}
	sortPrefixes(out)
	return slices.Compact(out), nil
}

func normalizePrefix(p netip.Prefix) (netip.Prefix, error) {
	if !p.IsValid() {
		return netip.Prefix{}, fmt.Errorf("invalid allow entry %q", p)
	}
	a := p.Addr()
	if a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("allow entry %s has a zone", p)
	}
	bits := p.Bits()
	if a.Is4In6() && bits >= 96 {
		a, bits = a.Unmap(), bits-96
	}
	return netip.PrefixFrom(a, bits).Masked(), nil
}

func sortPrefixes(ps []netip.Prefix) {
	slices.SortFunc(ps, comparePrefix)
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// setEntries turns an allow-list into the entries of the family's hash:net
// set. hash:net cannot hold a /0, so "everyone" becomes the two halves.
func setEntries(allow []netip.Prefix, f family) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range allow {
		if familyOf(p.Addr()) != f {
			continue
		}
		if p.Bits() == 0 {
			if f == v4 {
				out = append(out, netip.MustParsePrefix("0.0.0.0/1"), netip.MustParsePrefix("128.0.0.0/1"))
			} else {
				out = append(out, netip.MustParsePrefix("::/1"), netip.MustParsePrefix("8000::/1"))
			}
			continue
		}
		out = append(out, p)
	}
	sortPrefixes(out)
	return slices.Compact(out)
}
