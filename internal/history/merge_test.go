package history

import (
	"testing"
	"time"
)

func TestMerge(t *testing.T) {
	at := func(s int64) time.Time { return time.Unix(s, 0) }
	// Two nodes sampling every 10 s at different phases, and a third with
	// only 1-minute points.
	var n1, n2, n3 []Point
	for s := int64(1000); s < 1120; s += 10 {
		n1 = append(n1, Point{T: s + 3, Items: 100, Bytes: 1000, Limit: 10000, Conns: 1, Hits: 30, Misses: 10, Commands: 50, Secs: 10})
		n2 = append(n2, Point{T: s + 7, Items: 50, Bytes: 500, Limit: 10000, Conns: 2, Hits: 10, Commands: 20, Secs: 10})
	}
	n3 = append(n3, Point{T: 1020, Items: 10, Commands: 600, Secs: 60}, Point{T: 1080, Items: 10, Commands: 600, Secs: 60})
	for _, tc := range []struct {
		name        string
		series      [][]Point
		step        time.Duration
		from, to    int64
		wantN       int
		items, cmds int64 // of every point
	}{
		{"one node is itself", [][]Point{n1}, Step, 1000, 1120, 12, 100, 50},
		{"phases do not dip", [][]Point{n1, n2}, Step, 1000, 1120, 12, 150, 70},
		{"a coarse node is held over its minute", [][]Point{n1, n2, n3[:1]}, Step, 1020, 1080, 6, 160, 170},
		{"minute steps", [][]Point{n1, n2}, CoarseStep, 1020, 1080, 1, 150, 420},
		{"no node: nothing", nil, Step, 1000, 1120, 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Merge(tc.series, at(tc.from), at(tc.to), tc.step)
			if len(got) != tc.wantN {
				t.Fatalf("%d points, want %d: %+v", len(got), tc.wantN, got)
			}
			for _, p := range got {
				if p.Items != tc.items || int64(p.Commands) != tc.cmds || p.Secs != int64(tc.step/time.Second) {
					t.Errorf("point %+v: want items %d, commands %d", p, tc.items, tc.cmds)
				}
			}
		})
	}
	// A node that stops answering leaves a gap after its last value goes
	// stale, not a zero.
	got := Merge([][]Point{n1[:3]}, at(1000), at(1120), Step)
	if len(got) != 4 {
		t.Errorf("held %d points past the last one, want 4 (3 + one step)", len(got))
	}
}

// Merge takes any points (a node's answer is decoded from the network)
// without panicking, and sums never exceed the nodes' values.
func FuzzMerge(f *testing.F) {
	f.Add(int64(1000), int64(10), int64(5), uint64(7), int64(1000), int64(1200), uint8(10))
	f.Add(int64(-5), int64(-1), int64(0), uint64(0), int64(0), int64(0), uint8(0))
	f.Fuzz(func(t *testing.T, pt, secs, items int64, cmds uint64, from, to int64, step uint8) {
		pts := []Point{{T: pt, Secs: secs, Items: items, Commands: cmds}, {T: pt + 10, Secs: secs, Items: items}}
		out := Merge([][]Point{pts, pts}, time.Unix(from%1e9, 0), time.Unix(to%1e9, 0), time.Duration(step)*time.Second)
		if len(out) > maxMerged+1 {
			t.Fatalf("%d points", len(out))
		}
	})
}
