//go:build linux

package ipvs

import (
	"net/netip"
	"testing"
)

func TestSyncDaemonCodec(t *testing.T) {
	for _, d := range []SyncDaemon{
		{State: SyncMaster, Interface: "eth0", SyncID: 51},
		{State: SyncBackup, Interface: "bond0.12", SyncID: 255, MaxLen: 1400,
			Group: netip.MustParseAddr("239.1.2.3"), Port: 9000, TTL: 3},
		{State: SyncBackup, Interface: "eth1", Group: netip.MustParseAddr("ff02::81")},
	} {
		a := encodeSyncDaemon(d)
		got, err := decodeSyncDaemon(a.Serialize()[4:]) // the nested attributes
		if err != nil || got != d {
			t.Errorf("round trip of %+v: %+v %v", d, got, err)
		}
	}
}

func FuzzDecodeSyncDaemon(f *testing.F) {
	f.Add(encodeSyncDaemon(SyncDaemon{State: SyncMaster, Interface: "eth0", SyncID: 1, Port: 8848}).Serialize()[4:])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := decodeSyncDaemon(b)
		if err == nil && d.State != SyncMaster && d.State != SyncBackup {
			t.Fatalf("accepted state %d", d.State)
		}
	})
}
