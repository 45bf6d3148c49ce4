package kvs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbd-project/lbd/pkg/slots"
)

// TestClusterR2IncrMoves: four nodes, replicas 2 sync. Clients through
// random nodes incr a few counters, set and read back keys of their own
// (read-your-writes) and append to a key of their own, while the slot map
// hands the counters' slots from their primary to an in-sync backup again
// and again (slots.Advance, as a drain or an add does, some nodes learning
// the map late, as slow followers of the raft log), then drains st4 and
// adds it back, then st2 (the leader's monitor moving the slots). No
// client may see an error (SERVER_ERROR, a timeout), every counter must
// equal its acknowledged incrs exactly, each incr's answer must be unique
// (never applied twice, never lost), every read must see the client's
// last write, and afterwards every in-sync copy of every key written must
// equal the primary's. On a memory and on a durable tenant.
//
// Only an error of availability (a node that could not serve for
// moveWait, a request timed out) right after the machine starved the
// nodes (see starvation) is excused, and logged. An incr answer that
// came twice is logged with the incrs around it and its slot's
// placements then (see slotHistory).
func TestClusterR2IncrMoves(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		testR2IncrMoves(t, startClusterOpts(t, 4, 2, slots.Sync, false, nil))
	})
	t.Run("durable", func(t *testing.T) {
		testR2IncrMoves(t, startClusterOpts(t, 4, 2, slots.Sync, false, nil, func(c *TenantConfig) {
			c.Store, c.Dir, c.Sync, c.SyncInterval = StoreDurable, t.TempDir(), SyncGroup, 10*time.Millisecond
		}))
	})
}

// testR2IncrMoves's bounds: r2HandOvers is how long the hand-over rounds
// go on; r2MoveDeadline bounds the wait for a drain's or an add's moves (a
// wait, not a timed assertion: it ends when the moves are done, and fails
// only at the deadline); r2Counters counters, r2Clients clients.
const (
	r2HandOvers    = 5 * time.Second
	r2MoveDeadline = 60 * time.Second
	r2Counters     = 4
	r2Clients      = 6
)

