package daemon

import (
	"errors"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lbd-project/lbd/internal/api"
	"github.com/lbd-project/lbd/pkg/config"
)

const fileYAML = `
nodes:
  - {name: lb1, role: director, address: 10.0.0.2, interface: eth0}
  - {name: st1, role: storage, address: 10.0.1.1}
tenants:
  - {name: a, service: {vip: 10.0.0.1, port: 11211}, allow: [192.0.2.0/24]}
  - {name: b, service: {vip: 10.0.0.1, port: 11212}, allow: []}
virtual_services:
  - {vip: 10.0.0.5, port: 80, reals: [{address: 10.0.2.1}, {address: 10.0.2.2}]}
`

func names(svcs []config.ResolvedService) []string {
	var out []string
	for _, s := range svcs {
		out = append(out, s.Name)
	}
	return out
}

func TestMergeOverlay(t *testing.T) {
	file := mustParse(t, fileYAML)
	w := 3
	ov := &Overlay{
		Services:        []config.VirtualService{{Service: config.Service{VIP: "10.0.0.6", Port: 443}, Reals: []config.Real{{Address: "10.0.2.9", Weight: &w}}}},
		Reals:           map[string][]config.Real{"tcp/10.0.0.5:80": {{Address: "10.0.2.3"}}},
		DeletedReals:    map[string][]netip.AddrPort{"tcp/10.0.0.5:80": {netip.MustParseAddrPort("10.0.2.1:80")}},
		Tenants:         []config.Tenant{{Name: "c", Service: config.Service{VIP: "10.0.0.1", Port: 11213}}},
		DeletedTenants:  []string{"b"},
		DeletedServices: nil,
	}
	got, err := merge(file, ov)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"a", "c", "tcp/10.0.0.5:80", "tcp/10.0.0.6:443"}
	if n := names(got.Services()); !slices.Equal(n, want) {
		t.Fatalf("services = %v, want %v", n, want)
	}
	s, _ := findService(got, "tcp/10.0.0.5:80")
	var reals []string
	for _, r := range s.Reals {
		reals = append(reals, r.Addr.String())
	}
	if !slices.Equal(reals, []string{"10.0.2.2", "10.0.2.3"}) {
		t.Errorf("reals = %v", reals)
	}
	if len(file.Services()) != 3 {
		t.Errorf("file config modified: %v", names(file.Services()))
	}
	// An overlay that no longer fits the file is refused, with the reason.
	bad := &Overlay{Tenants: []config.Tenant{{Name: "d", Service: config.Service{VIP: "10.0.0.1", Port: 11211}}}}
	if _, err := merge(file, bad); err == nil || !strings.Contains(err.Error(), "already belongs to another tenant") {
		t.Errorf("merge of a conflicting tenant: %v", err)
	}
	// No structural change: the file's config is used as is.
	if c, err := merge(file, &Overlay{Weights: map[string]int{"x": 1}}); err != nil || c != file {
		t.Errorf("weights-only overlay re-parsed the file: %v", err)
	}
}

func TestOverlayPersists(t *testing.T) {
	dir := t.TempDir()
	ov := &Overlay{Allow: map[string][]netip.Prefix{"a": {}, "b": {netip.MustParsePrefix("192.0.2.1/32")}}}
	if err := saveOverlay(dir, ov); err != nil {
		t.Fatal(err)
	}
	got, err := loadOverlay(dir)
	if err != nil {
		t.Fatal(err)
	}
	if l, ok := got.Allow["a"]; !ok || len(l) != 0 {
		t.Errorf("an emptied list must stay present and empty (nobody), got %v %v", l, ok)
	}
	if len(got.Allow["b"]) != 1 {
		t.Errorf("allow b = %v", got.Allow["b"])
	}
	if _, err := loadOverlay(filepath.Join(dir, "missing")); err != nil {
		t.Errorf("missing overlay: %v", err)
	}
}

