package realserver

import (
	"context"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// fakeLo is lo in memory.
type fakeLo struct{ addrs []netip.Prefix }

func (f *fakeLo) Addrs() ([]netip.Prefix, error) { return slices.Clone(f.addrs), nil }
func (f *fakeLo) Add(p netip.Prefix) error {
	if !slices.Contains(f.addrs, p) {
		f.addrs = append(f.addrs, p)
	}
	return nil
}
func (f *fakeLo) Del(p netip.Prefix) error {
	f.addrs = slices.DeleteFunc(f.addrs, func(q netip.Prefix) bool { return q == p })
	return nil
}

// fakeSys is /proc/sys in memory; a key it does not hold does not exist.
type fakeSys map[string]string

func (f fakeSys) Get(key string) (string, error) {
	v, ok := f[key]
	if !ok {
		return "", fmt.Errorf("read %s: %w", key, fs.ErrNotExist)
	}
	return v, nil
}
func (f fakeSys) Set(key, value string) error {
	if _, ok := f[key]; !ok {
		return fmt.Errorf("write %s: %w", key, fs.ErrNotExist)
	}
	f[key] = value
	return nil
}

// defaultSys is a fresh host: all ARP sysctls 0, interfaces lo, eth0, eth1.
func defaultSys() fakeSys {
	f := fakeSys{}
	for _, n := range []string{"all", "default", "lo", "eth0", "eth1"} {
		f["net/ipv4/conf/"+n+"/arp_ignore"] = "0"
		f["net/ipv4/conf/"+n+"/arp_announce"] = "0"
	}
	return f
}

var (
	vip1   = netip.MustParseAddr("203.0.113.10")
	vip2   = netip.MustParseAddr("203.0.113.11")
	vip6   = netip.MustParseAddr("2001:db8::10")
	local8 = netip.MustParsePrefix("127.0.0.1/8")
)

func host(a netip.Addr) netip.Prefix { return netip.PrefixFrom(a, a.BitLen()) }

func newFake(t *testing.T, dir string, lo *fakeLo, sys fakeSys) *RealServer {
	t.Helper()
	r, err := newWith(Options{StateDir: dir}, lo, sys)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestApplyAndRemove(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name       string
		sys        func(fakeSys)     // changes to a fresh host before Apply
		loHas      []netip.Prefix    // on lo before Apply (the operator's)
		afterApply func(fakeSys)     // someone changes things after Apply
		wantSys    map[string]string // after Remove
		wantLo     []netip.Prefix    // after Remove
	}{
		{
			name:    "fresh host is restored",
			wantSys: map[string]string{"all/arp_ignore": "0", "eth0/arp_announce": "0", "lo/arp_ignore": "0"},
			wantLo:  []netip.Prefix{local8},
		},
		{
			name:    "operator's VIP on lo survives",
			loHas:   []netip.Prefix{netip.MustParsePrefix("203.0.113.10/32")},
			wantSys: map[string]string{"all/arp_ignore": "0"},
			wantLo:  []netip.Prefix{local8, host(vip1)},
		},
		{
			name:    "stricter arp_ignore is left alone",
			sys:     func(f fakeSys) { f["net/ipv4/conf/eth0/arp_ignore"] = "8" },
			wantSys: map[string]string{"eth0/arp_ignore": "8", "all/arp_ignore": "0"},
			wantLo:  []netip.Prefix{local8},
		},
		{
			name:    "previous non-default values come back",
			sys:     func(f fakeSys) { f["net/ipv4/conf/all/arp_announce"] = "1" },
			wantSys: map[string]string{"all/arp_announce": "1"},
			wantLo:  []netip.Prefix{local8},
		},
		{
			name:       "a sysctl changed since is not overwritten",
			afterApply: func(f fakeSys) { f["net/ipv4/conf/all/arp_ignore"] = "3" },
			wantSys:    map[string]string{"all/arp_ignore": "3", "lo/arp_ignore": "0"},
			wantLo:     []netip.Prefix{local8},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			sys := defaultSys()
			if tt.sys != nil {
				tt.sys(sys)
			}
			lo := &fakeLo{addrs: append([]netip.Prefix{local8}, tt.loHas...)}
			r := newFake(t, dir, lo, sys)
			if err := r.Apply(ctx, []netip.Addr{vip1, vip2, vip6}, []string{"eth0"}); err != nil {
				t.Fatal(err)
			}
			for _, n := range []string{"all", "lo", "eth0"} {
				ig, an := sys["net/ipv4/conf/"+n+"/arp_ignore"], sys["net/ipv4/conf/"+n+"/arp_announce"]
				if (ig != "1" && !satisfies("x/arp_ignore", ig)) || an != "2" {
					t.Errorf("%s: arp_ignore=%s arp_announce=%s", n, ig, an)
				}
			}
			if sys["net/ipv4/conf/eth1/arp_ignore"] != "0" {
				t.Error("eth1 was changed though not listed")
			}
			for _, p := range []netip.Prefix{host(vip1), host(vip2), host(vip6)} {
				if !slices.Contains(lo.addrs, p) {
					t.Errorf("%s not on lo", p)
				}
			}
			if _, err := os.Stat(filepath.Join(dir, stateFile)); err != nil {
				t.Fatalf("no state file: %v", err)
			}
			if tt.afterApply != nil {
				tt.afterApply(sys)
			}

			// A new instance adopts the state and removes.
			r2 := newFake(t, dir, lo, sys)
			if err := r2.Remove(ctx); err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.wantSys {
				if got := sys["net/ipv4/conf/"+k]; got != v {
					t.Errorf("after Remove %s = %s, want %s", k, got, v)
				}
			}
			slices.SortFunc(lo.addrs, netip.Prefix.Compare)
			slices.SortFunc(tt.wantLo, netip.Prefix.Compare)
			if !slices.Equal(lo.addrs, tt.wantLo) {
				t.Errorf("lo after Remove: %v, want %v", lo.addrs, tt.wantLo)
			}
			if _, err := os.Stat(filepath.Join(dir, stateFile)); !os.IsNotExist(err) {
				t.Errorf("state file left after Remove: %v", err)
			}
		})
	}
}

