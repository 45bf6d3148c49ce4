package kvs

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lbd-project/lbd/pkg/cluster"
	"github.com/lbd-project/lbd/pkg/slots"
)

// TestClusterMoveRetried: a node whose map is behind forwards a write to a
// slot's old primary, which answers that it does not serve the slot any
// more: the forwarding node sends it again to the new primary once its own
// map names it, and the client sees STORED (the value is there); with its
// map still behind after moveWait, the client gets the SERVER_ERROR, in
// bounded time.
func TestClusterMoveRetried(t *testing.T) {
	tc := startCluster(t, 3, 1, slots.Sync)
	tc.waitReady()
	m := tc.slotMap()
	// Keys whose primary is st1 and backup st2 (in sync); the client
	// talks to st3.
	var keys []string
	for i := 0; len(keys) < 2; i++ {
		k := fmt.Sprintf("mv%d", i)
		s := m.Slots[slots.Of([]byte(k))]
		if s.Primary == "st1" && slices.Equal(s.Backups, []string{"st2"}) && slices.Equal(s.InSync, []string{"st2"}) {
			keys = append(keys, k)
		}
	}
	move := func(key string) {
		t.Helper()
		sl := slots.Of([]byte(key))
		_, err := updateMap(context.Background(), tc.store, "t", func(cur *slots.Map) (*slots.Map, error) {
			c := cur.Clone()
			c.Slots[sl] = slots.Slot{Primary: "st2", Backups: []string{"st1"}, InSync: []string{"st1"}, Epoch: cur.MaxEpoch() + 1}
			return c, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		tc.waitSeen(t) // st1 and st2 (the old primary must know it is no more)
	}
	set := func(key string) (string, time.Duration) {
		c, err := net.DialTimeout("tcp", tc.addrs[2], time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		start := time.Now()
		c.SetDeadline(start.Add(10 * time.Second))
		fmt.Fprintf(c, "set %s 0 0 2\r\nhi\r\n", key)
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			t.Fatalf("set %s: %v", key, err)
		}
		return line, time.Since(start)
	}

	// st3's view freezes, st1 and st2 see the move.
	tc.stores[2].cut(true)
	move(keys[0])
	go func() {
		time.Sleep(300 * time.Millisecond)
		tc.stores[2].cut(false)
		// Any write wakes st3's watch, which reads the map again.
		tc.store.Propose(context.Background(), cluster.Op{Key: "wake", Value: []byte("1")})
	}()
	if got, took := set(keys[0]); got != "STORED\r\n" {
		t.Fatalf("set %s through st3 during the move: %q after %v", keys[0], got, took)
	}
	if got, found, ok := getVia(t, tc.addrs[1], keys[0]); !ok || !found || got != "hi" {
		t.Fatalf("get %s at the new primary: %q found %v ok %v", keys[0], got, found, ok)
	}

	// st3's view stays behind: the error, after at most moveWait.
	tc.stores[2].cut(true)
	defer tc.stores[2].cut(false)
	move(keys[1])
	got, took := set(keys[1])
	// (unavailable at st1, or refused by st2 if st1 ran it before it saw
	// the move: both ran nowhere)
	if !ranNowhere([]byte(got)) || took > moveWait+3*time.Second {
		t.Fatalf("set %s through st3, its map behind: %q after %v", keys[1], got, took)
	}
	t.Logf("with the map behind: %q after %v", strings.TrimSpace(got), took)
}
