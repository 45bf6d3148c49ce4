package vrrp

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	good := Config{Name: "vi", Interface: "eth0", VRID: 51, Priority: 100,
		VIPs: []netip.Prefix{netip.MustParsePrefix("203.0.113.10/32")}}
	tests := []struct {
		name string
		mod  func(c *Config)
		want string // substring of the error; "" = valid
	}{
		{"good", func(c *Config) {}, ""},
		{"no name", func(c *Config) { c.Name = "" }, "no name"},
		{"no interface", func(c *Config) { c.Interface = "" }, "no interface"},
		{"vrid 0", func(c *Config) { c.VRID = 0 }, "virtual router id"},
		{"priority 0", func(c *Config) { c.Priority = 0 }, "priority 0"},
		{"interval not 10ms steps", func(c *Config) { c.AdvertInterval = 105 * time.Millisecond }, "multiple of 10ms"},
		{"no vips", func(c *Config) { c.VIPs = nil }, "no virtual addresses"},
		{"ipv6 vips", func(c *Config) { c.VIPs = v6("2001:db8::1/128", "2001:db8::2/64") }, ""},
		{"mixed families", func(c *Config) { c.VIPs = append(c.VIPs, v6("2001:db8::1/128")...) }, "one address family"},
		{"mixed families v6 first", func(c *Config) { c.VIPs = append(v6("2001:db8::1/128"), c.VIPs...) }, "203.0.113.10/32 is IPv4 but 2001:db8::1/128 is IPv6"},
		{"mapped vip", func(c *Config) { c.VIPs = v6("::ffff:203.0.113.10/128") }, "invalid virtual address"},
		{"ipv6 peer for ipv4", func(c *Config) { c.UnicastPeers = []netip.Addr{netip.MustParseAddr("2001:db8::2")} }, "not IPv4"},
		{"ipv4 peer for ipv6", func(c *Config) {
			c.VIPs = v6("2001:db8::1/128")
			c.UnicastPeers = []netip.Addr{netip.MustParseAddr("10.0.0.2")}
		}, "not IPv6"},
		{"ipv6 unicast", func(c *Config) {
			c.VIPs = v6("2001:db8::1/128")
			c.UnicastPeers = []netip.Addr{netip.MustParseAddr("2001:db8::2"), netip.MustParseAddr("fe80::2%eth0")}
			c.SourceAddr = netip.MustParseAddr("2001:db8::3")
		}, ""},
		{"ipv6 multicast from global", func(c *Config) {
			c.VIPs = v6("2001:db8::1/128")
			c.SourceAddr = netip.MustParseAddr("2001:db8::3")
		}, "link-local"},
		{"ipv6 multicast from link-local", func(c *Config) {
			c.VIPs = v6("2001:db8::1/128")
			c.SourceAddr = netip.MustParseAddr("fe80::3")
		}, ""},
		{"ipv4 source for ipv6", func(c *Config) {
			c.VIPs = v6("2001:db8::1/128")
			c.SourceAddr = netip.MustParseAddr("10.0.0.3")
		}, "not IPv6"},
		{"negative garp", func(c *Config) { c.GARPMasterRepeat = -1 }, "gratuitous ARP"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			tt.mod(&c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func v6(ps ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range ps {
		out = append(out, netip.MustParsePrefix(p))
	}
	return out
}

func TestConfigDefaults(t *testing.T) {
	c := Config{}.withDefaults()
	if c.AdvertInterval != time.Second || c.GARPMasterDelay != 5*time.Second || c.GARPMasterRepeat != 5 || c.GARPMasterRefreshRepeat != 1 {
		t.Fatalf("defaults: %+v", c)
	}
	p := Config{Priority: 100, UnicastPeers: []netip.Addr{netip.MustParseAddr("10.0.0.2")}}.withDefaults().params()
	if !p.Preempt || !p.SoleBackup {
		t.Fatalf("params: %+v", p)
	}
	if p := (Config{NoPreempt: true}).params(); p.Preempt {
		t.Fatal("nopreempt ignored")
	}
}