func testR2IncrMoves(t *testing.T, tc *testCluster) {
	start := time.Now()
	// Counters in distinct slots.
	var counters []string
	seen := map[int]bool{}
	for i := 0; len(counters) < r2Counters; i++ {
		k := "ctr:" + strconv.Itoa(i)
		if sl := slots.Of([]byte(k)); !seen[sl] {
			seen[sl] = true
			counters = append(counters, k)
		}
	}
	for _, k := range counters {
		if !setVia(t, tc.addrs[0], k, "0") {
			t.Fatalf("set %s with every node up failed", k)
		}
	}
	w := &r2Load{tc: tc, counters: counters, acked: make([]int, len(counters)), amb: make([]int, len(counters)),
		answers: make([]map[uint64]int, len(counters)), incrs: make([]map[uint64][]string, len(counters))}
	for i := range w.answers {
		w.answers[i] = map[uint64]int{}
		w.incrs[i] = map[uint64][]string{}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	starved := &starvation{}
	hist := &slotHistory{}
	wg.Add(2)
	go func() {
		defer wg.Done()
		starved.watch(tc, stop)
	}()
	go func() {
		defer wg.Done()
		hist.watch(tc, counters, stop)
	}()
	clients := make([]*r2Client, r2Clients)
	for i := range clients {
		clients[i] = &r2Client{w: w, id: i, rng: rand.New(rand.NewPCG(uint64(i), uint64(time.Now().UnixNano()))),
			conns: make([]*textConn, len(tc.addrs)), last: map[string]string{}, appendKey: fmt.Sprintf("app:%d", i)}
		wg.Add(1)
		go func(c *r2Client) {
			defer wg.Done()
			c.run(stop)
		}(clients[i])
	}
	// At the end, also after a t.Fatal: the clients stop, and their
	// errors are reported.
	stopClients := sync.OnceFunc(func() {
		close(stop)
		wg.Wait()
	})
	defer func() {
		stopClients()
		w.mu.Lock()
		defer w.mu.Unlock()
		t.Logf("load: %s; %s", w.summaryLocked(), starved.String())
		var excused, wrong []string
		for _, e := range w.failed {
			if e.availability && starved.near(e.when) {
				excused = append(excused, e.text)
			} else {
				wrong = append(wrong, e.text)
			}
		}
		for j, e := range wrong[:min(len(wrong), 20)] {
			t.Errorf("client error: %s", e)
			// A counter's: its slot's placements around then.
			if f := strings.Fields(e); j < 3 && len(f) > 2 && slices.Contains(counters, f[1]) {
				at, _ := time.Parse("15:04:05.000", f[5][:len(f[5])-1])
				t.Logf("%s (slot %d) placements around then:\n%s", f[1], slots.Of([]byte(f[1])),
					hist.between(slots.Of([]byte(f[1])), at.Add(-3*time.Second), at.Add(time.Second)))
			}
		}
		if len(wrong) > 0 {
			t.Errorf("%d client errors (and %d excused: the machine starved the nodes then)", len(wrong), len(excused))
		}
		for _, e := range excused[:min(len(excused), 5)] {
			t.Logf("excused (the machine starved the nodes within %v before): %s", starveWindow, e)
		}
		if len(excused) > 0 {
			t.Logf("%d errors of availability excused", len(excused))
		}
	}()

	// Phase 1: hand-overs of the counters' slots, some nodes lagging.
	rng := rand.New(rand.NewPCG(99, uint64(time.Now().UnixNano())))
	rounds, lagged := 0, 0
	for deadline := time.Now().Add(r2HandOvers); time.Now().Before(deadline); rounds++ {
		var behind []int
		for i := range tc.names {
			if rng.IntN(3) == 0 {
				behind = append(behind, i)
				tc.lag(i)
			}
		}
		if len(behind) > 0 {
			lagged++
		}
		if err := tc.handOver(rng, counters); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rng.IntN(150)) * time.Millisecond)
		for _, i := range behind {
			tc.unlag(i)
		}
		time.Sleep(time.Duration(50+rng.IntN(100)) * time.Millisecond)
		// The break (Next done), as the leader's next Advance would.
		if _, err := updateMap(context.Background(), tc.store, "t", func(cur *slots.Map) (*slots.Map, error) {
			next, changed := slots.Advance(cur)
			if !changed {
				return nil, nil
			}
			return next, nil
		}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(50+rng.IntN(100)) * time.Millisecond)
	}
	t.Logf("%d hand-over rounds (%d with nodes lagging) in %v: %s", rounds, lagged, time.Since(start).Round(time.Millisecond), w.summary())

	// Phase 2: drain st4, add it back, then the same with st2 (the
	// leader's monitor carries the moves: rebuilds, hand-overs, the
	// break), a node at a time lagging for a moment meanwhile.
	lagStop, lagDone := make(chan struct{}), make(chan int)
	lags := 0
	stopLags := sync.OnceFunc(func() {
		close(lagStop)
		lags = <-lagDone
	})
	defer stopLags()
	go func() {
		rng := rand.New(rand.NewPCG(98, uint64(time.Now().UnixNano())))
		n := 0
		for {
			select {
			case <-lagStop:
				lagDone <- n
				return
			case <-time.After(time.Duration(50+rng.IntN(200)) * time.Millisecond):
			}
			i := rng.IntN(len(tc.names))
			tc.lag(i)
			time.Sleep(time.Duration(20+rng.IntN(130)) * time.Millisecond)
			tc.unlag(i)
			n++
		}
	}()
	for _, d := range []int{3, 1} {
		node := tc.names[d]
		phase := time.Now()
		if err := SetStorageNodes(context.Background(), tc.store, slices.Delete(slices.Clone(tc.names), d, d+1)); err != nil {
			t.Fatal(err)
		}
		tc.waitMoved(t, "drain of "+node, func(m *slots.Map) bool {
			return !slices.ContainsFunc(m.Slots, func(s slots.Slot) bool { return s.Primary == node || slices.Contains(s.Backups, node) })
		})
		t.Logf("%s drained in %v: %s", node, time.Since(phase).Round(time.Millisecond), w.summary())
		phase = time.Now()
		if err := SetStorageNodes(context.Background(), tc.store, tc.names); err != nil {
			t.Fatal(err)
		}
		tc.waitMoved(t, "add of "+node, func(m *slots.Map) bool {
			n := 0
			for _, s := range m.Slots {
				if s.Primary == node {
					n++
				}
			}
			return n >= slots.Count/len(tc.names)-1
		})
		t.Logf("%s added back in %v: %s", node, time.Since(phase).Round(time.Millisecond), w.summary())
	}
	stopLags()
	t.Logf("%d lags of a node during the drains and adds", lags)
	// A little more load under the settled map, then stop.
	time.Sleep(200 * time.Millisecond)
	stopClients()

	w.mu.Lock()
	defer w.mu.Unlock()
	// Every counter: its acknowledged incrs exactly, each answer once.
	for i, k := range counters {
		v, found, ok := getEventually(t, tc.addrs[i%len(tc.addrs)], k)
		n, err := strconv.Atoi(v)
		if !ok || !found || err != nil {
			t.Errorf("%s: %q found %v ok %v", k, v, found, ok)
			continue
		}
		switch {
		case w.amb[i] == 0 && n != w.acked[i]:
			t.Errorf("%s = %d, %d incrs acknowledged (%+d)", k, n, w.acked[i], n-w.acked[i])
		case n < w.acked[i] || n > w.acked[i]+w.amb[i]:
			t.Errorf("%s = %d, %d incrs acknowledged and %d failed", k, n, w.acked[i], w.amb[i])
		case w.amb[i] > 0:
			t.Logf("%s = %d: %d acknowledged, so %d of the %d failed incrs were applied", k, n, w.acked[i], n-w.acked[i], w.amb[i])
		}
		for a, c := range w.answers[i] {
			if c > 1 {
				t.Errorf("%s: %d incrs answered %d: %s; the incrs answered %d: %v, %d: %v", k, c, a, strings.Join(w.incrs[i][a], "; "),
					a-1, w.incrs[i][a-1], a+1, w.incrs[i][a+1])
				t.Logf("%s (slot %d) placements around then:\n%s", k, slots.Of([]byte(k)), hist.around(slots.Of([]byte(k)), w.incrs[i][a]))
			}
			if a > uint64(n) {
				t.Errorf("%s: an incr answered %d, the counter is %d", k, a, n)
			}
		}
	}
	// Appends: each client's key holds its acknowledged appends in order.
	for _, c := range clients {
		if c.appendAmb {
			continue
		}
		v, found, ok := getEventually(t, tc.addrs[c.id%len(tc.addrs)], c.appendKey)
		if !ok || !found || v != c.appended.String() {
			t.Errorf("%s = %q (found %v ok %v), want %q", c.appendKey, v, found, ok, c.appended.String())
		}
	}
	// Every in-sync copy equals the primary's.
	var keys []string
	keys = append(keys, counters...)
	for _, c := range clients {
		keys = append(keys, c.appendKey)
		for k := range c.last {
			keys = append(keys, k)
		}
	}
	tc.checkCopies(t, keys)
	t.Logf("took %v", time.Since(start).Round(time.Millisecond))
}

