package acl

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/lbd-project/lbd/pkg/config"
)

func pfx(ss ...string) []netip.Prefix {
	out, err := config.ParseAllow(ss)
	if err != nil {
		panic(err)
	}
	return out
}

func testManager(t *testing.T, k *fakeKernel) *Manager {
	t.Helper()
	opts, err := Options{Logger: slog.New(slog.DiscardHandler)}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	return newManager(opts, k)
}

func sampleTenants() []Tenant {
	return []Tenant{
		{Name: "user1", VIP: netip.MustParseAddr("203.0.113.10"), Port: 13101, Allow: pfx("198.51.100.7", "198.51.100.0/28")},
		{Name: "user2", VIP: netip.MustParseAddr("203.0.113.10"), Port: 13102, Protocol: UDP, Allow: nil},
		{Name: "six", VIP: netip.MustParseAddr("2001:db8::10"), Port: 13103, Allow: pfx("2001:db8:1::/48")},
		{Name: "any", Port: 11211, Allow: pfx("10.0.0.0/8", "fd00::/8")},
	}
}

func entriesOf(k *fakeKernel, set string) []string {
	s := k.sets[set]
	if s == nil {
		return nil
	}
	var out []string
	for _, p := range s.entries {
		out = append(out, p.String())
	}
	return out
}

func TestApplyFromNothing(t *testing.T) {
	k := newFakeKernel()
	m := testManager(t, k)
	ctx := context.Background()
	if err := m.Apply(ctx, sampleTenants()); err != nil {
		t.Fatal(err)
	}
	n := m.names
	tests := []struct {
		set  string
		want []string
	}{
		{n.setName("user1", v4), []string{"198.51.100.0/28", "198.51.100.7/32"}},
		{n.setName("user2", v4), nil},
		{n.setName("six", v6), []string{"2001:db8:1::/48"}},
		{n.setName("any", v4), []string{"10.0.0.0/8"}},
		{n.setName("any", v6), []string{"fd00::/8"}},
	}
	for _, tt := range tests {
		if _, ok := k.sets[tt.set]; !ok {
			t.Errorf("set %s missing", tt.set)
			continue
		}
		if got := entriesOf(k, tt.set); !slices.Equal(got, tt.want) {
			t.Errorf("set %s = %v, want %v", tt.set, got, tt.want)
		}
	}
	if len(k.sets) != len(tests) {
		t.Errorf("got %d sets, want %d", len(k.sets), len(tests))
	}
	if got := len(k.chains[v4][DefaultChain]); got != 3 {
		t.Errorf("v4 chain has %d rules, want 3: %v", got, k.chains[v4][DefaultChain])
	}
	if got := len(k.chains[v6][DefaultChain]); got != 2 {
		t.Errorf("v6 chain has %d rules, want 2", got)
	}
	for _, f := range []family{v4, v6} {
		in := k.chains[f]["INPUT"]
		if len(in) != 1 || !strings.HasSuffix(in[0], "-j "+DefaultChain) {
			t.Errorf("%s INPUT = %v, want one jump", f, in)
		}
	}
	// Sets are filled before any rule refers to them.
	ops := k.writes()
	firstRestore := slices.Index(ops, "restore 4")
	for i, op := range ops {
		if strings.HasPrefix(op, "add ") && i > firstRestore {
			t.Errorf("set filled after rules committed: %v", ops)
			break
		}
	}
	// One commit per family.
	if c := countPrefix(ops, "restore"); c != 2 {
		t.Errorf("%d restores, want 2: %v", c, ops)
	}
}

func countPrefix(ops []string, p string) int {
	n := 0
	for _, o := range ops {
		if strings.HasPrefix(o, p) {
			n++
		}
	}
	return n
}

func TestApplyIsIdempotentAndAdoptsAfterRestart(t *testing.T) {
	k := newFakeKernel()
	ctx := context.Background()
	if err := testManager(t, k).Apply(ctx, sampleTenants()); err != nil {
		t.Fatal(err)
	}
	k.ops = nil
	// A new Manager (lbd restarted) adopts everything without a write.
	m := testManager(t, k)
	if err := m.Apply(ctx, sampleTenants()); err != nil {
		t.Fatal(err)
	}
	if len(k.ops) != 0 {
		t.Errorf("re-apply wrote %v, want nothing", k.ops)
	}
	if got := len(m.Tenants()); got != 4 {
		t.Errorf("adopted %d tenants, want 4", got)
	}
}

