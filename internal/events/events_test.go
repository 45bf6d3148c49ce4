package events

import "testing"

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
