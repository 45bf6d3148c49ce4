package cluster

import (
	"context"
	"errors"
	"testing"
)

func TestStateApply(t *testing.T) {
	s := NewState()
	if err := s.Apply(1, []Op{{Key: "a", Value: []byte("1"), IfVersion: Version(0)}}); err != nil {
		t.Fatal(err)
	}
	e, ok := s.Get("a")
	if !ok || string(e.Value) != "1" || e.Version != 1 {
		t.Fatalf("a = %+v, %v", e, ok)
	}
	// A stale IfVersion refuses the whole transaction.
	err := s.Apply(2, []Op{{Key: "b", Value: []byte("x")}, {Key: "a", Value: []byte("2"), IfVersion: Version(0)}})
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("stale write: %v, want ErrConflict", err)
	}
	if _, ok := s.Get("b"); ok {
		t.Fatal("a refused transaction wrote b")
	}
	if s.Index() != 2 {
		t.Fatalf("index %d after a refused write, want 2", s.Index())
	}
	if err := s.Apply(3, []Op{{Key: "a", Value: []byte("3"), IfVersion: Version(1)}, {Key: "b", Value: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(4, []Op{{Key: "b", Delete: true}}); err != nil {
		t.Fatal(err)
	}
	if got := s.List(""); len(got) != 1 || got[0].Key != "a" || got[0].Version != 3 {
		t.Fatalf("list = %+v", got)
	}
	if err := s.Apply(4, []Op{{Key: "c"}}); err == nil {
		t.Fatal("an old index was applied")
	}
}

func TestMemoryWatch(t *testing.T) {
	m := NewMemory()
	ctx, cancel := context.WithCancel(context.Background())
	ch := m.Watch(ctx)
	for range 3 {
		if _, err := m.Propose(ctx, Op{Key: "k", Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
	}
	if got := <-ch; got != 3 {
		t.Fatalf("watch saw %d, want the latest index 3", got)
	}
	cancel()
	for range ch {
	}
}
