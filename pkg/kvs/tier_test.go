package kvs

import (
	"bufio"
	"context"
	"io"
	"math"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"
)

// client is a line-oriented test client.
type client struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
}

func dial(t testing.TB, addr string) *client {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{t: t, conn: c, r: bufio.NewReader(c)}
}

// do sends req and reads n reply lines.
func (c *client) do(req string, n int) string {
	c.t.Helper()
	c.conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c.conn, req); err != nil {
		c.t.Fatalf("write: %v", err)
	}
	var sb strings.Builder
	for range n {
		line, err := c.r.ReadString('\n')
		if err != nil {
			c.t.Fatalf("read after %q: %v (so far %q)", req, err, sb.String())
		}
		sb.WriteString(line)
	}
	return sb.String()
}

func TestTenantIsolation(t *testing.T) {
	tier, addrs := startTier(t, Options{}, TenantConfig{Name: "a"}, TenantConfig{Name: "b"})
	a, b := dial(t, addrs["a"]), dial(t, addrs["b"])
	a.do("set k 0 0 1\r\nA\r\n", 1)
	b.do("set k 0 0 1\r\nB\r\n", 1)
	if got := a.do("get k\r\n", 3); got != "VALUE k 0 1\r\nA\r\nEND\r\n" {
		t.Errorf("a sees %q", got)
	}
	if got := b.do("get k\r\n", 3); got != "VALUE k 0 1\r\nB\r\nEND\r\n" {
		t.Errorf("b sees %q", got)
	}
	a.do("flush_all\r\n", 1)
	if got := a.do("get k\r\n", 1); got != "END\r\n" {
		t.Errorf("a after its flush sees %q", got)
	}
	if got := b.do("get k\r\n", 3); got != "VALUE k 0 1\r\nB\r\nEND\r\n" {
		t.Errorf("b after a's flush sees %q", got)
	}
	// Stats are per tenant too.
	st := tier.Stats()
	if len(st) != 2 || st[0].Name != "a" || st[1].Name != "b" {
		t.Fatalf("stats %+v", st)
	}
	if st[0].Items != 0 || st[1].Items != 1 || st[0].Hits != 1 || st[1].Hits != 2 || st[0].Misses != 1 {
		t.Errorf("stats a=%+v b=%+v", st[0], st[1])
	}
	if st[0].CurrConnections != 1 || st[1].CurrConnections != 1 {
		t.Errorf("connections a=%d b=%d", st[0].CurrConnections, st[1].CurrConnections)
	}
}

func TestApplyRefusesSharedResources(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		tenants []TenantConfig
		errPart string
	}{
		{"same name", []TenantConfig{{Name: "a", Listen: "127.0.0.1:0"}, {Name: "a", Listen: "127.0.0.1:0"}}, "both named"},
		{"same port", []TenantConfig{{Name: "a", Listen: "127.0.0.1:21000"}, {Name: "b", Listen: "127.0.0.1:21000"}}, "both listen"},
		{"wildcard port", []TenantConfig{{Name: "a", Listen: ":21000"}, {Name: "b", Listen: "127.0.0.1:21000"}}, "both listen"},
		{"same dir", []TenantConfig{
			{Name: "a", Listen: "127.0.0.1:0", Store: StoreDurable, Dir: dir},
			{Name: "b", Listen: "127.0.0.1:0", Store: StoreDurable, Dir: dir + "/"}}, "share data dir"},
		{"nested dir", []TenantConfig{
			{Name: "a", Listen: "127.0.0.1:0", Store: StoreDurable, Dir: dir},
			{Name: "b", Listen: "127.0.0.1:0", Store: StoreDurable, Dir: filepath.Join(dir, "x")}}, "share data dir"},
		{"durable without dir", []TenantConfig{{Name: "a", Listen: "127.0.0.1:0", Store: StoreDurable}}, "needs a dir"},
		{"bad store", []TenantConfig{{Name: "a", Listen: "127.0.0.1:0", Store: "disk"}}, "unknown store"},
		{"bad listen", []TenantConfig{{Name: "a", Listen: "nowhere"}}, "listen"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tier := New(testLogger(t), Options{})
			defer tier.Close()
			err := tier.Apply(context.Background(), tt.tenants)
			if err == nil || !strings.Contains(err.Error(), tt.errPart) {
				t.Fatalf("Apply err = %v, want it to mention %q", err, tt.errPart)
			}
			if n := len(tier.Stats()); n != 0 {
				t.Errorf("%d tenants started from a refused config", n)
			}
		})
	}
}

