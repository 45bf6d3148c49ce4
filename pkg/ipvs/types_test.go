package ipvs_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/lbd-project/lbd/pkg/ipvs"
)

func TestValidate(t *testing.T) {
	ok := svc("203.0.113.10", 80, dest("10.0.0.1", 1))
	tests := []struct {
		name   string
		mutate func(*ipvs.Service)
		want   string // substring of the error; empty means valid
	}{
		{"ok", func(*ipvs.Service) {}, ""},
		{"default scheduler", func(s *ipvs.Service) { s.Scheduler = "" }, ""},
		{"unknown scheduler", func(s *ipvs.Service) { s.Scheduler = "fifo" }, `unknown scheduler "fifo"`},
		{"no port", func(s *ipvs.Service) { s.Port = 0 }, "port 0"},
		{"bad protocol", func(s *ipvs.Service) { s.Protocol = 0 }, "protocol"},
		{"fwmark needs no port", func(s *ipvs.Service) { s.Port, s.Protocol, s.FWMark = 0, 0, 3 }, ""},
		{"weight", func(s *ipvs.Service) { s.Dests[0].Weight = -1 }, "weight -1"},
		{"twice", func(s *ipvs.Service) { s.Dests = append(s.Dests, s.Dests[0]) }, "listed twice"},
		{"family", func(s *ipvs.Service) { s.Dests[0].Addr = netip.MustParseAddr("2001:db8::1") }, "family"},
		{"tun may not mix either", func(s *ipvs.Service) {
			s.Dests[0].Addr, s.Dests[0].Forward = netip.MustParseAddr("2001:db8::1"), ipvs.TUN
		}, "family"},
		{"dr port", func(s *ipvs.Service) { s.Dests[0].Port = 8080 }, "must equal the virtual port"},
		{"nat port", func(s *ipvs.Service) { s.Dests[0].Port, s.Dests[0].Forward = 8080, ipvs.NAT }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := ok
			s.Dests = append([]ipvs.Dest(nil), ok.Dests...)
			tt.mutate(&s)
			err := s.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestParse(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want ipvs.Forward
	}{{"dr", ipvs.DR}, {"DR", ipvs.DR}, {"nat", ipvs.NAT}, {"masq", ipvs.NAT}, {"tun", ipvs.TUN}} {
		if got, err := ipvs.ParseForward(tt.in); err != nil || got != tt.want {
			t.Errorf("ParseForward(%q) = %v, %v", tt.in, got, err)
		}
	}
	if _, err := ipvs.ParseForward("bridge"); err == nil {
		t.Error("ParseForward(bridge) accepted")
	}
	if p, err := ipvs.ParseProtocol("UDP"); err != nil || p != ipvs.UDP {
		t.Errorf("ParseProtocol(UDP) = %v, %v", p, err)
	}
	for _, s := range []string{"rr", "wrr", "lc", "wlc", "sh", "dh", "mh", "sed", "nq"} {
		if !ipvs.ValidScheduler(s) {
			t.Errorf("%s not valid", s)
		}
	}
}
