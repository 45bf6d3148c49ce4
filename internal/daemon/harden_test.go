package daemon

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
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

// A token file that group or others may read is refused unless insecure.
func TestReadTokenPermissions(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		mode     os.FileMode
		insecure bool
		ok       bool
	}{{0o600, false, true}, {0o400, false, true}, {0o640, false, false}, {0o644, false, false}, {0o602, false, false}, {0o644, true, true}} {
		path := filepath.Join(dir, fmt.Sprintf("token-%o-%v", tt.mode, tt.insecure))
		if err := os.WriteFile(path, []byte(" secret\n"), tt.mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(path, tt.mode)
		tok, err := readToken(path, tt.insecure)
		if tt.ok && (err != nil || tok != "secret") || !tt.ok && (err == nil || !strings.Contains(err.Error(), "chmod 600")) {
			t.Errorf("mode %04o insecure %v: %q, %v", tt.mode, tt.insecure, tok, err)
		}
	}
}