func TestChangeAllow(t *testing.T) {
	p := netip.MustParsePrefix
	base := []netip.Prefix{p("192.0.2.0/24"), p("198.51.100.7/32")}
	tests := []struct {
		op      api.AllowOp
		entries []netip.Prefix
		want    []netip.Prefix
	}{
		{api.AllowAdd, []netip.Prefix{p("203.0.113.1/32"), p("192.0.2.0/24")}, []netip.Prefix{p("192.0.2.0/24"), p("198.51.100.7/32"), p("203.0.113.1/32")}},
		{api.AllowDel, []netip.Prefix{p("192.0.2.0/24"), p("10.9.9.9/32")}, []netip.Prefix{p("198.51.100.7/32")}},
		{api.AllowSet, []netip.Prefix{p("2001:db8::/32"), p("2001:db8::/32")}, []netip.Prefix{p("2001:db8::/32")}},
		{api.AllowSet, nil, []netip.Prefix{}},
	}
	for _, tt := range tests {
		got, err := changeAllow(base, tt.op, tt.entries)
		if err != nil || !slices.Equal(got, tt.want) || got == nil {
			t.Errorf("%s %v = %v, %v; want %v", tt.op, tt.entries, got, err, tt.want)
		}
	}
	if len(base) != 2 {
		t.Errorf("input modified: %v", base)
	}
	if _, err := changeAllow(base, "flip", nil); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("unknown op: %v", err)
	}
}

func TestDiffConfigs(t *testing.T) {
	cur := mustParse(t, fileYAML)
	next := mustParse(t, strings.NewReplacer(
		"{address: 10.0.2.1}, {address: 10.0.2.2}", "{address: 10.0.2.1, weight: 4}, {address: 10.0.2.3}",
		"allow: [192.0.2.0/24]", "allow: [192.0.2.0/24, 198.51.100.7]",
		"  - {name: b, service: {vip: 10.0.0.1, port: 11212}, allow: []}\n", "",
	).Replace(fileYAML))
	d := diffConfigs(cur, &Overlay{}, next)
	var lines []string
	for _, c := range d.Changes {
		lines = append(lines, c.Op+" "+c.Kind+" "+c.Name+" "+c.Detail)
	}
	want := []string{
		"add allow a 198.51.100.7/32",
		"del tenant b port closed first, reals drained",
		"change real tcp/10.0.0.5:80 10.0.2.1:80 weight 1 -> 4",
		"del real tcp/10.0.0.5:80 10.0.2.2:80 drained, then removed",
		"add real tcp/10.0.0.5:80 10.0.2.3:80 weight 1",
	}
	if !slices.Equal(lines, want) {
		t.Errorf("diff =\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	if d := diffConfigs(cur, &Overlay{}, cur); len(d.Changes) != 0 {
		t.Errorf("diff of identical configs = %+v", d.Changes)
	}
	// A runtime allow-list differs from the file's: apply shows it going away.
	ov := &Overlay{Allow: map[string][]netip.Prefix{"a": {netip.MustParsePrefix("203.0.113.9/32")}}}
	d = diffConfigs(cur, ov, cur)
	if len(d.Changes) != 2 || d.Changes[0].Op != "add" || d.Changes[1].Detail != "203.0.113.9/32" {
		t.Errorf("diff against runtime allow-list = %+v", d.Changes)
	}
}

func TestDiffSorryAndFlags(t *testing.T) {
	cur := mustParse(t, fileYAML)
	next := mustParse(t, strings.Replace(fileYAML, "{vip: 10.0.0.5, port: 80, ",
		"{vip: 10.0.0.5, port: 80, scheduler: sh, scheduler_flags: [sh-fallback], sorry_server: {address: 10.0.2.9}, quorum: 2, ", 1))
	var lines []string
	for _, c := range diffConfigs(cur, &Overlay{}, next).Changes {
		lines = append(lines, c.Op+" "+c.Kind+" "+c.Name+" "+c.Detail)
	}
	want := []string{
		"change service tcp/10.0.0.5:80 wlc[] dr 0s -> sh[sh-fallback] dr 0s",
		"change quorum tcp/10.0.0.5:80 quorum 1±0, sorry server none -> quorum 2±0, sorry server 10.0.2.9:80",
	}
	if !slices.Equal(lines, want) {
		t.Errorf("diff =\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}

func TestSameRole(t *testing.T) {
	d := &Daemon{node: config.Node{Name: "n", Role: config.RoleStorage}}
	if err := d.sameRole(config.Node{Name: "n", Role: config.RoleStorage}); err != nil {
		t.Errorf("same role refused: %v", err)
	}
	if err := d.sameRole(config.Node{Name: "n", Role: config.RoleBoth}); err == nil || !strings.Contains(err.Error(), "restart") {
		t.Errorf("role change accepted or unclear: %v", err)
	}
}
