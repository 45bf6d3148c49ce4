package kvs

import (
	"bufio"
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/lbd-project/lbd/pkg/slots"
)

// kvInput is one operation of a linearizability history.
type kvInput struct {
	op     string // get, set, cas, incr
	key    string
	value  string // set, cas: the new value
	expect string // cas: the value its gets read
	node   int    // the node the client sent it to (for the report)
}

// kvOutput is an operation's outcome; unknown when the client got an error
// (the write may or may not have happened).
type kvOutput struct {
	unknown bool
	found   bool   // get
	value   string // get, incr
	result  string // cas: STORED, EXISTS, NOT_FOUND; incr: NOT_FOUND or ""
	raw     string // unknown: the reply or error (for the report)
}

type kvState struct {
	ok bool
	v  string
}

// kvModel is memcached's semantics for one key: every set and cas writes a
// unique value, so a cas compares values as the server compares uniques.
var kvModel = porcupine.NondeterministicModel{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		by := map[string][]porcupine.Operation{}
		for _, op := range h {
			k := op.Input.(kvInput).key
			by[k] = append(by[k], op)
		}
		var out [][]porcupine.Operation
		for _, ops := range by {
			out = append(out, ops)
		}
		return out
	},
	Init: func() []any { return []any{kvState{}} },
	Step: func(st, in, out any) []any {
		s, i, o := st.(kvState), in.(kvInput), out.(kvOutput)
		var next kvState
		var res string
		switch i.op {
		case "get":
			if o.found == s.ok && (!s.ok || o.value == s.v) {
				return []any{s}
			}
			return nil
		case "set":
			next = kvState{true, i.value}
		case "cas":
			switch {
			case !s.ok:
				next, res = s, "NOT_FOUND"
			case s.v != i.expect:
				next, res = s, "EXISTS"
			default:
				next, res = kvState{true, i.value}, "STORED"
			}
			if !o.unknown && o.result != res {
				return nil
			}
		case "incr":
			if !s.ok {
				next, res = s, "NOT_FOUND"
			} else {
				n, _ := strconv.ParseUint(strings.TrimRight(s.v, " "), 10, 64)
				next = kvState{true, strconv.FormatUint(n+1, 10)}
			}
			if !o.unknown && (o.result != res || (res == "" && o.value != next.v)) {
				return nil
			}
		}
		if o.unknown {
			return []any{s, next}
		}
		return []any{next}
	},
	Equal: func(a, b any) bool { return a.(kvState) == b.(kvState) },
	DescribeOperation: func(in, out any) string {
		return fmt.Sprintf("%+v -> %+v", in, out)
	},
}

// kvClient runs operations on new connections to random nodes.
type kvClient struct {
	tc   *testCluster
	rng  *rand.Rand
	node int    // the node of the last call
	last string // the last reply
}

// call sends req to a random node; sent is false if it was not run
// anywhere (connection refused, or "unavailable").
func (c *kvClient) call(req string) (reply string, sent bool, err error) {
	reply, sent, err = c.call1(req)
	c.last = reply
	if strings.HasPrefix(reply, "SERVER_ERROR lbd: unavailable") {
		sent = false
	}
	return reply, sent, err
}

func (c *kvClient) call1(req string) (reply string, sent bool, err error) {
	c.node = c.rng.IntN(len(c.tc.addrs))
	conn, err := net.DialTimeout("tcp", c.tc.addrs[c.node], time.Second)
	if err != nil {
		return "", false, err
	}
	defer conn.Close()
	t := &textConn{c: conn, br: bufio.NewReader(conn)}
	reply, err = t.do(req)
	return reply, true, err
}

