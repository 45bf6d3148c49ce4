package memcload

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/lbd-project/lbd/pkg/kvs"
)

func TestRunAgainstKVS(t *testing.T) {
	tier := kvs.New(slog.New(slog.DiscardHandler), kvs.Options{})
	defer tier.Close()
	if err := tier.Apply(context.Background(), []kvs.TenantConfig{{Name: "b", Listen: "127.0.0.1:0"}}); err != nil {
		t.Fatal(err)
	}
	addr, _ := tier.Addr("b")
	tests := []struct {
		name string
		o    Options
	}{
		{"get set", Options{Conns: 4, Keys: 100}},
		{"multiget pipelined", Options{Conns: 2, Keys: 100, MultiGet: 8, Pipeline: 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := tt.o
			o.Addr = addr.String()
			o.Duration = 300 * time.Millisecond
			if err := Prefill(context.Background(), o); err != nil {
				t.Fatal(err)
			}
			res, err := Run(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			if res.Requests == 0 || res.Errors != 0 || res.Misses != 0 || res.P99 <= 0 {
				t.Errorf("result %+v", res)
			}
		})
	}
}

// TestRunRejectsBadGetRatio: a ratio outside [0, 1] is an error, not
// silently some other mix.
func TestRunRejectsBadGetRatio(t *testing.T) {
	for _, r := range []float64{-0.1, 1.5} {
		if _, err := Run(context.Background(), Options{Addr: "127.0.0.1:1", GetRatio: r}); err == nil || !strings.Contains(err.Error(), "get ratio") {
			t.Errorf("ratio %g: err = %v", r, err)
		}
	}
}
