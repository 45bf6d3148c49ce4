package acl

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/lbd-project/lbd/pkg/config"
)

// FuzzParseAllow checks that whatever the configuration's parser accepts
// is canonical for the kernel: it survives normalisation and fits a
// hash:net set.
func FuzzParseAllow(f *testing.F) {
	for _, s := range []string{"198.51.100.7", "10.0.0.0/8", "2001:db8::/32", "::ffff:1.2.3.4/128", "0.0.0.0/0", "1.2.3.4/40"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ps, err := config.ParseAllow([]string{s})
		if err != nil {
			return
		}
		p := ps[0]
		if !p.IsValid() || p.Masked() != p || p.Addr().Is4In6() || p.Addr().Zone() != "" {
			t.Fatalf("config.ParseAllow(%q) = %s: not canonical", s, p)
		}
		// What ParseAllow returns must survive normalisation and be
		// representable in a hash:net set.
		n, err := normalizeAllow(ps)
		if err != nil || n[0] != p {
			t.Fatalf("normalize(%s) = %v, %v", p, n, err)
		}
		for _, e := range setEntries(ps, familyOf(p.Addr())) {
			if e.Bits() == 0 {
				t.Fatalf("set entry %s has /0", e)
			}
		}
	})
}

func TestSetNames(t *testing.T) {
	n := namer{setPrefix: "LBD"}
	long := strings.Repeat("x", MaxNameLen)
	for _, name := range []string{"user1", long, "a.b_c-d", "-", "0"} {
		for _, f := range []family{v4, v6} {
			s := n.setName(name, f)
			if len(n.tempName(s)) > maxSetNameLen {
				t.Errorf("%s: temp name %s too long", name, n.tempName(s))
			}
			gf, temp, ok := n.ownSet(s)
			if !ok || temp || gf != f {
				t.Errorf("ownSet(%s) = %v %v %v", s, gf, temp, ok)
			}
			if gf, temp, ok := n.ownSet(n.tempName(s)); !ok || !temp || gf != f {
				t.Errorf("ownSet(temp %s) = %v %v %v", s, gf, temp, ok)
			}
		}
	}
	if n.setName(long, v4) != n.setName(strings.Clone(long), v4) {
		t.Error("setName not stable")
	}
	if n.setName(long[:40]+"a", v4) == n.setName(long[:40]+"b", v4) {
		t.Error("truncated names collide")
	}
	for _, other := range []string{"LBD", "LBD4", "LBD4-", "KUBE-SRC-ABC", "LBD4-user1-XYZ", "LBD5-a-1234abcd", "LBDX4-a-1234abcd", "lbd4-a-1234abcd"} {
		if _, _, ok := n.ownSet(other); ok {
			t.Errorf("ownSet(%q) claims a foreign set", other)
		}
	}
}

func FuzzOwnSet(f *testing.F) {
	f.Add("user1", "LBD4-user1-1234abcd")
	f.Fuzz(func(t *testing.T, tenant, other string) {
		n := namer{setPrefix: "LBD"}
		if validName(tenant) == nil {
			s := n.setName(tenant, v6)
			if fam, temp, ok := n.ownSet(s); !ok || temp || fam != v6 || len(s)+len(tempSuffix) > maxSetNameLen {
				t.Fatalf("setName(%q) = %q not recognised", tenant, s)
			}
		}
		if fam, _, ok := n.ownSet(other); ok && (!strings.HasPrefix(other, "LBD") || (fam != v4 && fam != v6)) {
			t.Fatalf("ownSet(%q) accepted", other)
		}
	})
}

