package restload

import (
	"context"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/lbd-project/lbd/internal/rest"
	"github.com/lbd-project/lbd/pkg/kvs"
)

type backend struct{ tier *kvs.Tier }

func (b backend) Store(t string) (rest.KV, bool) {
	l, ok := b.tier.Local(t)
	return l, ok
}
func (b backend) Policy(string) (rest.Policy, bool) {
	return rest.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, true
}
func (b backend) Authenticate(_, s string) bool { return s == "tok" }

// A short run against a real store and API: every phase does work and
// none fails.
func TestRun(t *testing.T) {
	tier := kvs.New(nil, kvs.Options{NoEventLoop: true})
	defer tier.Close()
	if err := tier.Apply(context.Background(), []kvs.TenantConfig{{Name: "a", Listen: "127.0.0.1:0"}}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(rest.NewHandler("a", backend{tier}, rest.Options{}))
	defer srv.Close()
	addr, _ := tier.Addr("a")
	rs, err := Run(context.Background(), Options{MC: addr.String(), REST: srv.URL, Token: "tok", Conns: 2, Duration: 200 * time.Millisecond, Keys: 50, ValueSize: 16})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 5 {
		t.Fatalf("%d phases", len(rs))
	}
	for _, r := range rs {
		if r.Ops == 0 || r.Errors != 0 || r.P99 < r.P50 {
			t.Errorf("%+v", r)
		}
	}
}
