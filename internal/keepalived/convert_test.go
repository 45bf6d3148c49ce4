package keepalived

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/lbd-project/lbd/pkg/config"
)

// TestSeed000 converts the keepalived.conf of seed 000 and checks that lbd
// resolves it to exactly the IPVS rules keepalived programs: one TCP
// service 203.0.113.10:13101, rr, DR, four real servers of weight 1, and a
// TCP_CHECK of connect_timeout 3, delay_before_retry 5, delay_loop 10 with
// inhibit_on_failure (retry and warmup at keepalived's defaults).
func TestSeed000(t *testing.T) {
	res, err := ConvertFile("testdata/seed000.conf", Options{})
	if err != nil {
		t.Fatal(err)
	}
	svcs := res.Config.Services()
	if len(svcs) != 1 {
		t.Fatalf("got %d services, want 1", len(svcs))
	}
	s := svcs[0]
	if s.VIP != netip.MustParseAddr("203.0.113.10") || s.Port != 13101 || s.Protocol != "tcp" ||
		s.Scheduler != "rr" || s.Forward != "dr" || s.Persistence != 0 || s.Allow != nil || s.Tenant != "" {
		t.Errorf("service = %+v", s)
	}
	want := []string{"192.168.12.233", "192.168.12.234", "192.168.12.235", "192.168.12.236"}
	if len(s.Reals) != len(want) {
		t.Fatalf("reals = %+v, want %v", s.Reals, want)
	}
	for i, r := range s.Reals {
		if r.Addr.String() != want[i] || r.Port != 13101 || r.Weight != 1 {
			t.Errorf("real %d = %+v, want %s:13101 weight 1", i, r, want[i])
		}
	}
	h := s.Health
	wantH := config.HealthSpec{Type: "tcp", ConnectTimeout: 3 * time.Second, Retry: 1, DelayBeforeRetry: 5 * time.Second,
		DelayLoop: 10 * time.Second, Warmup: 10 * time.Second, InhibitOnFailure: true, StatusCodes: []int{200}}
	if h.Type != wantH.Type || h.ConnectTimeout != wantH.ConnectTimeout || h.Retry != wantH.Retry ||
		h.DelayBeforeRetry != wantH.DelayBeforeRetry || h.DelayLoop != wantH.DelayLoop || h.Warmup != wantH.Warmup ||
		h.InhibitOnFailure != wantH.InhibitOnFailure || h.Alpha || h.ConnectPort != 0 {
		t.Errorf("health = %+v, want %+v", h, wantH)
	}
	if ds := res.Config.Directors(); len(ds) != 1 || ds[0].Name != DefaultNodeName || ds[0].Address != PlaceholderAddress {
		t.Errorf("directors = %+v", ds)
	}
	wantWarnings(t, res.Warnings, "testdata/seed000.conf: note: keepalived.conf does not say the director's own address")
	for _, w := range res.Warnings {
		if strings.Contains(w.Msg, "could not convert") {
			t.Errorf("unexpected warning %s", w)
		}
	}
}

func TestOptions(t *testing.T) {
	res, err := ConvertFile("testdata/seed000.conf", Options{NodeName: "lb-a", NodeAddress: "192.168.12.231"})
	if err != nil {
		t.Fatal(err)
	}
	n, ok := res.Config.NodeByName("lb-a")
	if !ok || n.Address != "192.168.12.231" || n.Role != config.RoleDirector {
		t.Errorf("node = %+v, %v", n, ok)
	}
	for _, w := range res.Warnings {
		if strings.Contains(w.Msg, "placeholder") {
			t.Errorf("placeholder warning although an address was given: %s", w)
		}
	}
}

func TestMiscCheckAndFwmark(t *testing.T) {
	res, err := ConvertFile("testdata/misc_fwmark.conf", Options{})
	if err != nil {
		t.Fatal(err)
	}
	wantWarnings(t, res.Warnings,
		"testdata/misc_fwmark.conf:2: could not convert virtual_server fwmark 1: lbd services are VIP:port",
		"testdata/misc_fwmark.conf:20: could not convert MISC_CHECK: lbd does not run health-check scripts; the real server is kept",
		"testdata/misc_fwmark.conf:27: could not convert MISC_CHECK",
	)
	svcs := res.Config.Services()
	if len(svcs) != 2 {
		t.Fatalf("got %d services, want 2 (the fwmark one skipped)", len(svcs))
	}
	if s := svcs[0]; s.Health.Type != "none" || len(s.Reals) != 2 || s.Reals[0].Weight != 3 || s.Scheduler != "wrr" {
		t.Errorf("MISC_CHECK service = %+v", s)
	}
	if s := svcs[1]; s.Protocol != "udp" || s.Port != 53 {
		t.Errorf("UDP service = %+v", s)
	}
}

