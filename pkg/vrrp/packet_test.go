package vrrp

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"
	"time"
)

var (
	src4 = netip.MustParseAddr("192.168.12.231")
	src6 = netip.MustParseAddr("fe80::1")
)

func TestMarshalLayout(t *testing.T) {
	a := &Advertisement{VRID: 51, Priority: 150, Interval: 100 * time.Millisecond,
		Addresses: []netip.Addr{netip.MustParseAddr("203.0.113.10"), netip.MustParseAddr("203.0.113.20")}}
	b, err := a.Marshal(src4, GroupIPv4)
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{0x31, 51, 150, 2, 0x00, 10, 0, 0, 203, 0, 113, 10, 203, 0, 113, 20}
	got := append([]byte(nil), b...)
	got[6], got[7] = 0, 0
	if !bytes.Equal(got, want) {
		t.Fatalf("layout\n got %x\nwant %x", got, want)
	}
	// Checksum computed by hand over pseudo-header + message:
	// c0a8 0ce7 e000 0012 0070 0010 3133 9602 000a 0000 cb00 710a cb00 7114
	if cs := uint16(b[6])<<8 | uint16(b[7]); cs != 0x127d {
		t.Fatalf("checksum %#04x, want %#04x", cs, 0x127d)
	}
}

// TestKeepalivedCapture decodes an advert keepalived 2.2.7 sent with
// vrrp_version 3 (captured with tcpdump: IP header TOS 0xc0, TTL 255,
// 192.168.12.231 -> 224.0.0.18), and encodes the same bytes: keepalived's
// IPv4 v3 checksum covers the pseudo-header, as RFC 5798 says.
func TestKeepalivedCapture(t *testing.T) {
	captured := []byte{0x31, 0x33, 0x96, 0x02, 0x00, 0x0a, 0x12, 0x7d, 0xcb, 0x00, 0x71, 0x0a, 0xcb, 0x00, 0x71, 0x14}
	a, err := Decode(captured, src4, GroupIPv4)
	if err != nil {
		t.Fatal(err)
	}
	want := "vrid=51 prio=150 int=100ms addrs=[203.0.113.10 203.0.113.20]"
	if a.String() != want {
		t.Fatalf("decoded %s, want %s", a, want)
	}
	b, err := a.Marshal(src4, GroupIPv4)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, captured) {
		t.Fatalf("encoded %x, keepalived sent %x", b, captured)
	}
}

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name     string
		src, dst netip.Addr
		a        Advertisement
	}{
		{"ipv4 multicast", src4, GroupIPv4, Advertisement{VRID: 1, Priority: 100, Interval: time.Second,
			Addresses: []netip.Addr{netip.MustParseAddr("10.0.0.1")}}},
		{"ipv4 unicast", src4, netip.MustParseAddr("192.168.12.232"), Advertisement{VRID: 255, Priority: 255, Interval: 40950 * time.Millisecond,
			Addresses: []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")}}},
		{"ipv4 stop no addrs", src4, GroupIPv4, Advertisement{VRID: 7, Priority: 0, Interval: 10 * time.Millisecond, Addresses: []netip.Addr{}}},
		{"ipv6", src6, GroupIPv6, Advertisement{VRID: 9, Priority: 1, Interval: 100 * time.Millisecond,
			Addresses: []netip.Addr{netip.MustParseAddr("fe80::99"), netip.MustParseAddr("2001:db8::1")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.a.Marshal(tt.src, tt.dst)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Decode(b, tt.src, tt.dst)
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != tt.a.String() {
				t.Fatalf("got %s, want %s", got, &tt.a)
			}
			// The pseudo-header is covered: another destination fails.
			other := netip.MustParseAddr("224.0.0.1")
			if tt.dst.Is6() {
				other = netip.MustParseAddr("ff02::1")
			}
			if _, err := Decode(b, tt.src, other); !errors.Is(err, ErrChecksum) {
				t.Fatalf("decode with other dst: err %v, want ErrChecksum", err)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	good, err := (&Advertisement{VRID: 1, Priority: 100, Interval: time.Second,
		Addresses: []netip.Addr{netip.MustParseAddr("10.0.0.1")}}).Marshal(src4, GroupIPv4)
	if err != nil {
		t.Fatal(err)
	}
	mod := func(f func(b []byte) []byte) []byte {
		return f(append([]byte(nil), good...))
	}
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"short", good[:7], ErrTooShort},
		{"version 2", mod(func(b []byte) []byte { b[0] = 0x21; return b }), ErrVersion},
		{"type 2", mod(func(b []byte) []byte { b[0] = 0x32; return b }), ErrType},
		{"count too big", mod(func(b []byte) []byte { b[3] = 2; return b }), ErrLength},
		{"flipped priority", mod(func(b []byte) []byte { b[2] ^= 1; return b }), ErrChecksum},
		{"flipped address", mod(func(b []byte) []byte { b[11] ^= 0x80; return b }), ErrChecksum},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Decode(tt.b, src4, GroupIPv4); !errors.Is(err, tt.want) {
				t.Fatalf("err %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := Decode(good, src4, GroupIPv6); !errors.Is(err, ErrFamily) {
		t.Fatalf("mixed family: err %v, want ErrFamily", err)
	}
	// Padding past the addresses is ignored.
	if _, err := Decode(append(append([]byte(nil), good...), 0, 0), src4, GroupIPv4); err != nil {
		t.Fatalf("padded: %v", err)
	}
}

func TestMarshalErrors(t *testing.T) {
	v4 := []netip.Addr{netip.MustParseAddr("10.0.0.1")}
	tests := []struct {
		name string
		a    Advertisement
		dst  netip.Addr
	}{
		{"interval zero", Advertisement{Interval: 0, Addresses: v4}, GroupIPv4},
		{"interval too big", Advertisement{Interval: MaxAdvertInterval + 10*time.Millisecond, Addresses: v4}, GroupIPv4},
		{"mixed family dst", Advertisement{Interval: time.Second, Addresses: v4}, GroupIPv6},
		{"v6 address in v4 packet", Advertisement{Interval: time.Second, Addresses: []netip.Addr{src6}}, GroupIPv4},
		{"too many", Advertisement{Interval: time.Second, Addresses: make([]netip.Addr, 256)}, GroupIPv4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.a.Marshal(src4, tt.dst); err == nil {
				t.Fatal("no error")
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	for _, a := range []Advertisement{
		{VRID: 51, Priority: 150, Interval: 100 * time.Millisecond, Addresses: []netip.Addr{netip.MustParseAddr("203.0.113.10")}},
		{VRID: 1, Priority: 0, Interval: time.Second},
	} {
		b, _ := a.Marshal(src4, GroupIPv4)
		f.Add(b, false)
	}
	b, _ := (&Advertisement{VRID: 2, Priority: 9, Interval: time.Second, Addresses: []netip.Addr{src6}}).Marshal(src6, GroupIPv6)
	f.Add(b, true)
	f.Fuzz(func(t *testing.T, b []byte, v6 bool) {
		src, dst := src4, GroupIPv4
		if v6 {
			src, dst = src6, GroupIPv6
		}
		a, err := Decode(b, src, dst)
		if err != nil {
			return
		}
		// Whatever decodes must encode back to the same bytes.
		out, err := a.Marshal(src, dst)
		if err != nil {
			// Interval 0 and reserved bits are accepted on input only.
			if a.Interval == 0 {
				return
			}
			t.Fatalf("re-marshal %s: %v", a, err)
		}
		n := len(out)
		in := append([]byte(nil), b[:n]...)
		in[4] &= 0x0f // reserved bits
		if in[4] != b[4] {
			return // checksum differs when reserved bits were set
		}
		if !bytes.Equal(in, out) {
			t.Fatalf("round trip\n in %x\nout %x", in, out)
		}
	})
}