func TestApplyConverges(t *testing.T) {
	ctx := context.Background()
	sys := defaultSys()
	lo := &fakeLo{addrs: []netip.Prefix{local8}}
	r := newFake(t, t.TempDir(), lo, sys)
	if err := r.Apply(ctx, []netip.Addr{vip1, vip2}, []string{"eth0", "eth1"}); err != nil {
		t.Fatal(err)
	}
	if err := r.Apply(ctx, []netip.Addr{vip2}, []string{"eth0"}); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(lo.addrs, host(vip1)) || !slices.Contains(lo.addrs, host(vip2)) {
		t.Fatalf("lo holds %v, want vip2 only besides loopback", lo.addrs)
	}
	if sys["net/ipv4/conf/eth1/arp_ignore"] != "0" || sys["net/ipv4/conf/eth1/arp_announce"] != "0" {
		t.Fatal("eth1 not restored when dropped from the list")
	}
	if sys["net/ipv4/conf/eth0/arp_ignore"] != "1" {
		t.Fatal("eth0 lost its setting")
	}
	addrs, keys := r.Owned()
	if len(addrs) != 1 || len(keys) != 6 {
		t.Fatalf("owns %v and %v, want 1 address and 6 sysctls", addrs, keys)
	}
	// No VIPs means nothing to protect: everything is undone.
	if err := r.Apply(ctx, nil, []string{"eth0"}); err != nil {
		t.Fatal(err)
	}
	if addrs, keys := r.Owned(); len(addrs) != 0 || len(keys) != 0 {
		t.Fatalf("still owns %v %v", addrs, keys)
	}
}

func TestApplyIdempotent(t *testing.T) {
	ctx := context.Background()
	sys := defaultSys()
	lo := &fakeLo{addrs: []netip.Prefix{local8}}
	dir := t.TempDir()
	r := newFake(t, dir, lo, sys)
	for range 2 {
		if err := r.Apply(ctx, []netip.Addr{vip1}, []string{"eth0"}); err != nil {
			t.Fatal(err)
		}
	}
	// A restart that applies again must still remember the original values.
	r2 := newFake(t, dir, lo, sys)
	if err := r2.Apply(ctx, []netip.Addr{vip1}, []string{"eth0"}); err != nil {
		t.Fatal(err)
	}
	if err := r2.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	if sys["net/ipv4/conf/all/arp_ignore"] != "0" || slices.Contains(lo.addrs, host(vip1)) {
		t.Fatal("restart lost the original state")
	}
}

func TestApplyRejects(t *testing.T) {
	tests := []struct {
		name   string
		vips   []netip.Addr
		ifaces []string
	}{
		{"zero VIP", []netip.Addr{{}}, nil},
		{"loopback VIP", []netip.Addr{netip.MustParseAddr("127.0.0.2")}, nil},
		{"unspecified VIP", []netip.Addr{netip.IPv4Unspecified()}, nil},
		{"path in interface", []netip.Addr{vip1}, []string{"../../x"}},
		{"empty interface", []netip.Addr{vip1}, []string{""}},
		{"long interface", []netip.Addr{vip1}, []string{"abcdefghijklmnop"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sys := defaultSys()
			lo := &fakeLo{}
			r := newFake(t, t.TempDir(), lo, sys)
			if err := r.Apply(context.Background(), tt.vips, tt.ifaces); err == nil {
				t.Fatal("accepted")
			}
			if len(lo.addrs) != 0 || sys["net/ipv4/conf/all/arp_ignore"] != "0" {
				t.Fatal("a rejected Apply changed something")
			}
		})
	}
}

func TestStateFile(t *testing.T) {
	tests := []struct {
		name    string
		content string
		wantErr bool
	}{
		{"corrupt", "{not json", true},
		{"future version", `{"version": 99}`, true},
		{"valid", `{"version":1,"addresses":["203.0.113.10/32"],"sysctls":{"net/ipv4/conf/all/arp_ignore":{"prev":"0","set":"1"}}}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, stateFile), []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			r, err := newWith(Options{StateDir: dir}, &fakeLo{}, defaultSys())
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil {
				if a, k := r.Owned(); len(a) != 1 || len(k) != 1 {
					t.Fatalf("adopted %v %v", a, k)
				}
			}
		})
	}
}

func TestStateSaveLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	s := newState()
	s.addAddr(host(vip1))
	for range 3 {
		if err := s.save(dir); err != nil {
			t.Fatal(err)
		}
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != stateFile {
		t.Fatalf("state dir holds %v", ents)
	}
	got, err := loadState(dir)
	if err != nil || !got.ownsAddr(host(vip1)) {
		t.Fatalf("reload: %v %+v", err, got)
	}
}