// TestClusterLinearizable checks, with porcupine, that concurrent get, set,
// cas (after gets) and incr through random nodes of a replica-1 sync
// cluster are linearizable while a storage node is killed and brought back
// empty, and while another is cut off from the other nodes and the cluster
// state but not from its clients: no acknowledged write is lost and no read
// is stale.
func TestClusterLinearizable(t *testing.T) {
	tc := startCluster(t, 3, 1, slots.Sync)
	strKeys := []string{"s0", "s1", "s2", "s3", "s4"}
	ctrKeys := []string{"c0", "c1", "c2"}
	start := time.Now()
	var mu sync.Mutex
	var history []porcupine.Operation
	record := func(client int, in kvInput, call int64, out kvOutput, ret int64) {
		if out.unknown {
			ret = math.MaxInt64
		}
		mu.Lock()
		history = append(history, porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret})
		mu.Unlock()
	}
	now := func() int64 { return int64(time.Since(start)) }
	// The counters start at 0, in the history.
	for _, k := range ctrKeys {
		call := now()
		for deadline := time.Now().Add(10 * time.Second); !setVia(t, tc.addrs[0], k, "0"); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) { // a lease may lapse a moment on a loaded machine
				t.Fatal("initial set failed for 10s")
			}
		}
		record(0, kvInput{op: "set", key: k, value: "0"}, call, kvOutput{}, now())
	}

	var faults sync.WaitGroup
	stop := make(chan struct{})
	tl := watchTimeline(tc, append(slices.Clone(strKeys), ctrKeys...), now, stop)
	faults.Add(1)
	go func() {
		defer faults.Done()
		time.Sleep(1500 * time.Millisecond)
		tl.add("kill node 2")
		tc.kill(2)
		time.Sleep(2500 * time.Millisecond)
		tl.add("start node 2, empty")
		tc.start(2)
		time.Sleep(1500 * time.Millisecond)
		tl.add("partition node 1")
		tc.partition(1, true) // its clients still reach it
		time.Sleep(2500 * time.Millisecond)
		tl.add("heal node 1")
		tc.partition(1, false)
		time.Sleep(1500 * time.Millisecond)
		close(stop)
	}()

	var wg sync.WaitGroup
	var seq sync.Mutex
	uniq := 0
	for cl := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &kvClient{tc: tc, rng: rand.New(rand.NewPCG(uint64(cl), 99))}
			for n := 0; n < 2000; n++ {
				select {
				case <-stop:
					return
				default:
				}
				seq.Lock()
				uniq++
				val := fmt.Sprintf("v%d", uniq)
				seq.Unlock()
				switch p := c.rng.IntN(10); {
				case p < 4: // get
					k := pick(c.rng, strKeys, ctrKeys)
					call := now()
					reply, _, err := c.call("get " + k + "\r\n")
					ret := now()
					if err != nil || !strings.HasSuffix(reply, "END\r\n") {
						continue // a failed read changes nothing
					}
					out := kvOutput{found: reply != "END\r\n"}
					if out.found {
						out.value = strings.Split(reply, "\r\n")[1]
					}
					record(cl, kvInput{op: "get", key: k, node: c.node}, call, out, ret)
				case p < 6: // set
					k := strKeys[c.rng.IntN(len(strKeys))]
					call := now()
					reply, sent, err := c.call(fmt.Sprintf("set %s 0 0 %d\r\n%s\r\n", k, len(val), val))
					ret := now()
					if !sent {
						continue
					}
					record(cl, kvInput{op: "set", key: k, value: val, node: c.node}, call, kvOutput{unknown: err != nil || reply != "STORED\r\n", raw: unknownReply(err != nil || reply != "STORED\r\n", reply, err)}, ret)
				case p < 8: // gets, then cas with its unique
					k := strKeys[c.rng.IntN(len(strKeys))]
					reply, _, err := c.call("gets " + k + "\r\n")
					if err != nil || !strings.HasPrefix(reply, "VALUE ") {
						continue
					}
					lines := strings.Split(reply, "\r\n")
					f := strings.Fields(lines[0])
					expect := lines[1]
					call := now()
					reply, sent, err := c.call(fmt.Sprintf("cas %s 0 0 %d %s\r\n%s\r\n", k, len(val), f[4], val))
					ret := now()
					if !sent {
						continue
					}
					out := kvOutput{result: strings.TrimSpace(reply)}
					out.unknown = err != nil || (out.result != "STORED" && out.result != "EXISTS" && out.result != "NOT_FOUND")
					out.raw = unknownReply(out.unknown, reply, err)
					record(cl, kvInput{op: "cas", key: k, value: val, expect: expect, node: c.node}, call, out, ret)
				default: // incr
					k := ctrKeys[c.rng.IntN(len(ctrKeys))]
					call := now()
					reply, sent, err := c.call("incr " + k + " 1\r\n")
					ret := now()
					if !sent {
						continue
					}
					r := strings.TrimSpace(reply)
					out := kvOutput{}
					switch {
					case err != nil || strings.Contains(r, "ERROR"):
						out.unknown = true
						out.raw = unknownReply(true, reply, err)
					case r == "NOT_FOUND":
						out.result = r
					default:
						out.value = r
					}
					record(cl, kvInput{op: "incr", key: k, node: c.node}, call, out, ret)
				}
			}
		}()
	}
	wg.Wait()
	faults.Wait()
	known := 0
	for _, op := range history {
		if !op.Output.(kvOutput).unknown {
			known++
		}
	}
	t.Logf("%d operations, %d with a known outcome", len(history), known)
	<-tl.done
	res, info := porcupine.CheckOperationsVerbose(kvModel.ToModel(), history, time.Minute)
	if res != porcupine.Ok {
		reportViolation(t, history)
		for _, e := range tl.events {
			t.Log(e)
		}
		path := filepath.Join(os.TempDir(), fmt.Sprintf("kvs-linearizability-%d.html", os.Getpid()))
		if err := porcupine.VisualizePath(kvModel.ToModel(), info, path); err != nil {
			t.Logf("visualization: %v", err)
		} else {
			t.Logf("visualization of the history: %s", path)
		}
		t.Fatalf("history is not linearizable: %v", res)
	}
}