func TestApplyChanges(t *testing.T) {
	ctx := context.Background()
	k := newFakeKernel()
	m := testManager(t, k)
	if err := m.Apply(ctx, sampleTenants()); err != nil {
		t.Fatal(err)
	}
	// Foreign state that must survive.
	k.sets["operator"] = &setInfo{name: "operator", family: v4, typ: "hash:ip"}
	k.chains[v4]["INPUT"] = append(k.chains[v4]["INPUT"], "-A INPUT -p tcp --dport 22 -j ACCEPT")
	// An interrupted update left a temp set.
	tmp := m.names.tempName(m.names.setName("user1", v4))
	k.sets[tmp] = &setInfo{name: tmp, family: v4, typ: setType}

	next := sampleTenants()
	next[0].Allow = pfx("198.51.100.7", "192.0.2.0/24", "192.0.2.99") // swap
	next[0].Port = 14101                                              // rule change
	next = slices.Delete(next, 1, 2)                                  // user2 gone
	k.ops = nil
	if err := m.Apply(ctx, next); err != nil {
		t.Fatal(err)
	}
	if got := entriesOf(k, m.names.setName("user1", v4)); !slices.Equal(got, []string{"192.0.2.0/24", "192.0.2.99/32", "198.51.100.7/32"}) {
		t.Errorf("user1 = %v", got)
	}
	for _, gone := range []string{tmp, m.names.setName("user2", v4)} {
		if _, ok := k.sets[gone]; ok {
			t.Errorf("set %s still there", gone)
		}
	}
	if _, ok := k.sets["operator"]; !ok {
		t.Error("operator's set removed")
	}
	if in := k.chains[v4]["INPUT"]; len(in) != 2 || in[1] != "-A INPUT -p tcp --dport 22 -j ACCEPT" {
		t.Errorf("INPUT = %v", in)
	}
	rules := strings.Join(k.chains[v4][DefaultChain], "\n")
	if strings.Contains(rules, "13101") || !strings.Contains(rules, "14101") || strings.Contains(rules, "user2") {
		t.Errorf("rules not updated:\n%s", rules)
	}
	if c := countPrefix(k.ops, "restore 4"); c != 1 {
		t.Errorf("%d v4 commits, want 1: %v", c, k.ops)
	}
	if c := countPrefix(k.ops, "restore 6"); c != 0 {
		t.Errorf("v6 untouched tenants rewritten: %v", k.ops)
	}
}

func TestAllowChanges(t *testing.T) {
	ctx := context.Background()
	set := namer{setPrefix: DefaultSetPrefix}.setName("user1", v4)
	tests := []struct {
		name    string
		do      func(*Manager) error
		want    []string
		wantOps []string
	}{
		{
			name:    "add one in place",
			do:      func(m *Manager) error { return m.AddAllow(ctx, "user1", pfx("192.0.2.1")) },
			want:    []string{"192.0.2.1/32", "198.51.100.0/28", "198.51.100.7/32"},
			wantOps: []string{"add " + set + " 192.0.2.1/32"},
		},
		{
			name:    "add present is a no-op",
			do:      func(m *Manager) error { return m.AddAllow(ctx, "user1", pfx("198.51.100.7")) },
			want:    []string{"198.51.100.0/28", "198.51.100.7/32"},
			wantOps: nil,
		},
		{
			name:    "remove one in place",
			do:      func(m *Manager) error { return m.RemoveAllow(ctx, "user1", pfx("198.51.100.7")) },
			want:    []string{"198.51.100.0/28"},
			wantOps: []string{"del " + set + " 198.51.100.7/32"},
		},
		{
			name: "replace swaps",
			do:   func(m *Manager) error { return m.SetAllow(ctx, "user1", pfx("192.0.2.0/24")) },
			want: []string{"192.0.2.0/24"},
			wantOps: []string{"create " + set + "-t", "add " + set + "-t 192.0.2.0/24",
				"swap " + set + " " + set + "-t", "destroy " + set + "-t"},
		},
		{
			name: "empty list means nobody",
			do:   func(m *Manager) error { return m.SetAllow(ctx, "user1", nil) },
			want: nil,
			wantOps: []string{"create " + set + "-t",
				"swap " + set + " " + set + "-t", "destroy " + set + "-t"},
		},
		{
			name: "everyone is two halves",
			do:   func(m *Manager) error { return m.SetAllow(ctx, "user1", pfx("0.0.0.0/0")) },
			want: []string{"0.0.0.0/1", "128.0.0.0/1"},
			wantOps: []string{"create " + set + "-t", "add " + set + "-t 0.0.0.0/1", "add " + set + "-t 128.0.0.0/1",
				"swap " + set + " " + set + "-t", "destroy " + set + "-t"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := newFakeKernel()
			m := testManager(t, k)
			if err := m.Apply(ctx, sampleTenants()); err != nil {
				t.Fatal(err)
			}
			k.ops = nil
			if err := tt.do(m); err != nil {
				t.Fatal(err)
			}
			if got := entriesOf(k, set); !slices.Equal(got, tt.want) {
				t.Errorf("set = %v, want %v", got, tt.want)
			}
			if !slices.Equal(k.ops, tt.wantOps) {
				t.Errorf("ops = %q, want %q", k.ops, tt.wantOps)
			}
			tn, _ := m.Tenant("user1")
			if got := len(setEntries(tn.Allow, v4)); got != len(tt.want) {
				t.Errorf("recorded %v, kernel %v", tn.Allow, tt.want)
			}
		})
	}
}

