package config

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestExamplesLoad(t *testing.T) {
	files, err := filepath.Glob("../../examples/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples found: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			if _, err := Load(f); err != nil {
				t.Fatalf("Load(%s):\n%v", f, err)
			}
		})
	}
}

// The seed's keepalived setup must come out exactly as keepalived would
// program it: VIP:port in DR, rr, four real servers of weight 1, TCP_CHECK
// 3/5/10 with inhibit_on_failure.
func TestSeed000Example(t *testing.T) {
	c, err := Load("../../examples/seed000-kvs.yaml")
	if err != nil {
		t.Fatal(err)
	}
	svcs := c.Services()
	if len(svcs) != 1 {
		t.Fatalf("got %d services, want 1", len(svcs))
	}
	s := svcs[0]
	if s.Scheduler != "rr" || s.Forward != "dr" || s.Protocol != "tcp" || s.Port != 13101 {
		t.Errorf("service = %+v", s)
	}
	want := []string{"192.168.12.233", "192.168.12.234", "192.168.12.235", "192.168.12.236"}
	if len(s.Reals) != len(want) {
		t.Fatalf("reals = %+v", s.Reals)
	}
	for i, r := range s.Reals {
		if r.Addr.String() != want[i] || r.Port != 13101 || r.Weight != 1 {
			t.Errorf("real %d = %+v", i, r)
		}
	}
	h := s.Health
	wantH := HealthSpec{Type: "tcp", ConnectTimeout: 3 * time.Second, Retry: 1, DelayBeforeRetry: 5 * time.Second,
		DelayLoop: 10 * time.Second, InhibitOnFailure: true}
	if h.Type != wantH.Type || h.ConnectTimeout != wantH.ConnectTimeout || h.Retry != wantH.Retry ||
		h.DelayBeforeRetry != wantH.DelayBeforeRetry || h.DelayLoop != wantH.DelayLoop || !h.InhibitOnFailure {
		t.Errorf("health = %+v, want %+v", h, wantH)
	}
	if len(s.Allow) != 3 {
		t.Errorf("allow = %v", s.Allow)
	}
}

