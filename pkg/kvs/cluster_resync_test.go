package kvs

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lbd-project/lbd/pkg/slots"
)

// TestClusterTakeoverResync: as in TestClusterMoveIncrOnce, two slots of
// st1 have two in-sync backups (st2, st3) and move to st3 while st1, st3
// and the client's node st4 miss the move: an incr of a key of one and a
// delete of a key of the other, through st4, are applied by st3 and
// refused by st2, undone at st1, and answer SERVER_ERROR. Once st3 serves
// the slots, st2 (its in-sync backup) holds exactly what st3 holds: the
// incremented counter, and not the deleted key.
func TestClusterTakeoverResync(t *testing.T) {
	tc := startCluster(t, 4, 1, slots.Sync)
	m := tc.slotMap()
	var ks []string
	for i := 0; len(ks) < 2; i++ {
		k := fmt.Sprintf("agree:%d", i)
		if s := m.Slots[slots.Of([]byte(k))]; s.Primary == "st1" && (len(ks) == 0 || slots.Of([]byte(ks[0])) != slots.Of([]byte(k))) {
			ks = append(ks, k)
		}
	}
	incr, del := ks[0], ks[1]
	if _, err := updateMap(context.Background(), tc.store, "t", func(cur *slots.Map) (*slots.Map, error) {
		c := cur.Clone()
		e := cur.MaxEpoch() + 1
		for _, k := range ks {
			c.Slots[slots.Of([]byte(k))] = slots.Slot{Primary: "st1", Backups: []string{"st2", "st3"}, InSync: []string{"st2", "st3"}, Epoch: e}
		}
		return c, nil
	}); err != nil {
		t.Fatal(err)
	}
	tc.waitSeen(t)
	for _, k := range ks {
		if !setVia(t, tc.addrs[3], k, "10") {
			t.Fatal("set failed")
		}
	}
	for _, i := range []int{0, 2, 3} {
		tc.stores[i].cut(true)
	}
	if _, err := updateMap(context.Background(), tc.store, "t", func(cur *slots.Map) (*slots.Map, error) {
		c := cur.Clone()
		e := cur.MaxEpoch() + 1
		for _, k := range ks {
			c.Slots[slots.Of([]byte(k))] = slots.Slot{Primary: "st3", Backups: []string{"st2"}, InSync: []string{"st2"}, Epoch: e}
		}
		return c, nil
	}); err != nil {
		t.Fatal(err)
	}
	tc.waitSeen(t)
	c := dialText(t, tc.addrs[3])
	defer c.close()
	for _, req := range []string{"incr " + incr + " 1\r\n", "delete " + del + "\r\n"} {
		got, err := c.do(req)
		if err != nil || !strings.HasPrefix(got, "SERVER_ERROR ") || ranNowhere([]byte(got)) {
			t.Fatalf("%q through st4 during the move: %q %v, want a SERVER_ERROR that is not \"unavailable\"", strings.TrimSpace(req), got, err)
		}
	}
	for _, i := range []int{0, 2, 3} {
		tc.thaw(i)
	}
	tc.waitSeen(t)
	// Through the new primary (it serves once its backup is resynced).
	if v, found, ok := getEventually(t, tc.addrs[2], incr); !ok || !found || v != "11" {
		r := tc.router(2)
		sl := slots.Of([]byte(incr))
		s := r.m.Load().Slots[sl]
		t.Fatalf("%s at st3: %q found %v ok %v, want 11 (st3: lease %v, slot %d %+v, waits for its resync %v, fenced %v)",
			incr, v, found, ok, r.serving(), sl, s, r.repl.resyncWaits(sl, s.Epoch), r.repl.isFenced(sl, s.Epoch))
	}
	if _, found, ok := getEventually(t, tc.addrs[2], del); !ok || found {
		t.Fatalf("%s at st3: found %v ok %v, want deleted", del, found, ok)
	}
	now := time.Now().Unix()
	for _, k := range ks {
		p, pok := tc.innerStore(2).Get([]byte(k), now)
		b, bok := tc.innerStore(1).Get([]byte(k), now)
		if pok != bok || string(p.Value) != string(b.Value) || p.CAS != b.CAS {
			t.Fatalf("%s: the new primary st3 has %q cas %d (%v), its in-sync backup st2 %q cas %d (%v)", k, p.Value, p.CAS, pok, b.Value, b.CAS, bok)
		}
	}
}

// TestResyncRecordRoundTrip: a resync's records decode as encoded; a
// B or Z without slots, or with a key, is refused.
func TestResyncRecordRoundTrip(t *testing.T) {
	for _, tt := range []struct {
		o   byte
		key string
		it  Item
	}{
		{'B', "", Item{Value: slotList([]int{3, 1023, 7})}},
		{'Z', "", Item{Value: slotList([]int{0})}},
		{'F', "k", Item{Flags: 5, Exptime: 9, CAS: 77, Meta: 1, Value: []byte("v\r\nw")}},
	} {
		b := encodeRecordOp(4, 3, tt.o, []byte(tt.key), tt.it)
		rec, err := readRecord(bufio.NewReader(bytes.NewReader(b)))
		if err != nil || rec.op != tt.o || string(rec.key) != tt.key || string(rec.item.Value) != string(tt.it.Value) || rec.item.CAS != tt.it.CAS && tt.o == 'F' {
			t.Fatalf("%c: %+v %v", tt.o, rec, err)
		}
		if tt.o != 'F' {
			if _, err := parseSlotList(rec.item.Value); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, bad := range []string{
		"R 4 3 B 0 0 0 0 1 1\r\nk1\r\n",
		"R 4 3 F 0 0 0 0 0 1\r\n1\r\n",
		"R 4 3 Q 0 0 0 0 1 1\r\nk1\r\n",
	} {
		if _, err := readRecord(bufio.NewReader(strings.NewReader(bad))); err == nil {
			t.Fatalf("%q accepted", bad)
		}
	}
	for _, bad := range []string{"", " ", "1024", "-1", "x"} {
		if _, err := parseSlotList([]byte(bad)); err == nil {
			t.Fatalf("slot list %q accepted", bad)
		}
	}
}