// unknownReply is what an operation of unknown outcome got, for the report.
func unknownReply(unknown bool, reply string, err error) string {
	if !unknown {
		return ""
	}
	if err != nil {
		return fmt.Sprintf("%q: %v", reply, err)
	}
	return strings.TrimSpace(reply)
}

// timeline records, while it runs, the changes of the slot map of keys
// (primary, in-sync backups, epoch) and of each node's map version and
// lease, for the report of a violation.
type timeline struct {
	now    func() int64
	mu     sync.Mutex
	events []string
	done   chan struct{}
}

func (tl *timeline) add(format string, args ...any) {
	tl.mu.Lock()
	tl.events = append(tl.events, fmt.Sprintf("%v ", time.Duration(tl.now()))+fmt.Sprintf(format, args...))
	tl.mu.Unlock()
}

func watchTimeline(tc *testCluster, keys []string, now func() int64, stop <-chan struct{}) *timeline {
	tl := &timeline{now: now, done: make(chan struct{})}
	add := tl.add
	go func() {
		defer close(tl.done)
		last := map[string]string{}
		for {
			if e, ok := tc.store.Get(slots.Key("t")); ok {
				if m, err := slots.Decode(e.Value); err == nil {
					for _, k := range keys {
						s := m.Slots[slots.Of([]byte(k))]
						d := fmt.Sprintf("map v%d: %s slot %d primary %s backups %v in-sync %v epoch %d", e.Version, k, slots.Of([]byte(k)), s.Primary, s.Backups, s.InSync, s.Epoch)
						if cut := d[strings.Index(d, ":"):]; last[k] != cut {
							last[k] = cut
							add("%s", d)
						}
					}
				}
			}
			tc.mu.Lock()
			tiers := slices.Clone(tc.tiers)
			tc.mu.Unlock()
			for i, tier := range tiers {
				tier.mu.Lock()
				var r *router
				if tier.cluster != nil && !tier.closed {
					r = tier.cluster.routers["t"]
				}
				tier.mu.Unlock()
				d := "down"
				if r != nil {
					d = fmt.Sprintf("map v%d serving %v", r.ver.Load(), r.serving())
				}
				if k := tc.names[i]; last[k] != d {
					last[k] = d
					add("node %d %s: %s", i, k, d)
				}
			}
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	return tl
}

func pick(rng *rand.Rand, a, b []string) string {
	if rng.IntN(3) == 0 {
		return b[rng.IntN(len(b))]
	}
	return a[rng.IntN(len(a))]
}

// reportViolation logs the operations of the first key whose history is
// not linearizable, in call order.
func reportViolation(t *testing.T, history []porcupine.Operation) {
	m := kvModel.ToModel()
	for _, part := range kvModel.Partition(history) {
		if porcupine.CheckOperationsTimeout(porcupine.Model{Init: m.Init, Step: m.Step, Equal: m.Equal}, part, 20*time.Second) != porcupine.Illegal {
			continue
		}
		slices.SortFunc(part, func(a, b porcupine.Operation) int { return cmp.Compare(a.Call, b.Call) })
		for _, op := range part {
			ret := "inf"
			if op.Return != math.MaxInt64 {
				ret = time.Duration(op.Return).String()
			}
			t.Logf("client %d [%v, %s] %+v -> %+v", op.ClientId, time.Duration(op.Call), ret, op.Input, op.Output)
		}
		return
	}
}
