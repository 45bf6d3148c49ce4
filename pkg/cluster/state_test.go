package cluster

import (
	"context"
	"crypto/sha256"
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

// IfHash: a write conditional on the value's SHA-256 applies on that value
// only, and a refused one writes nothing.
func TestStateIfHash(t *testing.T) {
	s := NewState()
	if err := s.Apply(1, []Op{{Key: "k", Value: []byte("one")}}); err != nil {
		t.Fatal(err)
	}
	one, two := sha256.Sum256([]byte("one")), sha256.Sum256([]byte("two"))
	if err := s.Apply(2, []Op{{Key: "k", Value: []byte("two"), IfHash: one[:]}}); err != nil {
		t.Fatalf("write on the expected value: %v", err)
	}
	if err := s.Apply(3, []Op{{Key: "k", Value: []byte("three"), IfHash: one[:]}, {Key: "x", Value: []byte("x")}}); !errors.Is(err, ErrConflict) {
		t.Fatalf("write on a stale value: %v, want a conflict", err)
	}
	if e, _ := s.Get("k"); string(e.Value) != "two" {
		t.Errorf("k = %q after the refused write", e.Value)
	}
	if _, ok := s.Get("x"); ok {
		t.Error("the refused transaction wrote x")
	}
	if err := s.Apply(4, []Op{{Key: "absent", Value: []byte("v"), IfHash: two[:]}}); !errors.Is(err, ErrConflict) {
		t.Errorf("IfHash on an absent key: %v, want a conflict", err)
	}
	if err := ValidateOps([]Op{{Key: "k", IfHash: []byte("short")}}); err == nil {
		t.Error("an if_hash that is not 32 bytes was accepted")
	}
}
