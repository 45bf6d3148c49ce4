package daemon

import (
	"context"
	"net/netip"
	"sync"
	"testing"

	"github.com/lbd-project/lbd/internal/api"
	"github.com/lbd-project/lbd/pkg/cluster"
)

// subStore is a Memory store that takes writes in flight (Submit), as the
// raft node does; before runs once before a submitted write is applied
// (another writer's write getting in first).
type subStore struct {
	*cluster.Memory
	mu        sync.Mutex
	before    func()
	submitted int
}

func (s *subStore) Submit(ctx context.Context, ops ...cluster.Op) (func() (uint64, error), error) {
	s.mu.Lock()
	f := s.before
	s.before = nil
	s.submitted++
	s.mu.Unlock()
	if f != nil {
		f()
	}
	idx, err := s.Memory.Propose(ctx, ops...)
	return func() (uint64, error) { return idx, err }, nil
}

// The leader chains its batches (each conditional on the overlay the
// previous one proposed); a write that got in between makes the batches
// in flight conflict, and their changes go round again: none is lost,
// and the other writer's change is kept.
func TestPipelinedChangesSurviveAConflict(t *testing.T) {
	s := &subStore{Memory: cluster.NewMemory()}
	d, f := storeDirector(t, s)
	ctx := context.Background()
	if _, err := d.ChangeAllow(ctx, "a", api.AllowAdd, []netip.Prefix{netip.MustParsePrefix("198.51.100.200/32")}); err != nil {
		t.Fatal(err)
	}
	// Another writer (a file apply, a runtime change through another
	// leader) replaces the overlay before the next batch commits.
	s.mu.Lock()
	s.before = func() {
		e, _ := s.Memory.Get(cluster.KeyOverlay)
		ov, err := decodeOverlay(e, true)
		if err != nil {
			t.Error(err)
			return
		}
		ov.Weights = map[string]int{"someone": 1}
		op, _ := overlayOp(ov)
		if _, err := s.Memory.Propose(ctx, op); err != nil {
			t.Error(err)
		}
	}
	s.mu.Unlock()
	const n = 30
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			p := netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(i + 1)}), 32)
			_, errs[i] = d.ChangeAllow(ctx, "a", api.AllowAdd, []netip.Prefix{p})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("change %d: %v", i, err)
		}
	}
	if got := len(allowOf(f, "a")); got != n+3 {
		t.Errorf("fence has %d entries, want %d: %v", got, n+3, allowOf(f, "a"))
	}
	e, _ := s.Memory.Get(cluster.KeyOverlay)
	ov, _ := decodeOverlay(e, true)
	if ov.Weights["someone"] != 1 {
		t.Errorf("the other writer's change was lost: %+v", ov.Weights)
	}
	if s.submitted < 2 {
		t.Errorf("%d writes submitted: the changes did not go through the pipeline", s.submitted)
	}
}
