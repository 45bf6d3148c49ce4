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
		{"ipv6 vip", func(c *Config) { c.VIPs = []netip.Prefix{netip.MustParsePrefix("2001:db8::1/128")} }, "only IPv4"},
		{"ipv6 peer", func(c *Config) { c.UnicastPeers = []netip.Addr{netip.MustParseAddr("2001:db8::2")} }, "not IPv4"},
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