func TestKeepalivedDefaults(t *testing.T) {
	c, err := Parse([]byte(`
virtual_services:
  - vip: 10.0.0.1
    port: 80
    reals: [{address: 10.0.1.1}]
`), "d.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := c.Services()[0]
	h := s.Health
	if h.Type != "tcp" || h.ConnectTimeout != 5*time.Second || h.Retry != 1 ||
		h.DelayBeforeRetry != time.Second || h.DelayLoop != 60*time.Second || h.InhibitOnFailure || h.Alpha {
		t.Errorf("health defaults = %+v", h)
	}
	if s.Reals[0].Weight != 1 || s.Scheduler != "wlc" || s.Forward != "dr" || s.Protocol != "tcp" {
		t.Errorf("service defaults = %+v", s)
	}
	if s.Allow != nil {
		t.Errorf("plain service must not be fenced, allow = %v", s.Allow)
	}
	if c.Defaults.DrainPeriod.D() != DefaultDrainPeriod || c.Daemon.StateDir != DefaultStateDir {
		t.Errorf("daemon defaults = %+v %+v", c.Defaults, c.Daemon)
	}
}

func TestHealthInheritance(t *testing.T) {
	c, err := Parse([]byte(`
nodes:
  - {name: st1, role: storage, address: 10.0.1.1}
defaults:
  health: {type: memcached, delay_loop: 7s, inhibit_on_failure: true}
tenants:
  - name: a
    service: {vip: 10.0.0.1, port: 11211}
    allow: []
    health: {connect_timeout: 2s}
`), "h.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := c.Services()[0]
	if s.Health.Type != "memcached" || s.Health.DelayLoop != 7*time.Second || s.Health.ConnectTimeout != 2*time.Second || !s.Health.InhibitOnFailure {
		t.Errorf("health = %+v", s.Health)
	}
	if s.Allow == nil || len(s.Allow) != 0 {
		t.Errorf("empty allow must be an empty non-nil list (nobody), got %#v", s.Allow)
	}
	if len(s.Reals) != 1 || s.Reals[0].Node != "st1" || s.Reals[0].Port != 11211 {
		t.Errorf("tenant reals = %+v", s.Reals)
	}
}

// Every problem is reported, each with file:line.
func TestErrorsHaveFileLine(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // substrings, each must appear as a "file:line: ..." problem
	}{
		{"unknown key", "nodes:\n  - {name: a, role: storage, address: 10.0.0.1, colour: red}\n",
			[]string{`f.yaml:2: unknown key "colour" in Node`}},
		{"bad port and scheduler", `
virtual_services:
  - vip: 10.0.0.1
    port: 70000
    scheduler: fastest
    reals: [{address: 10.0.1.1}]
`, []string{"f.yaml:4: port 70000 out of range", "f.yaml:5: unknown scheduler \"fastest\""}},
		{"duplicate service", `
virtual_services:
  - {vip: 10.0.0.1, port: 80, reals: [{address: 10.0.1.1}]}
  - {vip: 10.0.0.1, port: 80, reals: [{address: 10.0.1.2}]}
`, []string{"f.yaml:4: duplicate service tcp/10.0.0.1:80 (first at line 3)"}},
		{"real listed twice and weight", `
virtual_services:
  - vip: 10.0.0.1
    port: 80
    reals:
      - {address: 10.0.1.1}
      - {address: 10.0.1.1}
      - {address: 10.0.1.2, weight: 70000}
`, []string{"f.yaml:7: real server 10.0.1.1:80 listed twice (first at line 6)", "f.yaml:8: weight 70000 out of range"}},
		{"bad cidr", `
nodes: [{name: s, role: storage, address: 10.0.1.1}]
tenants:
  - name: t
    service: {vip: 10.0.0.1, port: 11211}
    allow:
      - 198.51.100.7/28
      - not-an-ip
`, []string{"f.yaml:7: allow \"198.51.100.7/28\": has host bits set; did you mean 198.51.100.0/28?",
			"f.yaml:8: allow \"not-an-ip\": not an address or CIDR"}},
		{"bad duration", `
defaults:
  health: {connect_timeout: soon}
`, []string{"f.yaml:3: invalid duration \"soon\""}},
		{"tenants sharing a port", `
nodes: [{name: s, role: storage, address: 10.0.1.1}]
tenants:
  - {name: a, service: {vip: 10.0.0.1, port: 11211}}
  - {name: b, service: {vip: 10.0.0.2, port: 11211}}
`, []string{"f.yaml:5: port 11211 already belongs to another tenant (line 4)"}},
		{"tenant over udp", `
nodes: [{name: s, role: storage, address: 10.0.1.1}]
tenants:
  - name: a
    service: {vip: 10.0.0.1, port: 11211, protocol: udp}
`, []string{"f.yaml:5: tenant \"a\": its store speaks memcached over TCP; protocol must be tcp"}},
		{"dr cannot change port", `
virtual_services:
  - {vip: 10.0.0.1, port: 80, reals: [{address: 10.0.1.1, port: 8080}]}
`, []string{"f.yaml:3: dr forwarding cannot change the port"}},
		{"vrrp checks", `
nodes: [{name: lb1, role: director, address: 10.0.0.2}]
vrrp: {virtual_router_id: 300, advert_interval: 15ms, vips: [10.0.0.1]}
`, []string{"f.yaml:2: director \"lb1\" needs an interface", "f.yaml:3: virtual_router_id 300 out of range",
			"f.yaml:3: advert_interval 15ms"}},
		{"vrrp families", `
nodes:
  - {name: lb1, role: director, address: 10.0.0.2, interface: eth0}
  - {name: lb2, role: director, address: "2001:db8::3", interface: eth0}
vrrp:
  virtual_router_id: 5
  unicast: true
  vips:
    - "2001:db8::1"
    - 10.0.0.1
    - "fe80::1%eth0"
`, []string{`f.yaml:10: vip 10.0.0.1 and vip 2001:db8::1 are of different families`,
			`f.yaml:11: invalid vip "fe80::1%eth0"`,
			`f.yaml:3: director "lb1": vrrp.unicast sends from and to the directors' addresses, and 10.0.0.2 is not of the vips' family`}},
		{"family mismatch", `
virtual_services:
  - {vip: "2001:db8::1", port: 80, reals: [{address: 10.0.1.1}]}
`, []string{"f.yaml:3: real server 10.0.1.1 and vip 2001:db8::1 are of different families"}},
		{"names", `
nodes:
  - {role: storage, address: 10.0.1.1}
  - {name: "a b", role: storage, address: 10.0.1.2}
  - {name: s, role: storage, address: 10.0.1.3}
  - {name: s, role: storage, address: 10.0.1.4}
tenants:
  - {service: {vip: 10.0.0.1, port: 11211}}
  - {name: "x/y", service: {vip: 10.0.0.1, port: 11212}}
  - {name: t, service: {vip: 10.0.0.1, port: 11213}}
  - {name: t, service: {vip: 10.0.0.1, port: 11214}}
`, []string{"f.yaml:3: node has no name", `f.yaml:4: node name "a b": use letters`, `f.yaml:6: duplicate node "s" (first at line 5)`,
			"f.yaml:8: tenant has no name", `f.yaml:9: tenant name "x/y": use letters`, `f.yaml:11: duplicate tenant "t" (first at line 10)`}},
		{"syntax error", "nodes: [\n", []string{"f.yaml:"}},
		{"two documents", "nodes: []\n---\nnodes: []\n", []string{"more than one YAML document"}},
		{"not a mapping", "- a\n- b\n", []string{"f.yaml:1: cannot unmarshal"}},
		{"nested unknown key", "defaults:\n  health:\n    tpye: tcp\n", []string{`f.yaml:3: unknown key "tpye" in Health`}},
		{"unknown key beside inlined ones", "virtual_services:\n  - {vip: 10.0.0.1, port: 80, shceduler: rr, reals: [{address: 10.0.1.1}]}\n",
			[]string{`f.yaml:2: unknown key "shceduler" in VirtualService`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml), "f.yaml")
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want *config.Error", err)
			}
			msg := err.Error()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error\n%s\ndoes not contain %q", msg, w)
				}
			}
			for _, p := range ce.Problems {
				if p.File != "f.yaml" {
					t.Errorf("problem without file: %+v", p)
				}
			}
		})
	}
}

