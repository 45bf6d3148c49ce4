package acl

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"testing"
)

// nla encodes one netlink attribute, padded to four bytes.
func nla(typ uint16, val ...[]byte) []byte {
	var v []byte
	for _, p := range val {
		v = append(v, p...)
	}
	b := make([]byte, 4, 4+len(v)+3)
	binary.NativeEndian.PutUint16(b[0:2], uint16(4+len(v)))
	binary.NativeEndian.PutUint16(b[2:4], typ)
	b = append(b, v...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

const (
	fNested = 1 << 15
	fNetBO  = 1 << 14
)

func dumpMsg(attrs ...[]byte) []byte {
	msg := []byte{afInet, 0, 0, 0} // nfgenmsg
	for _, a := range attrs {
		msg = append(msg, a...)
	}
	return msg
}

func dumpEntry(p string, withCIDR bool) []byte {
	pr := netip.MustParsePrefix(p)
	typ := uint16(ipsetAttrIPv4)
	if pr.Addr().Is6() {
		typ = ipsetAttrIPv6
	}
	fields := [][]byte{nla(ipsetAttrIP|fNested, nla(typ|fNetBO, pr.Addr().AsSlice()))}
	if withCIDR {
		fields = append(fields, nla(ipsetAttrCIDR, []byte{byte(pr.Bits())}))
	}
	return nla(ipsetAttrData|fNested, fields...)
}

func cstr(s string) []byte { return append([]byte(s), 0) }

func TestParseSetDump(t *testing.T) {
	msgs := [][]byte{
		dumpMsg(nla(1, []byte{7}), nla(ipsetAttrSetName, cstr("LBD4-a-0123abcd")), nla(ipsetAttrTypeName, cstr("hash:net")),
			nla(ipsetAttrFamily, []byte{afInet}), nla(ipsetAttrData|fNested, nla(24|fNetBO, []byte{0, 0, 0, 3})),
			nla(ipsetAttrADT|fNested, dumpEntry("10.0.0.0/8", true), dumpEntry("192.0.2.1/32", false))),
		dumpMsg(nla(ipsetAttrSetName, cstr("operator")), nla(ipsetAttrTypeName, cstr("hash:ip")),
			nla(ipsetAttrADT|fNested, []byte{0xff})), // garbage, but not ours: skipped
		dumpMsg(nla(ipsetAttrSetName, cstr("LBD4-a-0123abcd")),
			nla(ipsetAttrADT|fNested, dumpEntry("172.16.0.0/12", true))),
		dumpMsg(nla(ipsetAttrSetName, cstr("LBD6-b-0123abcd")), nla(ipsetAttrTypeName, cstr("hash:net")),
			nla(ipsetAttrFamily, []byte{afInet6}), nla(ipsetAttrADT|fNested, dumpEntry("2001:db8::/32", true))),
	}
	n := namer{setPrefix: "LBD"}
	got, err := parseSetDump(msgs, func(s string) bool { _, _, ok := n.ownSet(s); return ok })
	if err != nil {
		t.Fatal(err)
	}
	want := []setInfo{
		{name: "LBD4-a-0123abcd", family: v4, typ: "hash:net", entries: pfx("10.0.0.0/8", "172.16.0.0/12", "192.0.2.1")},
		{name: "LBD6-b-0123abcd", family: v6, typ: "hash:net", entries: pfx("2001:db8::/32")},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i].name != want[i].name || got[i].family != want[i].family || got[i].typ != want[i].typ ||
			!slices.Equal(got[i].entries, want[i].entries) {
			t.Errorf("set %d = %+v, want %+v", i, got[i], want[i])
		}
	}

	bad := []struct {
		name string
		msg  []byte
	}{
		{"short message", []byte{1, 2}},
		{"attribute overruns", dumpMsg([]byte{200, 0, 2, 0})},
		{"entry without address", dumpMsg(nla(ipsetAttrSetName, cstr("LBD4-a-0123abcd")),
			nla(ipsetAttrADT|fNested, nla(ipsetAttrData|fNested, nla(ipsetAttrCIDR, []byte{8}))))},
		{"prefix too long", dumpMsg(nla(ipsetAttrSetName, cstr("LBD4-a-0123abcd")),
			nla(ipsetAttrADT|fNested, nla(ipsetAttrData|fNested,
				nla(ipsetAttrIP|fNested, nla(ipsetAttrIPv4|fNetBO, []byte{10, 0, 0, 0})), nla(ipsetAttrCIDR, []byte{33}))))},
	}
	for _, tt := range bad {
		if _, err := parseSetDump([][]byte{tt.msg}, func(string) bool { return true }); err == nil {
			t.Errorf("%s: no error", tt.name)
		}
	}
}

func TestParseSetSizes(t *testing.T) {
	be := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
	msgs := [][]byte{
		dumpMsg(nla(1, []byte{7}), nla(ipsetAttrSetName, cstr("LBD4-a-0123abcd")), nla(ipsetAttrTypeName, cstr("hash:net")),
			nla(ipsetAttrData|fNested, nla(19|fNetBO, be(65536)), nla(ipsetAttrElements|fNetBO, be(3)))),
		dumpMsg(nla(ipsetAttrSetName, cstr("operator")),
			nla(ipsetAttrData|fNested, nla(ipsetAttrElements|fNetBO, be(0)))),
		// No count: left out.
		dumpMsg(nla(ipsetAttrSetName, cstr("nocount")), nla(ipsetAttrData|fNested, nla(19|fNetBO, be(8)))),
		// An unknown attribute of a newer ipset is skipped.
		dumpMsg(nla(ipsetAttrSetName, cstr("LBD6-b-0123abcd")), nla(99, []byte{1, 2, 3}),
			nla(ipsetAttrData|fNested, nla(ipsetAttrElements|fNetBO, be(70000)))),
	}
	got, err := parseSetSizes(msgs)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"LBD4-a-0123abcd": 3, "operator": 0, "LBD6-b-0123abcd": 70000}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for name, n := range want {
		if got[name] != n {
			t.Errorf("%s: got %d entries, want %d", name, got[name], n)
		}
	}
	for _, msg := range [][]byte{{1, 2}, dumpMsg([]byte{200, 0, 2, 0}),
		dumpMsg(nla(ipsetAttrSetName, cstr("s")), nla(ipsetAttrData|fNested, []byte{200, 0, 24, 0}))} {
		if _, err := parseSetSizes([][]byte{msg}); err == nil {
			t.Errorf("malformed message %v: no error", msg)
		}
	}
}

func FuzzParseSetDump(f *testing.F) {
	f.Add(dumpMsg(nla(ipsetAttrSetName, cstr("s")), nla(ipsetAttrTypeName, cstr("hash:net")),
		nla(ipsetAttrADT|fNested, dumpEntry("10.0.0.0/8", true), dumpEntry("2001:db8::1/128", false))))
	f.Add([]byte{0, 0, 0, 0, 8, 0, 2, 0, 's', 0, 0, 0})
	f.Fuzz(func(t *testing.T, msg []byte) {
		sets, err := parseSetDump([][]byte{msg, msg}, func(string) bool { return true })
		if err != nil {
			return
		}
		for _, s := range sets {
			for _, p := range s.entries {
				if !p.IsValid() || p.Bits() > p.Addr().BitLen() {
					t.Fatalf("invalid entry %v in %q", p, s.name)
				}
			}
		}
	})
}
