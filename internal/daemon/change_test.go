package daemon

import (
	"encoding/json"
	"errors"
	"net/netip"
	"reflect"
	"testing"

	"github.com/lbd-project/lbd/internal/api"
	"github.com/lbd-project/lbd/pkg/config"
)

// Every kind of runtime change survives its trip to the leader (JSON) and
// makes the same overlay there as it would have made on its origin.
func TestChangeRoundTrip(t *testing.T) {
	file := mustParse(t, fileYAML)
	w := 7
	tests := []struct {
		name    string
		c       Change
		wantErr error
	}{
		{"allow add", Change{Kind: ChangeAllow, Tenant: "a", Op: api.AllowAdd, Entries: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}}, nil},
		{"allow set empty", Change{Kind: ChangeAllow, Tenant: "b", Op: api.AllowSet}, nil},
		{"allow host bits", Change{Kind: ChangeAllow, Tenant: "a", Op: api.AllowAdd, Entries: []netip.Prefix{netip.MustParsePrefix("198.51.100.1/24")}}, api.ErrInvalid},
		{"allow no tenant", Change{Kind: ChangeAllow, Tenant: "zz", Op: api.AllowDel}, api.ErrNotFound},
		{"weight", Change{Kind: ChangeWeight, Service: "tcp/10.0.0.5:80", Addr: netip.MustParseAddrPort("10.0.2.1:80"), Weight: 5}, nil},
		{"weight range", Change{Kind: ChangeWeight, Service: "tcp/10.0.0.5:80", Addr: netip.MustParseAddrPort("10.0.2.1:80"), Weight: 70000}, api.ErrInvalid},
		{"service add", Change{Kind: ChangeAddService, VS: &config.VirtualService{Service: config.Service{VIP: "10.0.0.6", Port: 443}, Reals: []config.Real{{Address: "10.0.2.9", Weight: &w}}}}, nil},
		{"service add twice", Change{Kind: ChangeAddService, VS: &config.VirtualService{Service: config.Service{VIP: "10.0.0.5", Port: 80}}}, api.ErrConflict},
		{"service del", Change{Kind: ChangeDelService, Service: "tcp/10.0.0.5:80"}, nil},
		{"service del tenant", Change{Kind: ChangeDelService, Service: "a"}, api.ErrInvalid},
		{"real add", Change{Kind: ChangeAddReal, Service: "tcp/10.0.0.5:80", Real: &config.Real{Address: "10.0.2.3"}}, nil},
		{"real del", Change{Kind: ChangeDelReal, Service: "tcp/10.0.0.5:80", Addr: netip.MustParseAddrPort("10.0.2.2:80")}, nil},
		{"real del absent", Change{Kind: ChangeDelReal, Service: "tcp/10.0.0.5:80", Addr: netip.MustParseAddrPort("10.0.2.7:80")}, api.ErrNotFound},
		{"tenant add", Change{Kind: ChangeAddTenant, NewTenant: &config.Tenant{Name: "c", Service: config.Service{VIP: "10.0.0.1", Port: 11213}}}, nil},
		{"tenant del", Change{Kind: ChangeDelTenant, Tenant: "b"}, nil},
		{"empty add", Change{Kind: ChangeAddTenant}, api.ErrInvalid},
		{"unknown kind", Change{Kind: "reboot"}, api.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := json.Marshal(tt.c)
			if err != nil {
				t.Fatal(err)
			}
			var back Change
			if err := json.Unmarshal(data, &back); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back, tt.c) {
				t.Fatalf("round trip: %+v, want %+v", back, tt.c)
			}
			here, there := (&Overlay{}).clone(), (&Overlay{}).clone()
			l1, err1 := tt.c.apply(here, file)
			l2, err2 := back.apply(there, file)
			if tt.wantErr != nil {
				if !errors.Is(err1, tt.wantErr) || !errors.Is(err2, tt.wantErr) {
					t.Fatalf("errors %v, %v; want %v", err1, err2, tt.wantErr)
				}
				return
			}
			if err1 != nil || err2 != nil {
				t.Fatalf("errors %v, %v", err1, err2)
			}
			if !reflect.DeepEqual(here, there) || !reflect.DeepEqual(l1, l2) {
				t.Fatalf("overlays differ: %+v vs %+v", here, there)
			}
			if tt.c.structural() {
				if _, err := merge(file, here); err != nil {
					t.Fatalf("merge: %v", err)
				}
			}
		})
	}
}

// An error crosses to the origin as the API would have answered it.
func TestWireError(t *testing.T) {
	for _, sentinel := range []error{api.ErrInvalid, api.ErrNotFound, api.ErrConflict, api.ErrNoLeader} {
		w := toWire(errors.Join(sentinel, errors.New("detail")))
		data, _ := json.Marshal(w)
		var back wireError
		if err := json.Unmarshal(data, &back); err != nil {
			t.Fatal(err)
		}
		if got := back.err(); !errors.Is(got, sentinel) {
			t.Errorf("%v came back as %v (status %d)", sentinel, got, back.Status)
		}
	}
	if toWire(nil) != nil || (*wireError)(nil).err() != nil {
		t.Error("no error must stay no error")
	}
}

// Whatever a peer sends as a change, applying it never panics.
func FuzzChange(f *testing.F) {
	f.Add([]byte(`{"kind":"allow","tenant":"a","op":"add","entries":["198.51.100.0/24"]}`))
	f.Add([]byte(`{"kind":"weight","service":"tcp/10.0.0.5:80","addr":"10.0.2.1:80","weight":3}`))
	f.Add([]byte(`{"kind":"service_add","vs":{"vip":"10.0.0.6","port":443}}`))
	f.Add([]byte(`{"kind":"real_add","service":"tcp/10.0.0.5:80","real":{"address":"10.0.2.3"}}`))
	f.Add([]byte(`{"kind":"tenant_add","new_tenant":{"name":"c","service":{"vip":"10.0.0.1","port":11213}}}`))
	f.Add([]byte(`{"kind":"tenant_del","tenant":"b"}`))
	f.Add([]byte(`{"changes":[]}`))
	file, err := config.Parse([]byte(fileYAML), "fuzz.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var c Change
		if json.Unmarshal(data, &c) != nil {
			return
		}
		ov := (&Overlay{}).clone()
		_ = c.String()
		if _, err := c.apply(ov, file); err == nil && c.structural() {
			_, _ = merge(file, ov)
		}
	})
}
