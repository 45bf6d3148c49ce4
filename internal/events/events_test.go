package events

import (
	"fmt"
	"testing"
	"time"
)

func TestPublishSubscribe(t *testing.T) {
	b := NewBus(2)
	s := b.Subscribe(1)
	b.Publish(Health, "down", "id", "a")
	b.Publish(Health, "up", "id", "a") // buffer full: dropped
	ev := <-s.C()
	if ev.Message != "down" || ev.Attrs["id"] != "a" || ev.Dropped != 0 {
		t.Fatalf("got %+v", ev)
	}
	b.Publish(VRRP, "master")
	ev = <-s.C()
	if ev.Message != "master" || ev.Dropped != 1 {
		t.Fatalf("got %+v, want the drop counted", ev)
	}
	b.Publish(Config, "reloaded")
	if r := b.Recent(); len(r) != 2 || r[0].Message != "master" || r[1].Message != "reloaded" {
		t.Fatalf("recent = %+v", r)
	}
	s.Close()
	s.Close()
	if ev := <-s.C(); ev.Message != "reloaded" {
		t.Fatalf("pending event lost: %+v", ev)
	}
	if _, ok := <-s.C(); ok {
		t.Fatal("channel not closed")
	}
	b.Publish(Config, "after close") // must not panic or block
}

// TestRecentRing publishes up to three times the capacity and checks,
// after every publish, that Recent holds exactly the last keep events,
// oldest first, with their contents and times.
func TestRecentRing(t *testing.T) {
	const keep = 5
	b := NewBus(keep)
	base := time.Unix(1000, 0)
	n := 0
	b.nowFunc = func() time.Time { return base.Add(time.Duration(n) * time.Second) }
	if r := b.Recent(); r != nil {
		t.Fatalf("recent of a fresh bus = %+v, want nil", r)
	}
	kinds := []Kind{Health, VRRP, Reconcile, Config}
	for n = 0; n < 3*keep+2; n++ {
		b.Publish(kinds[n%len(kinds)], fmt.Sprint("e", n), "n", fmt.Sprint(n))
		r := b.Recent()
		first := max(0, n+1-keep)
		if len(r) != n+1-first {
			t.Fatalf("after %d events: %d recent, want %d", n+1, len(r), n+1-first)
		}
		for j, ev := range r {
			k := first + j
			if ev.Message != fmt.Sprint("e", k) || ev.Kind != kinds[k%len(kinds)] ||
				ev.Attrs["n"] != fmt.Sprint(k) || len(ev.Attrs) != 1 ||
				!ev.Time.Equal(base.Add(time.Duration(k)*time.Second)) || ev.Dropped != 0 {
				t.Fatalf("after %d events: recent[%d] = %+v, want event e%d", n+1, j, ev, k)
			}
		}
	}
	if cap(b.recent) != keep {
		t.Fatalf("ring holds room for %d events, want a fixed %d", cap(b.recent), keep)
	}
	// The result is a copy: changing it changes nothing in the bus.
	r := b.Recent()
	r[0].Message = "changed"
	if got := b.Recent()[0].Message; got == "changed" {
		t.Fatal("Recent returned the bus's own storage")
	}
}

func TestRecentNone(t *testing.T) {
	for _, keep := range []int{0, -1} {
		b := NewBus(keep)
		s := b.Subscribe(1)
		b.Publish(Health, "down")
		if r := b.Recent(); r != nil {
			t.Fatalf("NewBus(%d): recent = %+v, want nil", keep, r)
		}
		if ev := <-s.C(); ev.Message != "down" {
			t.Fatalf("NewBus(%d): subscriber got %+v", keep, ev)
		}
		s.Close()
	}
}