func TestFailedUpdateKeepsOldList(t *testing.T) {
	ctx := context.Background()
	boom := errors.New("boom")
	set := namer{setPrefix: DefaultSetPrefix}.setName("user1", v4)
	for _, key := range []string{"create " + set + "-t", "add " + set + "-t", "swap " + set} {
		t.Run(key, func(t *testing.T) {
			k := newFakeKernel()
			m := testManager(t, k)
			if err := m.Apply(ctx, sampleTenants()); err != nil {
				t.Fatal(err)
			}
			k.fail[key] = boom
			err := m.SetAllow(ctx, "user1", pfx("192.0.2.1", "192.0.2.2"))
			if !errors.Is(err, boom) {
				t.Fatalf("err = %v, want boom", err)
			}
			if got := entriesOf(k, set); !slices.Equal(got, []string{"198.51.100.0/28", "198.51.100.7/32"}) {
				t.Errorf("set = %v, want the old list", got)
			}
			if _, ok := k.sets[set+"-t"]; ok {
				t.Error("temp set left behind")
			}
			if tn, _ := m.Tenant("user1"); len(tn.Allow) != 2 {
				t.Errorf("recorded list changed to %v", tn.Allow)
			}
		})
	}
}

func TestApplyReportsFailedTenants(t *testing.T) {
	ctx := context.Background()
	k := newFakeKernel()
	m := testManager(t, k)
	k.fail["create "+m.names.setName("user2", v4)] = errors.New("no memory")
	err := m.Apply(ctx, sampleTenants())
	if got := FailedTenants(err); !slices.Equal(got, []string{"user2"}) {
		t.Fatalf("FailedTenants = %v (err %v)", got, err)
	}
	if _, ok := m.Tenant("user2"); ok {
		t.Error("failed tenant recorded as enforced")
	}
	if strings.Contains(strings.Join(k.chains[v4][DefaultChain], "\n"), "user2") {
		t.Error("rule added for a tenant without a set")
	}
	if _, ok := m.Tenant("user1"); !ok {
		t.Error("other tenants not applied")
	}

	// A failed commit leaves the old rules; the change is reported.
	delete(k.fail, "create "+m.names.setName("user2", v4))
	k.fail["restore 4"] = errors.New("xtables lock")
	next := sampleTenants()
	next[0].Port = 9999
	next[0].Allow = pfx("192.0.2.0/24", "192.0.2.1")
	err = m.Apply(ctx, next)
	if got := FailedTenants(err); !slices.Contains(got, "user1") {
		t.Fatalf("FailedTenants = %v", got)
	}
	if tn, _ := m.Tenant("user1"); tn.Port != 13101 {
		t.Errorf("recorded port %d after failed commit", tn.Port)
	}
	if !strings.Contains(strings.Join(k.chains[v4][DefaultChain], "\n"), "13101") {
		t.Error("old rule gone after failed commit")
	}

	// The failed Apply swapped user1's set to next's list, though the
	// record kept the old one; the next change must not trust the record.
	set := m.names.setName("user1", v4)
	if err := m.AddAllow(ctx, "user1", pfx("192.0.2.50")); err != nil {
		t.Fatal(err)
	}
	if got := entriesOf(k, set); !slices.Equal(got, []string{"192.0.2.50/32", "198.51.100.0/28", "198.51.100.7/32"}) {
		t.Errorf("after change following a failed apply: %v", got)
	}
}