// lag freezes node i's view of the cluster state and holds its writes
// until unlag: a raft follower behind the log, whose reads are old and
// whose proposals return once it has caught up.
func (tc *testCluster) lag(i int) {
	s := tc.stores[i]
	s.mu.Lock()
	s.lagging, s.gate = true, make(chan struct{})
	s.mu.Unlock()
	s.cut(true)
}

// unlag ends lag(i): the node's view catches up, its writes go on.
func (tc *testCluster) unlag(i int) {
	s := tc.stores[i]
	s.cut(false)
	s.mu.Lock()
	gate := s.gate
	s.lagging, s.gate = false, nil
	s.mu.Unlock()
	close(gate)
	tc.thaw(i) // wakes its watch
}

// handOver moves each of keys' slots (settled, every backup in sync) to one
// of its in-sync backups as Advance does a move's hand-over: the new
// primary at a new epoch, the old one its in-sync backup in its place.
func (tc *testCluster) handOver(rng *rand.Rand, keys []string) error {
	_, err := updateMap(context.Background(), tc.store, "t", func(cur *slots.Map) (*slots.Map, error) {
		c := cur.Clone()
		moved := false
		for _, k := range keys {
			s := &c.Slots[slots.Of([]byte(k))]
			if len(s.Next) > 0 || len(s.InSync) != len(s.Backups) || len(s.InSync) == 0 {
				continue // a move under way (the leader's)
			}
			to := s.InSync[rng.IntN(len(s.InSync))]
			s.Next = append([]string{to}, slices.DeleteFunc(append([]string{s.Primary}, s.Backups...), func(n string) bool { return n == to })...)
			moved = true
		}
		if !moved {
			return nil, nil
		}
		next, _ := slots.Advance(c)
		return next, nil
	})
	return err
}