func TestNATHTTPVRRP(t *testing.T) {
	res, err := ConvertFile("testdata/nat_http_vrrp.conf", Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := res.Config
	v := c.VRRP
	if v == nil || v.VirtualRouterID != 51 || v.AdvertInterval.D() != time.Second || !v.NoPreempt || !v.Unicast ||
		v.PreemptDelay.D() != 30*time.Second || v.GARPMasterDelay.D() != 2*time.Second || v.GARPMasterRefresh.D() != time.Minute ||
		strings.Join(v.VIPs, ",") != "203.0.113.20,203.0.113.21" || strings.Join(v.TrackInterfaces, ",") != "eth1" ||
		v.NotifyMaster != "/etc/keepalived/notify.sh master" || v.NotifyBackup != "/etc/keepalived/notify.sh" {
		t.Errorf("vrrp = %+v", v)
	}
	ds := c.Directors()
	if len(ds) != 2 || ds[0].Address != "192.168.12.231" || ds[0].Priority != 150 || ds[0].Interface != "eth0" || ds[1].Address != "192.168.12.232" {
		t.Errorf("directors = %+v", ds)
	}
	s := c.Services()[0]
	if s.Forward != "nat" || s.Scheduler != "wlc" || s.Persistence != 300*time.Second || s.Reals[0].Port != 8080 || s.Reals[0].Weight != 2 {
		t.Errorf("service = %+v", s)
	}
	h := s.Health
	if h.Type != "http" || h.Path != "/healthz" || h.Digest != "9b3a0c85a887a256d6939da88aabd8cd" || h.Host != "www.example.com" ||
		len(h.StatusCodes) != 2 || h.Retry != 3 || h.DelayBeforeRetry != 3*time.Second || !h.Alpha || !h.InhibitOnFailure || h.DelayLoop != 6*time.Second {
		t.Errorf("health = %+v", h)
	}
	if s := c.Services()[1]; s.Health.Type != "tcp" || s.Scheduler != "wlc" {
		t.Errorf("SSL_GET service = %+v", s)
	}
	wantWarnings(t, res.Warnings,
		"testdata/nat_http_vrrp.conf:29: could not convert authentication: VRRPv3",
		"testdata/nat_http_vrrp.conf:84: could not convert lb_algo lblc",
		"testdata/nat_http_vrrp.conf:90: could not convert SSL_GET",
	)
	if s := c.Services()[1]; s.Sorry == nil || s.Sorry.Addr.String() != "10.0.0.99" || s.Sorry.Port != 443 || s.Sorry.Forward != "nat" {
		t.Errorf("sorry server = %+v", s.Sorry)
	}
	for _, w := range res.Warnings {
		if strings.Contains(w.String(), ":87:") {
			t.Errorf("sorry_server warned: %s", w)
		}
	}
}

// TestConvert covers single mappings on small inline configurations.
func TestConvert(t *testing.T) {
	const rs = "real_server 10.0.1.1 80 {\n TCP_CHECK {\n }\n}\n"
	tests := []struct {
		name     string
		src      string
		check    func(*testing.T, *config.Config)
		warnings []string
	}{
		{
			name: "keepalived defaults: NAT, wlc, and UDP when no protocol is given",
			src:  "virtual_server 10.0.0.1 80 {\n" + rs + "}\n",
			check: func(t *testing.T, c *config.Config) {
				s := c.Services()[0]
				if s.Forward != "nat" || s.Scheduler != "wlc" || s.Protocol != "udp" || s.Health.Type != "tcp" {
					t.Errorf("service = %+v", s)
				}
			},
			warnings: []string{"k.conf:1: could not convert virtual_server 10.0.0.1 80: it has no protocol: keepalived reports this and programs UDP"},
		},
		{
			name: "a sorry server that is also a real server stays a real server; flags of another scheduler are ignored",
			src:  "virtual_server 10.0.0.1 80 {\n protocol TCP\n sh-fallback\n sorry_server 10.0.1.1 80\n" + rs + "}\n",
			check: func(t *testing.T, c *config.Config) {
				if s := c.Services()[0]; s.Sorry != nil || len(s.SchedulerFlags) != 0 {
					t.Errorf("service = %+v", s)
				}
			},
			warnings: []string{"k.conf:4: could not convert sorry_server 10.0.1.1 80: the sorry server is also a real server"},
		},
		{
			name: "lvs_sync_daemon_interface of the vrrp_instance",
			src: "vrrp_instance V {\n interface eth0\n lvs_sync_daemon_interface eth1\n virtual_router_id 255\n" +
				" virtual_ipaddress {\n  10.0.0.1\n }\n unicast_peer {\n  10.0.0.3\n }\n}\n",
			check: func(t *testing.T, c *config.Config) {
				if s := c.VRRP.LVSSyncDaemon; s == nil || s.Interface != "eth1" || c.VRRP.SyncID() != 254 {
					t.Errorf("lvs_sync_daemon = %+v, sync id %d", s, c.VRRP.SyncID())
				}
			},
		},
		{
			name: "persistence_timeout without a value is 6 minutes",
			src:  "virtual_server 10.0.0.1 80 {\n persistence_timeout\n" + rs + "}\n",
			check: func(t *testing.T, c *config.Config) {
				if p := c.Services()[0].Persistence; p != 6*time.Minute {
					t.Errorf("persistence = %s", p)
				}
			},
		},
		{
			name: "checker options inherit from vs and rs, checker wins",
			src: "virtual_server 10.0.0.1 80 {\n lb_kind DR\n delay_loop 20\n connect_timeout 4\n alpha\n" +
				" real_server 10.0.1.1 80 {\n  retry 2\n  warmup 0\n  TCP_CHECK {\n   connect_timeout 1.5\n   connect_port 8080\n  }\n }\n}\n",
			check: func(t *testing.T, c *config.Config) {
				h := c.Services()[0].Health
				if h.DelayLoop != 20*time.Second || h.ConnectTimeout != 1500*time.Millisecond || h.Retry != 2 ||
					h.Warmup != 0 || !h.Alpha || h.ConnectPort != 8080 {
					t.Errorf("health = %+v", h)
				}
			},
		},
		{
			name: "real servers with different checks: first wins",
			src: "virtual_server 10.0.0.1 80 {\n lb_kind DR\n" + rs +
				" real_server 10.0.1.2 80 {\n  inhibit_on_failure\n  TCP_CHECK {\n   connect_timeout 9\n  }\n }\n}\n",
			check: func(t *testing.T, c *config.Config) {
				if h := c.Services()[0].Health; h.InhibitOnFailure || h.ConnectTimeout != 5*time.Second {
					t.Errorf("health = %+v", h)
				}
			},
			warnings: []string{"k.conf:7: could not convert real_server 10.0.1.2 80: its health check differs from the first real server's (real_server 10.0.1.1 80, line 3) in connect_timeout, inhibit_on_failure"},
		},
		{
			name: "services with different checks keep their own",
			src: "virtual_server 10.0.0.1 80 {\n delay_loop 5\n" + rs + "}\n" +
				"virtual_server 10.0.0.1 81 {\n real_server 10.0.1.1 81 {\n }\n}\n",
			check: func(t *testing.T, c *config.Config) {
				if c.Defaults.Health.Type != "" || c.VirtualServices[0].Health == nil || c.VirtualServices[1].Health.Type != "none" {
					t.Errorf("defaults = %+v, services = %+v", c.Defaults.Health, c.VirtualServices)
				}
			},
		},
		{
			name: "HTTP_GET status_code ranges, defaults and connect_ip",
			src: "virtual_server 10.0.0.1 80 {\n real_server 10.0.1.1 80 {\n  HTTP_GET {\n   connect_ip 10.0.2.1\n" +
				"   url {\n    path /a\n    status_code 200-202 301\n   }\n   url {\n    path /b\n   }\n  }\n }\n}\n",
			check: func(t *testing.T, c *config.Config) {
				h := c.Services()[0].Health
				if h.Path != "/a" || len(h.StatusCodes) != 4 || h.StatusCodes[3] != 301 || h.DelayBeforeRetry != 3*time.Second {
					t.Errorf("health = %+v", h)
				}
			},
			warnings: []string{
				"k.conf:4: could not convert connect_ip 10.0.2.1: lbd probes the real server's own address",
				"k.conf:9: could not convert url: lbd checks one url per service; the url at line 5 is used",
			},
		},
		{
			name: "virtual_server_group expands ranges",
			src: "virtual_server_group G {\n 10.0.0.1-3 80\n 10.0.1.0/31 443\n fwmark 7\n}\n" +
				"virtual_server group G {\n protocol TCP\n lb_kind DR\n real_server 10.0.2.1 80 {\n }\n}\n",
			check: func(t *testing.T, c *config.Config) {
				var got []string
				for _, s := range c.Services() {
					got = append(got, s.Name)
				}
				want := "tcp/10.0.0.1:80 tcp/10.0.0.2:80 tcp/10.0.0.3:80 tcp/10.0.1.0:443 tcp/10.0.1.1:443"
				if strings.Join(got, " ") != want {
					t.Errorf("services = %v, want %s", got, want)
				}
			},
			warnings: []string{"k.conf:4: could not convert fwmark 7"},
		},
		{
			name: "DR real server on another port",
			src:  "virtual_server 10.0.0.1 80 {\n lb_kind DR\n real_server 10.0.1.1 8080 {\n }\n}\n",
			check: func(t *testing.T, c *config.Config) {
				if r := c.Services()[0].Reals[0]; r.Port != 80 {
					t.Errorf("real = %+v", r)
				}
			},
			warnings: []string{"k.conf:3: could not convert real_server 10.0.1.1 8080: dr forwarding cannot change the port"},
		},
		{
			name: "virtual server without real servers is skipped",
			src:  "virtual_server 10.0.0.1 80 {\n}\nvirtual_server 10.0.0.2 80 {\n" + rs + "}\n",
			check: func(t *testing.T, c *config.Config) {
				if n := len(c.Services()); n != 1 {
					t.Errorf("%d services", n)
				}
			},
			warnings: []string{"k.conf:1: could not convert virtual_server 10.0.0.1 80: it has no real servers"},
		},
		{
			name: "SCTP is skipped",
			src:  "virtual_server 10.0.0.1 80 {\n protocol SCTP\n" + rs + "}\nvirtual_server 10.0.0.2 80 {\n" + rs + "}\n",
			check: func(t *testing.T, c *config.Config) {
				if n := len(c.Services()); n != 1 {
					t.Errorf("%d services", n)
				}
			},
			warnings: []string{"k.conf:2: could not convert protocol SCTP"},
		},
		{
			name: "vrrp: masks, dev, second instance, excluded",
			src: "vrrp_instance A {\n interface eth0\n virtual_router_id 9\n virtual_ipaddress {\n  10.0.0.1/24 dev eth1 scope global\n  10.0.0.2/32\n }\n" +
				" virtual_ipaddress_excluded {\n  10.0.0.3\n }\n}\nvrrp_instance B {\n interface eth0\n}\n" +
				"virtual_server 10.0.0.1 80 {\n" + rs + "}\n",
			check: func(t *testing.T, c *config.Config) {
				if v := c.VRRP; strings.Join(v.VIPs, ",") != "10.0.0.1,10.0.0.2,10.0.0.3" || v.Unicast {
					t.Errorf("vrrp = %+v", v)
				}
			},
			warnings: []string{
				"k.conf:5: could not convert 10.0.0.1/24 dev eth1 scope global: lbd adds a VIP as a host address (/32); the /24 prefix is dropped",
				"k.conf:5: could not convert 10.0.0.1/24 dev eth1 scope global: lbd puts every VIP on the VRRP interface eth0, not eth1",
				`k.conf:5: could not convert 10.0.0.1/24 dev eth1 scope global: address options "scope global" are not kept`,
				"k.conf:8: note: virtual_ipaddress_excluded",
				"k.conf:12: could not convert vrrp_instance B: lbd runs one VRRP instance",
			},
		},
		{
			name: "a virtual server defined twice is converted once",
			src:  "virtual_server 10.0.0.1 80 {\n" + rs + "}\nvirtual_server 10.0.0.1 80 {\n" + rs + "}\n",
			check: func(t *testing.T, c *config.Config) {
				if n := len(c.Services()); n != 1 {
					t.Errorf("%d services", n)
				}
			},
			warnings: []string{"k.conf:7: could not convert virtual_server 10.0.0.1 80: udp/10.0.0.1:80 is already defined at k.conf:1"},
		},
		{
			name: "a real server listed twice is kept once",
			src:  "virtual_server 10.0.0.1 80 {\n" + rs + rs + "}\n",
			check: func(t *testing.T, c *config.Config) {
				if n := len(c.Services()[0].Reals); n != 1 {
					t.Errorf("%d reals", n)
				}
			},
			warnings: []string{"k.conf:6: could not convert real_server 10.0.1.1 80: real server 10.0.1.1:80 is already listed at line 2"},
		},
		{
			name: "NAT group keeps the real servers' own ports",
			src: "virtual_server_group G {\n 10.0.0.1 80\n 10.0.0.1 8080\n}\n" +
				"virtual_server group G {\n lb_kind NAT\n real_server 10.0.2.1 80 {\n }\n real_server 10.0.2.2 {\n }\n}\n",
			check: func(t *testing.T, c *config.Config) {
				s := c.Services()
				if s[1].Port != 8080 || s[1].Reals[0].Port != 80 || s[1].Reals[1].Port != 8080 {
					t.Errorf("services = %+v", s)
				}
			},
		},
		{
			name: "unknown keywords are reported with their line",
			src:  "frobnicate 1\nvirtual_server 10.0.0.1 80 {\n lb_magic 3\n real_server 10.0.1.1 80 {\n  notify_up /bin/x\n  TCP_CHECK {\n   bindto 10.9.9.9\n  }\n }\n}\n",
			warnings: []string{
				"k.conf:1: could not convert frobnicate 1: unknown or unsupported top-level keyword",
				"k.conf:3: could not convert lb_magic 3: unknown or unsupported keyword here",
				"k.conf:5: could not convert notify_up /bin/x: lbd runs no scripts",
				"k.conf:7: could not convert bindto 10.9.9.9: lbd does not choose the probe's source address",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Convert([]byte(tt.src), "k.conf", Options{FS: noFS{}})
			if err != nil {
				t.Fatal(err)
			}
			if tt.check != nil {
				tt.check(t, res.Config)
			}
			wantWarnings(t, res.Warnings, tt.warnings...)
		})
	}
}

// TestConvertRefused checks that what lbd refuses is an error, not a file
// lbd would reject at start.
func TestConvertRefused(t *testing.T) {
	src := "virtual_server 10.0.0.1 80 {\n real_server 2001:db8::1 80 {\n }\n}\n"
	_, err := Convert([]byte(src), "k.conf", Options{FS: noFS{}})
	if err == nil || !strings.Contains(err.Error(), "not valid for lbd") || !strings.Contains(err.Error(), "different families") {
		t.Fatalf("err = %v, want the mixed families refused", err)
	}
}

// TestNoUnsupportedWarnings: the seed's keepalived.conf and a file with
// every keyword of issue 16 (connection sync, sorry server, quorum,
// scheduler flags) convert with notes only, never "could not convert".
func TestNoUnsupportedWarnings(t *testing.T) {
	for _, f := range []string{"testdata/seed000.conf", "testdata/sync_quorum.conf"} {
		res, err := ConvertFile(f, Options{})
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range res.Warnings {
			if !strings.Contains(w.Msg, "note: ") {
				t.Errorf("%s", w)
			}
		}
	}
	res, err := ConvertFile("testdata/sync_quorum.conf", Options{})
	if err != nil {
		t.Fatal(err)
	}
	v := res.Config.VRRP
	if s := v.LVSSyncDaemon; s == nil || s.Interface != "eth1" || v.SyncID() != 20 || s.MaxLen != 1400 || s.Port != 8850 || s.TTL != 1 || s.Group != "224.0.0.82" {
		t.Errorf("lvs_sync_daemon = %+v", s)
	}
	s := res.Config.Services()[0]
	if s.Sorry == nil || !s.SorryInhibit || s.Quorum != 2 || s.Hysteresis != 1 || s.QuorumUp != "/usr/local/sbin/kvs-quorum up" ||
		strings.Join(s.SchedulerFlags, ",") != "sh-port,sh-fallback" {
		t.Errorf("service = %+v", s)
	}
	if s := res.Config.Services()[1]; s.Sorry == nil || s.Sorry.Forward != "nat" || s.Sorry.Port != 8080 {
		t.Errorf("sorry server with its own method = %+v", s.Sorry)
	}
}
