package kvhistory

import (
	"strings"
	"testing"
	"time"
)

// The model accepts memcached's answers and catches a stale read, a lost
// write and a cas that wrongly succeeded.
func TestCheck(t *testing.T) {
	set := func(c int, k, v string, call, ret int64) Op {
		return Op{Client: c, In: Input{Op: "set", Key: k, Value: v}, Call: call, Return: ret}
	}
	get := func(c int, k, v string, call, ret int64) Op {
		return Op{Client: c, In: Input{Op: "get", Key: k}, Out: Output{Found: v != "", Value: v}, Call: call, Return: ret}
	}
	cas := func(c int, k, expect, v, res string, call, ret int64) Op {
		return Op{Client: c, In: Input{Op: "cas", Key: k, Value: v, Expect: expect}, Out: Output{Result: res}, Call: call, Return: ret}
	}
	incr := func(c int, k, v string, call, ret int64) Op {
		return Op{Client: c, In: Input{Op: "incr", Key: k}, Out: Output{Value: v}, Call: call, Return: ret}
	}
	unknown := func(op Op) Op { op.Out = Output{Unknown: true}; op.Return = 1 << 62; return op }
	for _, tc := range []struct {
		name string
		ops  []Op
		ok   bool
	}{
		{"read your write", []Op{set(0, "a", "1", 0, 1), get(1, "a", "1", 2, 3)}, true},
		{"concurrent set and get", []Op{set(0, "a", "1", 0, 10), get(1, "a", "", 1, 2), get(1, "a", "1", 3, 4)}, true},
		{"stale read", []Op{set(0, "a", "1", 0, 1), set(0, "a", "2", 2, 3), get(1, "a", "1", 4, 5)}, false},
		{"lost write", []Op{set(0, "a", "1", 0, 1), get(1, "a", "", 2, 3)}, false},
		{"unknown write may land later", []Op{set(0, "a", "1", 0, 1), unknown(set(0, "a", "2", 2, 3)), get(1, "a", "1", 4, 5), get(1, "a", "2", 6, 7)}, true},
		{"cas", []Op{set(0, "a", "1", 0, 1), cas(1, "a", "1", "2", "STORED", 2, 3), cas(0, "a", "1", "3", "EXISTS", 4, 5)}, true},
		{"cas wrongly stored", []Op{set(0, "a", "1", 0, 1), set(0, "a", "2", 2, 3), cas(1, "a", "1", "3", "STORED", 4, 5)}, false},
		{"incr", []Op{set(0, "c", "0", 0, 1), incr(1, "c", "1", 2, 3), incr(0, "c", "2", 4, 5)}, true},
		{"incr lost", []Op{set(0, "c", "0", 0, 1), incr(1, "c", "1", 2, 3), incr(0, "c", "1", 4, 5)}, false},
	} {
		err := Check(tc.ops, 10*time.Second)
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v, want linearizable %v", tc.name, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "client ") {
			t.Errorf("%s: the error does not list the operations: %v", tc.name, err)
		}
	}
}
