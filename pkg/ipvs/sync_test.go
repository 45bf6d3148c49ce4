package ipvs

import (
	"errors"
	"net/netip"
	"slices"
	"testing"
)

// fakeSync is an in-memory SyncKernel: one master and one backup slot, as
// in the kernel (EEXIST when taken, ESRCH when stopping nothing).
type fakeSync struct {
	run    map[SyncState]SyncDaemon
	starts int
	stops  int
	fail   error
}

func (f *fakeSync) SyncDaemons() ([]SyncDaemon, error) {
	var out []SyncDaemon
	for _, s := range []SyncState{SyncMaster, SyncBackup} {
		if d, ok := f.run[s]; ok {
			out = append(out, d)
		}
	}
	return out, nil
}

func (f *fakeSync) StartSyncDaemon(d SyncDaemon) error {
	if f.fail != nil {
		return f.fail
	}
	if _, ok := f.run[d.State]; ok {
		return errors.New("file exists")
	}
	// The kernel fills in its defaults.
	if d.Port == 0 {
		d.Port = 8848
	}
	if d.TTL == 0 {
		d.TTL = 1
	}
	if !d.Group.IsValid() {
		d.Group = netip.MustParseAddr("224.0.0.81")
	}
	if d.MaxLen == 0 {
		d.MaxLen = 1472
	}
	f.run[d.State] = d
	f.starts++
	return nil
}

func (f *fakeSync) StopSyncDaemon(s SyncState) error {
	if _, ok := f.run[s]; !ok {
		return errors.New("no such process")
	}
	delete(f.run, s)
	f.stops++
	return nil
}

func master(id uint8) SyncDaemon { return SyncDaemon{State: SyncMaster, Interface: "eth0", SyncID: id} }
func backup(id uint8) SyncDaemon { return SyncDaemon{State: SyncBackup, Interface: "eth0", SyncID: id} }

func TestPlanSync(t *testing.T) {
	m1, b2 := master(1), backup(2)
	m1k := m1
	m1k.Port, m1k.TTL = 8848, 1
	tests := []struct {
		name                  string
		want, have, owned     []SyncDaemon
		stop, start, conflict int
		owns                  int
	}{
		{"fresh start", []SyncDaemon{m1, b2}, nil, nil, 0, 2, 0, 2},
		{"adopt after restart", []SyncDaemon{m1, b2}, []SyncDaemon{m1k, b2}, []SyncDaemon{m1, b2}, 0, 0, 0, 2},
		{"operator's daemon left alone", []SyncDaemon{m1, b2}, []SyncDaemon{m1k}, nil, 0, 1, 1, 1},
		{"operator's daemon, not wanted", nil, []SyncDaemon{m1k}, nil, 0, 0, 0, 0},
		{"changed sync id restarts", []SyncDaemon{master(3)}, []SyncDaemon{m1k}, []SyncDaemon{m1}, 1, 1, 0, 1},
		{"unwanted own daemon stops", nil, []SyncDaemon{m1k, b2}, []SyncDaemon{m1, b2}, 2, 0, 0, 0},
		{"record of a daemon gone", []SyncDaemon{b2}, nil, []SyncDaemon{m1, b2}, 0, 1, 0, 1},
		{"record differs from the kernel: not ours", []SyncDaemon{m1}, []SyncDaemon{master(9)}, []SyncDaemon{m1}, 0, 0, 1, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := planSync(tc.want, tc.have, tc.owned)
			if len(p.stop) != tc.stop || len(p.start) != tc.start || len(p.conflicts) != tc.conflict || len(p.owned) != tc.owns {
				t.Errorf("plan: stop %v start %v conflicts %v owned %v", p.stop, p.start, p.conflicts, p.owned)
			}
		})
	}
}

func TestSyncManagerOwnsOnlyItsDaemons(t *testing.T) {
	dir := t.TempDir()
	k := &fakeSync{run: map[SyncState]SyncDaemon{}}
	// An operator's backup daemon runs already.
	k.run[SyncBackup] = SyncDaemon{State: SyncBackup, Interface: "eth1", SyncID: 7}
	m, err := NewSyncManager(k, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []SyncDaemon{master(1), backup(2)}
	res, err := m.Apply(want)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Started) != 1 || len(res.Conflicts) != 1 || k.run[SyncBackup].SyncID != 7 {
		t.Fatalf("first apply: %+v, kernel %v", res, k.run)
	}
	// A restart adopts the master daemon without a write.
	m2, err := NewSyncManager(k, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res, err = m2.Apply(want); err != nil || len(res.Started)+len(res.Stopped) != 0 {
		t.Fatalf("after restart: %+v %v", res, err)
	}
	if !slices.Equal(m2.Owned(), []SyncDaemon{master(1)}) {
		t.Fatalf("owned after restart: %v", m2.Owned())
	}
	// The operator stops theirs: lbd's backup starts.
	delete(k.run, SyncBackup)
	if res, err = m2.Apply(want); err != nil || len(res.Started) != 1 {
		t.Fatalf("after the operator's stop: %+v %v", res, err)
	}
	// lbd's own daemon vanished (stopped by hand): started again.
	delete(k.run, SyncMaster)
	if res, err = m2.Apply(want); err != nil || len(res.Started) != 1 || k.run[SyncMaster].SyncID != 1 {
		t.Fatalf("after its daemon vanished: %+v %v, kernel %v", res, err, k.run)
	}
	// Sync switched off: lbd stops what it started, and only that.
	if res, err = m2.Apply(nil); err != nil || len(res.Stopped) != 2 || len(k.run) != 0 {
		t.Fatalf("switched off: %+v %v, kernel %v", res, err, k.run)
	}
	// A failed start is not recorded as ours.
	k.fail = errors.New("no such device")
	if _, err = m2.Apply(want); err == nil || len(m2.Owned()) != 0 {
		t.Fatalf("failed start: %v, owned %v", err, m2.Owned())
	}
	m3, _ := NewSyncManager(k, dir, nil)
	if len(m3.Owned()) != 0 {
		t.Fatalf("record after a failed start: %v", m3.Owned())
	}
}

func TestSyncDaemonValidate(t *testing.T) {
	for _, d := range []SyncDaemon{
		{State: 3, Interface: "eth0"},
		{State: SyncMaster},
		{State: SyncMaster, Interface: "a-name-far-too-long"},
		{State: SyncMaster, Interface: "eth0", Group: netip.MustParseAddr("10.0.0.1")},
	} {
		if d.Validate() == nil {
			t.Errorf("%+v: valid", d)
		}
	}
	ok := SyncDaemon{State: SyncBackup, Interface: "eth0", Group: netip.MustParseAddr("ff02::81"), Port: 9000, TTL: 2, MaxLen: 1400}
	if err := ok.Validate(); err != nil {
		t.Error(err)
	}
}
