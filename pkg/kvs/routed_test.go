package kvs

import (
	"errors"
	"fmt"
	"testing"
)

// TestRoutedAcrossNodes: keys written through one node's Routed land on
// their slots' primaries, replicated, and read back the same through every
// node's Routed and its memcached port.
func TestRoutedAcrossNodes(t *testing.T) {
	tc := startCluster(t, 3, 1, "sync")
	rs := make([]*Routed, 3)
	for i, tier := range tc.tiers {
		r, ok := tier.Routed("t")
		if !ok {
			t.Fatalf("node %d: no routed access", i)
		}
		rs[i] = r
	}
	if _, ok := tc.tiers[0].Local("t"); !ok {
		t.Fatal("no local access")
	}
	for i := range 60 {
		key := []byte(fmt.Sprintf("rk:%d", i))
		val := []byte(fmt.Sprintf("v\x00\xff%d", i))
		w := rs[i%3]
		it, err := w.Set(key, val, uint32(i), 0)
		if err != nil {
			t.Fatalf("set %s: %v", key, err)
		}
		if it.CAS == 0 || string(it.Value) != string(val) {
			t.Fatalf("set %s: %+v", key, it)
		}
		for j, r := range rs {
			got, ok := r.Get(key)
			if !ok || string(got.Value) != string(val) || got.Flags != uint32(i) || got.CAS != it.CAS {
				t.Fatalf("node %d get %s: %+v %v, want %q cas %d", j, key, got, ok, val, it.CAS)
			}
			c := dialText(t, tc.addrs[j])
			reply, err := c.do("get " + string(key) + "\r\n")
			c.close()
			want := fmt.Sprintf("VALUE %s %d %d\r\n%s\r\nEND\r\n", key, i, len(val), val)
			if err != nil || reply != want {
				t.Fatalf("node %d memcached get %s: %q %v, want %q", j, key, reply, err, want)
			}
		}
	}
	r := rs[1]
	if _, err := r.Set([]byte("n"), []byte("41"), 0, 0); err != nil {
		t.Fatal(err)
	}
	if v, err := rs[2].Delta([]byte("n"), true, 1); err != nil || v != 42 {
		t.Fatalf("incr: %d %v", v, err)
	}
	if v, err := rs[0].Delta([]byte("n"), false, 50); err != nil || v != 0 {
		t.Fatalf("decr: %d %v", v, err)
	}
	if _, err := rs[0].Delta([]byte("rk:1"), true, 1); !errors.Is(err, ErrNonNumeric) {
		t.Fatalf("incr non-numeric: %v", err)
	}
	if _, err := rs[0].Delta([]byte("absent"), true, 1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("incr absent: %v", err)
	}
	if ok, err := rs[2].Delete([]byte("n")); !ok || err != nil {
		t.Fatalf("delete: %v %v", ok, err)
	}
	if ok, err := rs[1].Delete([]byte("n")); ok || err != nil {
		t.Fatalf("delete again: %v %v", ok, err)
	}
	if _, ok := rs[0].Get([]byte("n")); ok {
		t.Fatal("deleted key still there")
	}
	big := make([]byte, 2<<20)
	if _, err := rs[1].Set([]byte("big"), big, 0, 0); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("set too large: %v", err)
	}
	if _, err := rs[1].Set([]byte("bad key"), nil, 0, 0); !errors.Is(err, ErrBadKey) {
		t.Fatalf("bad key: %v", err)
	}
}
