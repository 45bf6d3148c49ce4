package ipvs

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestStateRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", StateFileName)
	k1 := Key{Protocol: TCP, Addr: netip.MustParseAddr("203.0.113.10"), Port: 80}
	k2 := Key{Addr: netip.IPv6Unspecified(), FWMark: 7}
	k3 := Key{Protocol: UDP, Addr: netip.MustParseAddr("2001:db8::1"), Port: 53}
	until := time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC)
	dk := DestKey{Addr: netip.MustParseAddr("10.0.0.1"), Port: 80}
	recs := map[Key]*svcRec{
		k1: {dests: map[DestKey]*destRec{dk: {drainUntil: until}}},
		k2: {drainUntil: until, dests: map[DestKey]*destRec{}},
	}
	if err := saveState(path, recs, map[Key]*Service{k3: nil}); err != nil {
		t.Fatal(err)
	}
	st, err := loadState(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []Key{k1, k2, k3} {
		if _, ok := st.keys[k]; !ok {
			t.Errorf("owned key %s lost", k)
		}
	}
	if !st.drain[k2].Equal(until) || !st.dests[k1][dk].Equal(until) || len(st.drain) != 1 {
		t.Errorf("drain deadlines: %+v %+v", st.drain, st.dests)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func TestStateMissingAndBroken(t *testing.T) {
	dir := t.TempDir()
	if st, err := loadState(filepath.Join(dir, "none.json")); err != nil || len(st.keys) != 0 {
		t.Fatalf("missing file: %v %v", st, err)
	}
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"version": 9}`), 0o644)
	if _, err := loadState(bad); err == nil {
		t.Fatal("unknown version accepted")
	}
}

func FuzzLoadState(f *testing.F) {
	f.Add([]byte(`{"version":1,"services":[{"protocol":6,"addr":"10.0.0.1","port":80,"draining":[{"addr":"10.0.1.1","port":80,"drain_until":"2026-11-22T00:00:00Z"}]}]}`))
	f.Add([]byte(`{"version":1,"services":[{"addr":"::","fwmark":3,"drain_until":"2026-11-22T00:00:00Z"}]}`))
	f.Add([]byte(`not json`))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(dir, "state.json")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Skip()
		}
		loadState(path) // must not panic
	})
}