func TestParseRuleLine(t *testing.T) {
	tests := []struct {
		line    string
		ok      bool
		want    listedRule
		wantErr bool
	}{
		{line: "-P INPUT ACCEPT"},
		{line: "-N LBD-ACL"},
		{
			line: `-A LBD-ACL -d 10.1.1.1/32 -p tcp -m tcp --dport 80 -m set ! --match-set T4 src -m comment --comment "lbd-acl:t:abc" -c 12 720 -j DROP`,
			ok:   true,
			want: listedRule{
				line:    `-A LBD-ACL -d 10.1.1.1/32 -p tcp -m tcp --dport 80 -m set ! --match-set T4 src -m comment --comment lbd-acl:t:abc -j DROP`,
				chain:   "LBD-ACL",
				target:  "DROP",
				comment: "lbd-acl:t:abc",
				packets: 12, bytes: 720,
			},
		},
		{
			line: `-A INPUT -m comment --comment "an \"operator\" rule" -j ACCEPT`,
			ok:   true,
			want: listedRule{line: `-A INPUT -m comment --comment "an \"operator\" rule" -j ACCEPT`, chain: "INPUT", target: "ACCEPT", comment: `an "operator" rule`},
		},
		{line: `-A INPUT -m comment --comment "open`, wantErr: true},
		{line: `-A INPUT -c 1`, wantErr: true},
		{line: `-A INPUT -c x 1 -j DROP`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			got, ok, err := parseRuleLine(tt.line)
			if (err != nil) != tt.wantErr || ok != tt.ok {
				t.Fatalf("ok=%v err=%v", ok, err)
			}
			if got != tt.want {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseComment(t *testing.T) {
	tests := []struct {
		in     string
		tenant string
		ok     bool
	}{
		{"lbd-acl:user1:0123abcd", "user1", true},
		{"lbd-acl:a:b:0123abcd", "", false},
		{"lbd-acl:user1:0123ABCD", "", false},
		{"lbd-acl", "", false},
		{"operator", "", false},
	}
	for _, tt := range tests {
		tenant, _, ok := parseComment(tt.in)
		if ok != tt.ok || tenant != tt.tenant {
			t.Errorf("parseComment(%q) = %q %v", tt.in, tenant, ok)
		}
	}
}

func FuzzSplitSaveLine(f *testing.F) {
	f.Add(`-A LBD-ACL -m comment --comment "a \"b\" c" -c 1 2 -j DROP`)
	f.Add(`-A X "unterminated`)
	f.Fuzz(func(t *testing.T, line string) {
		toks, err := splitSaveLine(line)
		if err != nil {
			return
		}
		again, err := splitSaveLine(joinSaveLine(toks))
		if err != nil || !slices.Equal(again, toks) {
			t.Fatalf("round trip of %q: %q -> %q (%v)", line, toks, again, err)
		}
		// parseRuleLine must never panic and its line must re-parse.
		if r, ok, err := parseRuleLine("-A " + line); err == nil && ok {
			if _, _, err := parseRuleLine(r.line); err != nil {
				t.Fatalf("line %q does not re-parse: %v", r.line, err)
			}
		}
	})
}

func TestDiffPrefixes(t *testing.T) {
	tests := []struct {
		want, have, add, del []string
	}{
		{nil, nil, nil, nil},
		{[]string{"10.0.0.1"}, nil, []string{"10.0.0.1/32"}, nil},
		{nil, []string{"10.0.0.1"}, nil, []string{"10.0.0.1/32"}},
		{[]string{"10.0.0.1", "10.0.0.3"}, []string{"10.0.0.2", "10.0.0.3"}, []string{"10.0.0.1/32"}, []string{"10.0.0.2/32"}},
		{[]string{"10.0.0.0/24"}, []string{"10.0.0.0/25"}, []string{"10.0.0.0/24"}, []string{"10.0.0.0/25"}},
	}
	str := func(ps []netip.Prefix) []string {
		var out []string
		for _, p := range ps {
			out = append(out, p.String())
		}
		return out
	}
	norm := func(ss []string) []netip.Prefix { n, _ := normalizeAllow(pfx(ss...)); return n }
	for _, tt := range tests {
		add, del := diffPrefixes(norm(tt.want), norm(tt.have))
		if !slices.Equal(str(add), tt.add) || !slices.Equal(str(del), tt.del) {
			t.Errorf("diff(%v, %v) = %v %v", tt.want, tt.have, add, del)
		}
	}
}

func TestTenantRule(t *testing.T) {
	tn := Tenant{Name: "u", VIP: netip.MustParseAddr("2001:db8::1"), Port: 53, Protocol: UDP}
	tests := []struct {
		action Action
		f      family
		tenant Tenant
		want   string
	}{
		{Drop, v6, tn, "-d 2001:db8::1/128 -p udp -m udp --dport 53 -m set ! --match-set S src -m comment --comment lbd-acl:u:"},
		{Reject, v6, tn, "-j REJECT --reject-with icmp6-port-unreachable"},
		{Reject, v4, Tenant{Name: "u", Port: 53, Protocol: UDP}, "-j REJECT --reject-with icmp-port-unreachable"},
		{Reject, v4, Tenant{Name: "u", Port: 80, Protocol: TCP}, "-j REJECT --reject-with tcp-reset"},
	}
	for _, tt := range tests {
		r := tenantRule("C", tt.tenant, tt.f, "S", tt.action)
		if got := joinSaveLine(r.args); !strings.Contains(got, tt.want) {
			t.Errorf("rule %q lacks %q", got, tt.want)
		}
	}
	a := tenantRule("C", tn, v6, "S", Drop)
	b := tenantRule("C", tn, v6, "S", Reject)
	if a.fp == b.fp {
		t.Error("fingerprint ignores the action")
	}
}

func TestParseAction(t *testing.T) {
	tests := []struct {
		in   string
		want Action
		err  bool
	}{
		{"", Drop, false}, {"drop", Drop, false}, {"DROP", Drop, false},
		{"reject", Reject, false}, {"accept", Drop, true},
	}
	for _, tt := range tests {
		got, err := ParseAction(tt.in)
		if got != tt.want || (err != nil) != tt.err {
			t.Errorf("ParseAction(%q) = %v, %v", tt.in, got, err)
		}
	}
}