func TestParseAllow(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr string
	}{
		{in: "198.51.100.7", want: "198.51.100.7/32"},
		{in: " 198.51.100.0/28 ", want: "198.51.100.0/28"},
		{in: "2001:db8::1", want: "2001:db8::1/128"},
		{in: "2001:db8::/32", want: "2001:db8::/32"},
		{in: "::ffff:192.0.2.1", want: "192.0.2.1/32"},
		{in: "::ffff:192.0.2.0/120", want: "192.0.2.0/24"},
		{in: "::ffff:0:0/96", want: "0.0.0.0/0"},
		{in: "0.0.0.0/0", want: "0.0.0.0/0"},
		{in: "10.0.0.1/8", wantErr: "host bits set; did you mean 10.0.0.0/8?"},
		{in: "10.0.0.0/33", wantErr: "not an address or CIDR"},
		{in: "fe80::1%eth0", wantErr: "zones are not allowed"},
		{in: "", wantErr: "not an address or CIDR"},
		{in: "example.com", wantErr: "not an address or CIDR"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseAllow([]string{tt.in})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got[0].String() != tt.want {
				t.Errorf("got %s, want %s", got[0], tt.want)
			}
		})
	}
	if _, err := ParseAllow([]string{"192.0.2.1", "::ffff:192.0.2.1"}); err == nil || !strings.Contains(err.Error(), "listed twice") {
		t.Errorf("an address and its mapped form: err = %v, want listed twice", err)
	}
}

func TestSizesAndDurations(t *testing.T) {
	for in, want := range map[string]int64{"1048576": 1 << 20, "64MiB": 64 << 20, "64M": 64 << 20, "64m": 64 << 20,
		"1GiB": 1 << 30, "1g": 1 << 30, "512 KiB": 512 << 10, "512KiB": 512 << 10, "12B": 12} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "-1", "-1M", "lots", "12XB", "99999999999999999999"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) accepted", bad)
		}
	}
	for in, want := range map[string]time.Duration{"3": 3 * time.Second, "0.5": 500 * time.Millisecond, "100ms": 100 * time.Millisecond} {
		if got, err := ParseDuration(in); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v", in, got, err)
		}
	}
	for d, want := range map[time.Duration]string{time.Minute: "1m", 90 * time.Minute: "1h30m", time.Hour: "1h",
		90 * time.Second: "1m30s", 100 * time.Millisecond: "100ms", 0: "0s"} {
		if got := Duration(d).String(); got != want {
			t.Errorf("Duration(%v) = %q, want %q", d, got, want)
		}
	}
	if Size(64<<20).String() != "64MiB" {
		t.Errorf("Size string = %s", Size(64<<20))
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	c, err := Load("../../examples/cluster.yaml")
	if err != nil {
		t.Fatal(err)
	}
	out, err := Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := Parse(out, "roundtrip.yaml")
	if err != nil {
		t.Fatalf("re-parse:\n%s\n%v", out, err)
	}
	if len(c2.Services()) != len(c.Services()) {
		t.Errorf("services %d != %d", len(c2.Services()), len(c.Services()))
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("nodes: [{name: a, role: both, address: 10.0.0.1}]\n"))
	f.Add([]byte("virtual_services: [{vip: 10.0.0.1, port: 80, reals: [{address: 10.0.0.2, weight: 3}]}]\n"))
	f.Add([]byte("tenants: [{name: t, service: {vip: '::1', port: 1}, allow: ['::/0']}]\n"))
	f.Add([]byte("vrrp: {virtual_router_id: 1, vips: [1.2.3.4]}\ndefaults: {health: {delay_loop: 1}}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, "fuzz.yaml")
		if err == nil {
			_ = c.Services()
			if _, err := Marshal(c); err != nil {
				t.Fatalf("marshal of a valid config failed: %v", err)
			}
		}
	})
}
