package daemon

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/lbd-project/lbd/pkg/config"
)

// Runtime changes saved by an older lbd that this one refuses (a tenant
// whose memory no machine has) do not keep lbd from starting: that tenant
// is left out and named, the rest is kept.
func TestFitOverlayDropsTenantsThatCannotRun(t *testing.T) {
	file := mustParse(t, fileYAML)
	ov := &Overlay{
		Tenants: []config.Tenant{
			{Name: "huge", Service: config.Service{VIP: "10.0.0.1", Port: 11300}, KVS: config.KVS{Memory: 1000000 << 40, Storage: "durable"}},
			{Name: "fine", Service: config.Service{VIP: "10.0.0.1", Port: 11301}},
		},
		Allow: map[string][]netip.Prefix{"huge": {netip.MustParsePrefix("192.0.2.0/24")}, "a": {}},
	}
	cfg, kept, dropped, err := fitOverlay(file, ov, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(dropped, []string{"huge"}) {
		t.Errorf("dropped = %v, want [huge]", dropped)
	}
	if n := names(cfg.Services()); !slices.Contains(n, "fine") || slices.Contains(n, "huge") {
		t.Errorf("services = %v", n)
	}
	if _, ok := kept.Allow["huge"]; ok {
		t.Error("the dropped tenant's allow-list was kept")
	}
	if _, ok := kept.Allow["a"]; !ok {
		t.Error("another tenant's runtime allow-list was lost")
	}
	// What fits is kept as it is.
	if _, same, dropped, err := fitOverlay(file, &Overlay{Tenants: ov.Tenants[1:]}, t.TempDir()); err != nil || len(dropped) > 0 || len(same.Tenants) != 1 {
		t.Errorf("fitting overlay: %v %v", dropped, err)
	}
}