// waitMoved waits until the map satisfies done with no move under way and
// every backup in sync.
func (tc *testCluster) waitMoved(t *testing.T, what string, done func(*slots.Map) bool) {
	t.Helper()
	deadline := time.Now().Add(r2MoveDeadline)
	for {
		m := tc.slotMap()
		synced := !slices.ContainsFunc(m.Slots, func(s slots.Slot) bool { return len(s.InSync) != len(s.Backups) })
		if done(m) && synced && m.Moving() == 0 {
			return
		}
		if time.Now().After(deadline) {
			var some []string
			for i, s := range m.Slots {
				if len(s.Next) > 0 || len(s.InSync) != len(s.Backups) {
					some = append(some, fmt.Sprintf("slot %d %+v", i, s))
				}
			}
			t.Fatalf("%s not done after %v: done %v, every backup in sync %v, %d slots moving, e.g.\n%s",
				what, r2MoveDeadline, done(m), synced, m.Moving(), strings.Join(some[:min(len(some), 5)], "\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkCopies waits (generously) until, for each key, every in-sync
// backup's item equals its primary's under the current map, and fails with
// the differences if they do not come to.
func (tc *testCluster) checkCopies(t *testing.T, keys []string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		tc.waitSeen(t)
		m := tc.slotMap()
		now := time.Now().Unix()
		var diffs []string
		for _, k := range keys {
			s := m.Slots[slots.Of([]byte(k))]
			p := tc.nodeIndex(s.Primary)
			want, wok := tc.innerStore(p).Get([]byte(k), now)
			for _, b := range s.InSync {
				got, gok := tc.innerStore(tc.nodeIndex(b)).Get([]byte(k), now)
				if wok != gok || string(want.Value) != string(got.Value) || want.CAS != got.CAS || want.Flags != got.Flags {
					diffs = append(diffs, fmt.Sprintf("%s: primary %s %q cas %d (%v), in-sync %s %q cas %d (%v)",
						k, s.Primary, want.Value, want.CAS, wok, b, got.Value, got.CAS, gok))
				}
			}
		}
		if len(diffs) == 0 {
			t.Logf("%d keys: every in-sync copy equals the primary's", len(keys))
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%d copies differ from their primary's:\n%s", len(diffs), strings.Join(diffs[:min(len(diffs), 20)], "\n"))
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// starvation watches for what a starved machine (a loaded one, or -race)
// does to the nodes: the test process stalls (a 10ms ticker late by over
// 250ms), or a node's lease lapses (its probe came late: never on an idle
// machine, where the leader probes every 300ms and a lease lasts 600ms).
// A node then rightly refuses to serve, and requests that wait for it
// fail after moveWait or time out: errors of availability, not of the
// moves, excused only near such a moment (see near).
type starvation struct {
	mu             sync.Mutex
	at             []time.Time
	what           []string // what happened at each
	stalls, lapses int
}

// starveWindow: an error of availability is excused if the machine
// starved the nodes within this before it (a request is retried for
// moveWait after its first attempt, which may take a RequestTimeout).
const starveWindow = moveWait + 2*time.Second

// watch samples until stop.
func (s *starvation) watch(tc *testCluster, stop chan struct{}) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	last := time.Now()
	lapsed := make([]bool, len(tc.names))
	for {
		select {
		case <-stop:
			return
		case now := <-tick.C:
			now = time.Now()
			stall := now.Sub(last) > 250*time.Millisecond
			var what []string
			if stall {
				what = append(what, fmt.Sprintf("the process stalled %v", now.Sub(last).Round(time.Millisecond)))
			}
			for i := range lapsed {
				off := !tc.router(i).serving()
				if off && !lapsed[i] {
					what = append(what, tc.names[i]+"'s lease lapsed")
				}
				lapsed[i] = off
			}
			last = now
			if len(what) > 0 {
				s.mu.Lock()
				s.at = append(s.at, now)
				s.what = append(s.what, now.Format("15:04:05.000")+" "+strings.Join(what, ", "))
				if stall {
					s.stalls++
				}
				if len(what) > 1 || !stall {
					s.lapses++
				}
				s.mu.Unlock()
			}
		}
	}
}

// near reports whether the machine starved the nodes within starveWindow
// before t.
func (s *starvation) near(t time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.at {
		if !a.Before(t.Add(-starveWindow)) && !a.After(t.Add(100*time.Millisecond)) {
			return true
		}
	}
	return false
}

func (s *starvation) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprintf("the process stalled %d times, leases lapsed %d times %v", s.stalls, s.lapses, s.what[:min(len(s.what), 10)])
}

// slotHistory records the placements of slots as the cluster state
// changes (polled), to tell what happened to a write that went wrong.
type slotHistory struct {
	mu  sync.Mutex
	log map[int][]string
}

func (h *slotHistory) watch(tc *testCluster, keys []string, stop chan struct{}) {
	last := map[int]string{}
	var ver uint64
	h.mu.Lock()
	h.log = map[int][]string{}
	h.mu.Unlock()
	for {
		select {
		case <-stop:
			return
		case <-time.After(time.Millisecond):
		}
		e, _ := tc.store.Get(slots.Key("t"))
		if e.Version == ver {
			continue
		}
		ver = e.Version
		m, err := slots.Decode(e.Value)
		if err != nil {
			continue
		}
		for _, k := range keys {
			sl := slots.Of([]byte(k))
			cur := fmt.Sprintf("%+v", m.Slots[sl])
			if cur != last[sl] {
				last[sl] = cur
				lagging := ""
				for i, st := range tc.stores {
					if st.frozenView() {
						lagging += " " + tc.names[i]
					}
				}
				h.mu.Lock()
				h.log[sl] = append(h.log[sl], time.Now().Format("15:04:05.000")+" "+cur+" lagging:"+lagging)
				h.mu.Unlock()
			}
		}
	}
}

// around returns slot's placements from 3s before the first of incrs
// (each "... via NODE START-END") to 1s after the last.
func (h *slotHistory) around(slot int, incrs []string) string {
	var from, to time.Time
	for _, in := range incrs {
		span := in[strings.LastIndex(in, " ")+1:]
		a, b, _ := strings.Cut(span, "-")
		ta, _ := time.Parse("15:04:05.000", a)
		tb, _ := time.Parse("15:04:05.000", b)
		if f := ta.Add(-3 * time.Second); from.IsZero() || f.Before(from) {
			from = f
		}
		if e := tb.Add(time.Second); e.After(to) {
			to = e
		}
	}
	return h.between(slot, from, to)
}

// between returns slot's placements from from to to (times of day).
func (h *slotHistory) between(slot int, from, to time.Time) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	f, e := from.Format("15:04:05.000"), to.Format("15:04:05.000")
	var out []string
	for _, l := range h.log[slot] {
		if ts := l[:12]; ts >= f && ts <= e {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

var digits = regexp.MustCompile(`[0-9]+`)

// r2Load is what the clients of testR2IncrMoves did.
type r2Load struct {
	tc       *testCluster
	counters []string

	mu      sync.Mutex
	acked   []int // acknowledged incrs per counter
	amb     []int // incrs that failed (applied or not)
	answers []map[uint64]int
	// incrs are each counter's acknowledged incrs by answer: when and
	// through which node (to tell how an answer came twice).
	incrs  []map[uint64][]string
	ops    int
	nerr   int
	failed []r2Error
	kinds  map[string]int
}

func (w *r2Load) fail(op, node, got string, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.nerr++
	var ne net.Error
	timeout := errors.As(err, &ne) && ne.Timeout()
	w.failed = append(w.failed, r2Error{when: time.Now(), text: fmt.Sprintf("%s via %s at %s: %q %v", op, node, time.Now().Format("15:04:05.000"), got, err),
		availability: ranNowhere([]byte(got)) || strings.HasSuffix(got, ": timed out\r\n") || timeout})
	kind := strings.TrimSpace(got)
	if err != nil {
		kind = err.Error()
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			kind = "timed out"
		}
	}
	kind = digits.ReplaceAllString(kind, "N") // the kind, without the slot's particulars
	if w.kinds == nil {
		w.kinds = map[string]int{}
	}
	w.kinds[kind]++
}

// r2Error is a request of testR2IncrMoves that failed.
type r2Error struct {
	when time.Time
	text string
	// availability: the node could not serve (it said "unavailable" after
	// moveWait, or the request timed out), as a starved machine makes it
	// (see starvation); any other error is a wrong answer.
	availability bool
}

func (w *r2Load) summary() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.summaryLocked()
}

func (w *r2Load) summaryLocked() string {
	acked := 0
	for _, a := range w.acked {
		acked += a
	}
	return fmt.Sprintf("%d ops, %d incrs acknowledged, %d errors %v", w.ops, acked, w.nerr, w.kinds)
}

// r2Client is one client of testR2IncrMoves: one connection per node,
// each request through a random node.
type r2Client struct {
	w     *r2Load
	id    int
	rng   *rand.Rand
	conns []*textConn
	// last is each of the client's keys' last acknowledged value.
	last map[string]string
	seq  int
	// appended is what the client's appends to appendKey added;
	// appendAmb: one failed (it may or may not have been applied).
	appendKey string
	appended  strings.Builder
	appendAmb bool
}

func (c *r2Client) run(stop chan struct{}) {
	defer func() {
		for _, tc := range c.conns {
			if tc != nil {
				tc.close()
			}
		}
	}()
	if got, node, err := c.do("set " + c.appendKey + " 0 0 1\r\n|\r\n"); got != "STORED\r\n" {
		c.w.fail("set "+c.appendKey, node, got, err)
		c.appendAmb = true
	} else {
		c.appended.WriteString("|")
	}
	for {
		select {
		case <-stop:
			return
		default:
		}
		switch r := c.rng.IntN(10); {
		case r < 6:
			c.incr(c.rng.IntN(len(c.w.counters)))
		case r < 9:
			c.readYourWrite()
		default:
			c.appendOne()
		}
	}
}

// do sends req through a random node and returns the reply.
func (c *r2Client) do(req string) (reply, node string, err error) {
	i := c.rng.IntN(len(c.conns))
	node = c.w.tc.names[i]
	if c.conns[i] == nil {
		nc, err := net.DialTimeout("tcp", c.w.tc.addrs[i], 5*time.Second)
		if err != nil {
			return "", node, err
		}
		c.conns[i] = &textConn{c: nc, br: bufio.NewReader(nc)}
	}
	reply, err = c.conns[i].do(req)
	if err != nil {
		c.conns[i].close()
		c.conns[i] = nil
	}
	c.w.mu.Lock()
	c.w.ops++
	c.w.mu.Unlock()
	return reply, node, err
}

func (c *r2Client) incr(i int) {
	k := c.w.counters[i]
	start := time.Now()
	got, node, err := c.do("incr " + k + " 1\r\n")
	v, perr := strconv.ParseUint(strings.TrimSuffix(got, "\r\n"), 10, 64)
	if err != nil || perr != nil || !strings.HasSuffix(got, "\r\n") {
		c.w.fail("incr "+k, node, got, err)
		c.w.mu.Lock()
		c.w.amb[i]++
		c.w.mu.Unlock()
		return
	}
	c.w.mu.Lock()
	c.w.acked[i]++
	c.w.answers[i][v]++
	c.w.incrs[i][v] = append(c.w.incrs[i][v], fmt.Sprintf("client %d via %s %s-%s", c.id, node, start.Format("15:04:05.000"), time.Now().Format("15:04:05.000")))
	c.w.mu.Unlock()
}

// readYourWrite sets one of the client's keys through a random node and
// reads it back through another.
func (c *r2Client) readYourWrite() {
	c.seq++
	k, v := fmt.Sprintf("ryw:%d:%d", c.id, c.seq%40), fmt.Sprintf("v%d-%d", c.id, c.seq)
	got, node, err := c.do(fmt.Sprintf("set %s 0 0 %d\r\n%s\r\n", k, len(v), v))
	if got != "STORED\r\n" {
		c.w.fail("set "+k, node, got, err)
		delete(c.last, k) // it may or may not hold v now
		return
	}
	c.last[k] = v
	got, node, err = c.do("get " + k + "\r\n")
	if want := fmt.Sprintf("VALUE %s 0 %d\r\n%s\r\nEND\r\n", k, len(v), v); got != want {
		c.w.fail("get "+k+" (read-your-writes, want "+v+")", node, got, err)
	}
}

func (c *r2Client) appendOne() {
	if c.appendAmb {
		return
	}
	c.seq++
	d := strconv.Itoa(c.seq) + ","
	got, node, err := c.do(fmt.Sprintf("append %s 0 0 %d\r\n%s\r\n", c.appendKey, len(d), d))
	if got != "STORED\r\n" {
		c.w.fail("append "+c.appendKey, node, got, err)
		c.appendAmb = true
		return
	}
	c.appended.WriteString(d)
}
