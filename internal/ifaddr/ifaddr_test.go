package ifaddr

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"testing"

	"github.com/vishvananda/netlink"
)

func TestAddr(t *testing.T) {
	tests := []struct {
		prefix    string
		noDAD     bool
		wantIP    string
		wantBits  int
		wantLen   int // bytes of IP and of mask
		wantFlags int
	}{
		{"203.0.113.10/32", false, "203.0.113.10", 32, 4, 0},
		{"203.0.113.10/32", true, "203.0.113.10", 32, 4, 0}, // NoDAD is IPv6 only
		{"10.0.0.5/24", false, "10.0.0.5", 24, 4, 0},        // the host part is kept
		{"2001:db8::10/128", false, "2001:db8::10", 128, 16, 0},
		{"2001:db8::10/128", true, "2001:db8::10", 128, 16, syscall.IFA_F_NODAD},
		{"2001:db8::10/64", true, "2001:db8::10", 64, 16, syscall.IFA_F_NODAD},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s nodad=%v", tt.prefix, tt.noDAD), func(t *testing.T) {
			a := Manager{NoDAD: tt.noDAD}.Addr(netip.MustParsePrefix(tt.prefix))
			if a.IPNet == nil {
				t.Fatal("no IPNet")
			}
			if !a.IP.Equal(net.ParseIP(tt.wantIP)) || len(a.IP) != tt.wantLen {
				t.Errorf("IP = %v (%d bytes), want %s (%d bytes)", a.IP, len(a.IP), tt.wantIP, tt.wantLen)
			}
			if ones, bits := a.Mask.Size(); ones != tt.wantBits || bits != 8*tt.wantLen {
				t.Errorf("mask = /%d of %d, want /%d of %d", ones, bits, tt.wantBits, 8*tt.wantLen)
			}
			if a.Flags != tt.wantFlags {
				t.Errorf("flags = %#x, want %#x", a.Flags, tt.wantFlags)
			}
			if a.Scope != 0 || a.Label != "" || a.Broadcast != nil || a.Peer != nil {
				t.Errorf("fields beyond address, mask and flags set: %+v", a)
			}
		})
	}
}

func TestAbsent(t *testing.T) {
	wrapped := func(e syscall.Errno) error { return fmt.Errorf("netlink: %w", e) }
	tests := []struct {
		name   string
		absent []syscall.Errno
		err    error
		want   bool
	}{
		{"EADDRNOTAVAIL always", nil, syscall.EADDRNOTAVAIL, true},
		{"EADDRNOTAVAIL wrapped", nil, wrapped(syscall.EADDRNOTAVAIL), true},
		{"ENOENT not by default", nil, syscall.ENOENT, false},
		{"ENOENT when listed", []syscall.Errno{syscall.ENOENT}, syscall.ENOENT, true},
		{"ENODEV when listed", []syscall.Errno{syscall.ENODEV}, wrapped(syscall.ENODEV), true},
		{"ENODEV not when another is listed", []syscall.Errno{syscall.ENOENT}, syscall.ENODEV, false},
		{"EPERM", []syscall.Errno{syscall.ENOENT, syscall.ENODEV}, syscall.EPERM, false},
		{"not an errno", []syscall.Errno{syscall.ENOENT}, errors.New("boom"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := (Manager{Absent: tt.absent}).absent(tt.err); got != tt.want {
				t.Fatalf("absent(%v) with %v = %v, want %v", tt.err, tt.absent, got, tt.want)
			}
		})
	}
}

func TestPrefixOf(t *testing.T) {
	ipnet := func(ip net.IP, ones, bits int) *net.IPNet {
		return &net.IPNet{IP: ip, Mask: net.CIDRMask(ones, bits)}
	}
	tests := []struct {
		name string
		a    netlink.Addr
		want string // "" for not ok
	}{
		{"IPv4", netlink.Addr{IPNet: ipnet(net.IP{203, 0, 113, 10}, 32, 32)}, "203.0.113.10/32"},
		{"IPv4 in 16 bytes", netlink.Addr{IPNet: ipnet(net.ParseIP("10.0.0.5"), 24, 32)}, "10.0.0.5/24"},
		{"IPv6", netlink.Addr{IPNet: ipnet(net.ParseIP("2001:db8::10"), 128, 128)}, "2001:db8::10/128"},
		{"no IPNet", netlink.Addr{}, ""},
		{"no IP", netlink.Addr{IPNet: &net.IPNet{}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, ok := prefixOf(tt.a)
			switch {
			case tt.want == "" && ok:
				t.Fatalf("got %v, want none", p)
			case tt.want != "" && (!ok || p != netip.MustParsePrefix(tt.want)):
				t.Fatalf("got %v %v, want %s", p, ok, tt.want)
			}
		})
	}
}

// A Manager without a handle, or a call without a link, fails with an
// error instead of a panic.
func TestUnusableFails(t *testing.T) {
	p := netip.MustParsePrefix("203.0.113.10/32")
	link := &netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: "x0", Index: 7}}
	var m Manager
	if err := m.Add(link, p); err == nil {
		t.Error("Add without a handle succeeded")
	}
	if _, err := m.Del(link, p); err == nil {
		t.Error("Del without a handle succeeded")
	}
	if _, err := m.List(link, netlink.FAMILY_ALL); err == nil {
		t.Error("List without a handle succeeded")
	}
	// A zero Handle works on this process's namespace; with no link a
	// request could only name ifindex 0, which changes nothing.
	m.Handle = &netlink.Handle{}
	if err := m.Add(nil, p); err == nil {
		t.Error("Add without a link succeeded")
	}
	if _, err := m.Del(nil, p); err == nil {
		t.Error("Del without a link succeeded")
	}
	if _, err := m.List(nil, netlink.FAMILY_ALL); err == nil {
		t.Error("List without a link succeeded")
	}
}