func TestApplyChangesOnlyWhatChanged(t *testing.T) {
	tier, addrs := startTier(t, Options{}, TenantConfig{Name: "a"}, TenantConfig{Name: "b"})
	a, b := dial(t, addrs["a"]), dial(t, addrs["b"])
	a.do("set k 0 0 1\r\nA\r\n", 1)
	b.do("set k 0 0 1\r\nB\r\n", 1)

	// Change a's limit, remove b, add c: a keeps its connection and data.
	err := tier.Apply(context.Background(), []TenantConfig{
		{Name: "a", Listen: "127.0.0.1:0", MemoryLimit: 32 << 20},
		{Name: "c", Listen: "127.0.0.1:0"},
	})
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if got := a.do("get k\r\n", 3); got != "VALUE k 0 1\r\nA\r\nEND\r\n" {
		t.Errorf("a after reload: %q", got)
	}
	if got := a.do("stats settings\r\n", 1); got != "STAT maxbytes 33554432\r\n" {
		t.Errorf("a's new limit: %q", got)
	}
	b.conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := b.r.ReadString('\n'); err == nil {
		t.Error("b's connection survived its removal")
	}
	if _, ok := tier.Addr("c"); !ok {
		t.Error("c not started")
	}

	// Move a to another address: the data stays.
	err = tier.Apply(context.Background(), []TenantConfig{
		{Name: "a", Listen: "127.0.0.2:0", MemoryLimit: 32 << 20},
		{Name: "c", Listen: "127.0.0.1:0"},
	})
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	na, _ := tier.Addr("a")
	if got := dial(t, na.String()).do("get k\r\n", 3); got != "VALUE k 0 1\r\nA\r\nEND\r\n" {
		t.Errorf("a after rebind: %q", got)
	}
}

func TestMaxConns(t *testing.T) {
	tier, addrs := startTier(t, Options{}, TenantConfig{Name: "a", MaxConns: 1})
	c1 := dial(t, addrs["a"])
	c1.do("version\r\n", 1)
	c2 := dial(t, addrs["a"])
	c2.conn.SetDeadline(time.Now().Add(10 * time.Second))
	line, _ := c2.r.ReadString('\n')
	if line != "ERROR Too many open connections\r\n" {
		t.Errorf("second connection got %q", line)
	}
	if st := tier.Stats(); st[0].RejectedConnections != 1 {
		t.Errorf("rejected = %d", st[0].RejectedConnections)
	}
}

func TestIdleTimeout(t *testing.T) {
	_, addrs := startTier(t, Options{}, TenantConfig{Name: "a", IdleTimeout: 50 * time.Millisecond})
	c := dial(t, addrs["a"])
	c.do("version\r\n", 1)
	c.conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.r.ReadString('\n'); err != io.EOF {
		t.Errorf("idle connection: read err %v, want EOF", err)
	}
}

// TestTierSetsGoMemoryLimit checks that a tier told to sets the process's
// soft memory limit from its tenants' limits, follows them on reload, and
// lifts it when no tenant is left; under a limit, the collector waits for
// the heap to near it (GOGC off), unless the operator set GOGC.
func TestTierSetsGoMemoryLimit(t *testing.T) {
	if os.Getenv("GOMEMLIMIT") != "" {
		t.Skip("GOMEMLIMIT is set: the tier leaves the limit to the operator")
	}
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
	prevGC := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(prevGC) })
	gogc := os.Getenv("GOGC") != ""
	tier := New(nil, Options{NoEventLoop: true, GoMemoryLimit: true})
	t.Cleanup(func() { tier.Close() })
	ctx := context.Background()
	a := TenantConfig{Name: "a", Listen: "127.0.0.1:0", MemoryLimit: 16 << 20}
	b := TenantConfig{Name: "b", Listen: "127.0.0.1:0", MemoryLimit: 48 << 20}
	steps := []struct {
		tenants []TenantConfig
		want    int64
		wantGC  int // GOGC: off under a limit
	}{
		{[]TenantConfig{a, b}, 64<<20 + 16<<20 + 32<<20, -1},
		{[]TenantConfig{a}, 16<<20 + 4<<20 + 32<<20, -1},
		{nil, math.MaxInt64, 100},
	}
	for _, st := range steps {
		if err := tier.Apply(ctx, st.tenants); err != nil {
			t.Fatal(err)
		}
		if got := debug.SetMemoryLimit(-1); got != st.want {
			t.Errorf("%d tenants: Go memory limit %d, want %d", len(st.tenants), got, st.want)
		}
		got := debug.SetGCPercent(-1)
		debug.SetGCPercent(got)
		if !gogc && got != st.wantGC {
			t.Errorf("%d tenants: GOGC %d, want %d", len(st.tenants), got, st.wantGC)
		}
	}
}
