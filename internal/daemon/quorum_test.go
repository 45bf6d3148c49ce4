package daemon

import (
	"net/netip"
	"testing"

	"github.com/lbd-project/lbd/pkg/config"
)

func TestQuorumNext(t *testing.T) {
	tests := []struct {
		was               bool
		sum, quorum, hyst int
		want              bool
	}{
		{true, 1, 1, 0, true},
		{true, 0, 1, 0, false},
		{false, 1, 1, 0, true},
		{true, 2, 3, 1, true},   // within the band: stays up
		{true, 1, 3, 1, false},  // below quorum-h
		{false, 3, 3, 1, false}, // within the band: stays down
		{false, 4, 3, 1, true},  // at quorum+h
		{true, 0, 1, 1, false},  // nothing up is never a quorum
	}
	for _, tt := range tests {
		if got := quorumNext(tt.was, tt.sum, tt.quorum, tt.hyst); got != tt.want {
			t.Errorf("quorumNext(%v, sum %d, quorum %d, hysteresis %d) = %v", tt.was, tt.sum, tt.quorum, tt.hyst, got)
		}
	}
}

// TestQuorumActionsOncePerCrossing walks a service of four servers
// (weight 1 each, quorum 3, hysteresis 1) through servers going down and
// up: each script runs once per crossing, never while the sum stays on
// one side or wanders within the band.
func TestQuorumActionsOncePerCrossing(t *testing.T) {
	sorry := &config.ResolvedReal{Addr: netip.MustParseAddr("10.0.0.99"), Port: 80, Weight: 1, Forward: "nat"}
	svc := func(up int) config.ResolvedService {
		s := config.ResolvedService{Name: "tcp/10.0.0.1:80", Quorum: 3, Hysteresis: 1,
			QuorumUp: "up.sh", QuorumDown: "down.sh", Sorry: sorry, SorryInhibit: true}
		for i := 0; i < 4; i++ {
			w := 0
			if i < up {
				w = 1
			}
			s.Reals = append(s.Reals, config.ResolvedReal{Addr: netip.AddrFrom4([4]byte{10, 0, 1, byte(i)}), Port: 80, Weight: w})
		}
		return s
	}
	steps := []struct {
		up     int
		script string // "" none
		sorry  int    // the sorry server's weight; -1 absent
	}{
		{4, "", 0},
		{3, "", 0},
		{2, "", 0}, // 2 = quorum-h: still up
		{1, "down.sh", 1},
		{0, "", 1},
		{2, "", 1},
		{3, "", 1}, // 3 < quorum+h: still down
		{4, "up.sh", 0},
		{4, "", 0},
		{1, "down.sh", 1},
		{4, "up.sh", 0},
	}
	var q quorumTracker
	for i, st := range steps {
		out, acts := q.apply([]config.ResolvedService{svc(st.up)})
		switch {
		case st.script == "" && len(acts) != 0:
			t.Errorf("step %d (%d up): ran %v", i, st.up, acts)
		case st.script != "" && (len(acts) != 1 || acts[0].script != st.script):
			t.Errorf("step %d (%d up): ran %v, want %s", i, st.up, acts, st.script)
		}
		reals := out[0].Reals
		last := reals[len(reals)-1]
		if last.Addr != sorry.Addr || last.Weight != st.sorry || last.Forward != "nat" {
			t.Errorf("step %d (%d up): reals %v, want the sorry server at weight %d", i, st.up, reals, st.sorry)
		}
		if st.sorry == 1 {
			for _, r := range reals[:len(reals)-1] {
				if r.Weight != 0 {
					t.Errorf("step %d: real %s keeps weight %d while the sorry server serves", i, r.Addr, r.Weight)
				}
			}
		}
	}
}

func TestSorryServerWithoutInhibit(t *testing.T) {
	s := config.ResolvedService{Name: "x", Quorum: 1, Reals: []config.ResolvedReal{{Weight: 1}},
		Sorry: &config.ResolvedReal{Addr: netip.MustParseAddr("10.0.0.99"), Weight: 1}}
	var q quorumTracker
	out, acts := q.apply([]config.ResolvedService{s})
	if len(out[0].Reals) != 1 || len(acts) != 0 {
		t.Fatalf("up, no inhibit: %v %v", out[0].Reals, acts)
	}
	s.Reals[0].Weight = 0
	out, acts = q.apply([]config.ResolvedService{s})
	if len(out[0].Reals) != 2 || out[0].Reals[1].Weight != 1 || len(acts) != 1 || acts[0].up {
		t.Fatalf("down: %v %v", out[0].Reals, acts)
	}
	// A service that starts without its quorum runs quorum_down once.
	var q2 quorumTracker
	if _, acts = q2.apply([]config.ResolvedService{s}); len(acts) != 1 {
		t.Fatalf("first sight without quorum: %v", acts)
	}
}
