package kvs

import (
	"bufio"
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
)

// fakeClock is a settable unix-second clock.
type fakeClock struct{ t atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.t.Store(1_700_000_000)
	return c
}

func (c *fakeClock) now() int64         { return c.t.Load() }
func (c *fakeClock) advance(secs int64) { c.t.Add(secs) }

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// testService returns a memory-store service on a fake clock.
func testService(t testing.TB, clock *fakeClock) *service {
	cfg := TenantConfig{Name: "t", Listen: "127.0.0.1:0"}.withDefaults()
	return newService(testLogger(t), cfg, NewMemoryStore(cfg.MemoryLimit), clock.now)
}

// run feeds input to a fresh session on svc and returns everything it
// wrote.
func run(svc *service, input string) string {
	var out bytes.Buffer
	w := bufio.NewWriter(&out)
	s := newSession(svc, bufio.NewReaderSize(strings.NewReader(input), readBufSize), w)
	s.serve()
	w.Flush()
	return out.String()
}

// startTier runs a Tier with the given tenants (Listen defaulting to
// 127.0.0.1:0) and returns it with each tenant's address.
func startTier(t testing.TB, opts Options, cfgs ...TenantConfig) (*Tier, map[string]string) {
	t.Helper()
	for i := range cfgs {
		if cfgs[i].Listen == "" {
			cfgs[i].Listen = "127.0.0.1:0"
		}
	}
	tier := New(testLogger(t), opts)
	t.Cleanup(func() { tier.Close() })
	if err := tier.Apply(context.Background(), cfgs); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	addrs := make(map[string]string)
	for _, c := range cfgs {
		a, ok := tier.Addr(c.Name)
		if !ok {
			t.Fatalf("tenant %s has no address", c.Name)
		}
		addrs[c.Name] = a.String()
	}
	return tier, addrs
}