func TestValidateRejects(t *testing.T) {
	vip := netip.MustParseAddr("203.0.113.10")
	tests := []struct {
		name    string
		tenants []Tenant
		want    string
	}{
		{"duplicate name", []Tenant{{Name: "a", VIP: vip, Port: 1}, {Name: "a", VIP: vip, Port: 2}}, "listed twice"},
		{"same service", []Tenant{{Name: "a", VIP: vip, Port: 1}, {Name: "b", VIP: vip, Port: 1}}, "both fence"},
		{"any clashes", []Tenant{{Name: "a", VIP: vip, Port: 1}, {Name: "b", Port: 1}}, "both fence"},
		{"port 0", []Tenant{{Name: "a", VIP: vip}}, "port 0"},
		{"bad name", []Tenant{{Name: "a b", VIP: vip, Port: 1}}, "not allowed"},
		{"bad proto", []Tenant{{Name: "a", VIP: vip, Port: 1, Protocol: "sctp"}}, "not tcp or udp"},
		{"family", []Tenant{{Name: "a", VIP: vip, Port: 1, Allow: pfx("2001:db8::1")}}, "is IPv6 but VIP"},
		{"unspecified", []Tenant{{Name: "a", VIP: netip.IPv4Unspecified(), Port: 1}}, "unspecified"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := newFakeKernel()
			m := testManager(t, k)
			err := m.Apply(context.Background(), tt.tenants)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if len(k.ops) != 0 {
				t.Errorf("invalid input touched the kernel: %v", k.ops)
			}
		})
	}
	// Same port on different protocols or VIPs is fine.
	m := testManager(t, newFakeKernel())
	if err := m.Apply(context.Background(), []Tenant{
		{Name: "a", VIP: vip, Port: 1}, {Name: "b", VIP: vip, Port: 1, Protocol: UDP},
		{Name: "c", VIP: netip.MustParseAddr("203.0.113.11"), Port: 1},
	}); err != nil {
		t.Fatal(err)
	}
}

func TestRemoveAndPurge(t *testing.T) {
	ctx := context.Background()
	k := newFakeKernel()
	m := testManager(t, k)
	if err := m.Apply(ctx, sampleTenants()); err != nil {
		t.Fatal(err)
	}
	k.sets["operator"] = &setInfo{name: "operator", family: v4, typ: "hash:ip"}
	k.chains[v4]["INPUT"] = append(k.chains[v4]["INPUT"], "-A INPUT -j ACCEPT")
	if err := m.Remove(ctx, "any"); err != nil {
		t.Fatal(err)
	}
	for _, f := range []family{v4, v6} {
		if _, ok := k.sets[m.names.setName("any", f)]; ok {
			t.Errorf("%s set of removed tenant still there", f)
		}
		if strings.Contains(strings.Join(k.chains[f][DefaultChain], "\n"), ":any:") {
			t.Errorf("%s rule of removed tenant still there", f)
		}
	}
	if err := m.Remove(ctx, "any"); !errors.Is(err, ErrUnknownTenant) {
		t.Errorf("second remove: %v", err)
	}
	if err := m.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	if len(k.sets) != 1 {
		t.Errorf("sets after purge: %v", sortedKeys(k.sets))
	}
	if _, ok := k.chains[v4][DefaultChain]; ok {
		t.Error("chain left after purge")
	}
	if in := k.chains[v4]["INPUT"]; !slices.Equal(in, []string{"-A INPUT -j ACCEPT"}) {
		t.Errorf("INPUT after purge = %v", in)
	}
}

func TestState(t *testing.T) {
	ctx := context.Background()
	k := newFakeKernel()
	m := testManager(t, k)
	if err := m.Apply(ctx, sampleTenants()); err != nil {
		t.Fatal(err)
	}
	st, err := m.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 5 {
		t.Fatalf("got %d states, want 5: %+v", len(st), st)
	}
	for _, s := range st {
		if !s.Enforced || s.Packets != 7 || s.Bytes != 420 {
			t.Errorf("state %+v", s)
		}
		if s.Tenant == "user1" && s.Entries != 2 {
			t.Errorf("user1 entries %d", s.Entries)
		}
	}
	// A rule that went missing shows as not enforced.
	k.chains[v4][DefaultChain] = nil
	st, _ = m.State(ctx)
	for _, s := range st {
		if s.Family == 4 && s.Enforced {
			t.Errorf("%s reported enforced without a rule", s.Tenant)
		}
	}
}

func TestUnknownTenantAndClosed(t *testing.T) {
	ctx := context.Background()
	m := testManager(t, newFakeKernel())
	if err := m.AddAllow(ctx, "nobody", pfx("192.0.2.1")); !errors.Is(err, ErrUnknownTenant) {
		t.Errorf("AddAllow unknown: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Apply(ctx, nil); err == nil {
		t.Error("Apply after Close succeeded")
	}
}
