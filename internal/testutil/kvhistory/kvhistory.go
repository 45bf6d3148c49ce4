// Package kvhistory records histories of memcached operations (get, set,
// cas after gets, incr) made by concurrent clients, and checks them for
// linearizability with porcupine against memcached's semantics. The
// clustered store's tests use it, in-process (pkg/kvs) and with real lbd
// processes (cmd/lbd). It is for _test.go files only.
package kvhistory

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// Input is one operation of a history.
type Input struct {
	Op     string `json:"op"` // get, set, cas, incr
	Key    string `json:"key"`
	Value  string `json:"value,omitempty"`  // set, cas: the new value
	Expect string `json:"expect,omitempty"` // cas: the value its gets read
}

// Output is an operation's outcome; Unknown when the client got an error
// or no answer (the write may or may not have happened).
type Output struct {
	Unknown bool   `json:"unknown,omitempty"`
	Found   bool   `json:"found,omitempty"`  // get
	Value   string `json:"value,omitempty"`  // get, incr
	Result  string `json:"result,omitempty"` // cas: STORED, EXISTS, NOT_FOUND; incr: NOT_FOUND or ""
}

// Op is one recorded operation: its client, input, output, and the times
// (ns since the history began) it was called and returned; Return is
// math.MaxInt64 for an unknown outcome (it may take effect at any later
// time).
type Op struct {
	Client int    `json:"client"`
	In     Input  `json:"in"`
	Call   int64  `json:"call"`
	Out    Output `json:"out"`
	Return int64  `json:"return"`
}

type state struct {
	ok bool
	v  string
}

// Model is memcached's semantics for one key: every set and cas writes a
// unique value, so a cas compares values as the server compares uniques.
var Model = porcupine.NondeterministicModel{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		by := map[string][]porcupine.Operation{}
		for _, op := range h {
			k := op.Input.(Input).Key
			by[k] = append(by[k], op)
		}
		var out [][]porcupine.Operation
		for _, ops := range by {
			out = append(out, ops)
		}
		return out
	},
	Init: func() []any { return []any{state{}} },
	Step: func(st, in, out any) []any {
		s, i, o := st.(state), in.(Input), out.(Output)
		var next state
		var res string
		switch i.Op {
		case "get":
			if o.Found == s.ok && (!s.ok || o.Value == s.v) {
				return []any{s}
			}
			return nil
		case "set":
			next = state{true, i.Value}
		case "cas":
			switch {
			case !s.ok:
				next, res = s, "NOT_FOUND"
			case s.v != i.Expect:
				next, res = s, "EXISTS"
			default:
				next, res = state{true, i.Value}, "STORED"
			}
			if !o.Unknown && o.Result != res {
				return nil
			}
		case "incr":
			if !s.ok {
				next, res = s, "NOT_FOUND"
			} else {
				n, _ := strconv.ParseUint(strings.TrimRight(s.v, " "), 10, 64)
				next = state{true, strconv.FormatUint(n+1, 10)}
			}
			if !o.Unknown && (o.Result != res || (res == "" && o.Value != next.v)) {
				return nil
			}
		}
		if o.Unknown {
			return []any{s, next}
		}
		return []any{next}
	},
	Equal: func(a, b any) bool { return a.(state) == b.(state) },
	DescribeOperation: func(in, out any) string {
		return fmt.Sprintf("%+v -> %+v", in, out)
	},
}

// History collects the operations of concurrent clients.
type History struct {
	start time.Time
	mu    sync.Mutex
	ops   []Op
}

// New starts a history now.
func New() *History { return &History{start: time.Now()} }

// Now is the time since the history began, for Op.Call and Op.Return.
func (h *History) Now() int64 { return int64(time.Since(h.start)) }

// Add records an operation; an unknown outcome gets an open end.
func (h *History) Add(client int, in Input, call int64, out Output, ret int64) {
	if out.Unknown {
		ret = math.MaxInt64
	}
	h.mu.Lock()
	h.ops = append(h.ops, Op{Client: client, In: in, Call: call, Out: out, Return: ret})
	h.mu.Unlock()
}

// Ops is a copy of what was recorded so far.
func (h *History) Ops() []Op {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.ops)
}

// Check reports whether ops are linearizable; when they are not, the
// error lists the operations of the first key whose history is not, in
// call order. A check that runs out of time is an error too.
func Check(ops []Op, timeout time.Duration) error {
	h := make([]porcupine.Operation, len(ops))
	for i, op := range ops {
		h[i] = porcupine.Operation{ClientId: op.Client, Input: op.In, Call: op.Call, Output: op.Out, Return: op.Return}
	}
	switch res := porcupine.CheckOperationsTimeout(Model.ToModel(), h, timeout); res {
	case porcupine.Ok:
		return nil
	case porcupine.Unknown:
		return fmt.Errorf("the linearizability check of %d operations ran out of time (%v)", len(ops), timeout)
	}
	return fmt.Errorf("history is not linearizable:\n%s", violation(h))
}

// violation lists the operations of the first key whose history is not
// linearizable, in call order.
func violation(history []porcupine.Operation) string {
	m := Model.ToModel()
	var b strings.Builder
	for _, part := range Model.Partition(history) {
		if porcupine.CheckOperationsTimeout(m, part, 20*time.Second) != porcupine.Illegal {
			continue
		}
		slices.SortFunc(part, func(a, b porcupine.Operation) int { return cmp.Compare(a.Call, b.Call) })
		for _, op := range part {
			ret := "inf"
			if op.Return != math.MaxInt64 {
				ret = time.Duration(op.Return).String()
			}
			fmt.Fprintf(&b, "client %d [%v, %s] %+v -> %+v\n", op.ClientId, time.Duration(op.Call), ret, op.Input, op.Output)
		}
		break
	}
	return b.String()
}
