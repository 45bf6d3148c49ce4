//go:build linux

package kvs

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// BenchmarkSessionGetSet runs bench-kvs's workload (get:set 9:1, 16-byte
// keys, 64-byte values) through an event loop's session: batches of 32
// requests are parsed, run against a memory store of 200k items and
// answered into the loop's output buffer, as a loop does after a read.
// One op is one request; allocs/op and ns/op are the server's CPU cost per
// request without the syscalls. The clock advances a second per 200k
// requests.
func BenchmarkSessionGetSet(b *testing.B) {
	const (
		keys  = 200_000
		batch = 32
	)
	clock := newFakeClock()
	svc := testService(b, clock)
	key := func(i int) string { return fmt.Sprintf("key:%012d", i) }
	val := strings.Repeat("v", 64)
	var pre strings.Builder
	for i := range keys {
		fmt.Fprintf(&pre, "set %s 0 0 %d noreply\r\n%s\r\n", key(i), len(val), val)
	}
	sess, in, out := benchSession(svc)
	feed(b, sess, in, out, pre.String())

	// Precomputed batches, so the benchmark measures the server only.
	rng := rand.New(rand.NewPCG(1, 2))
	reqs := make([]string, 256)
	for i := range reqs {
		var r strings.Builder
		for range batch {
			k := key(rng.IntN(keys))
			if rng.IntN(10) == 0 {
				fmt.Fprintf(&r, "set %s 0 0 %d\r\n%s\r\n", k, len(val), val)
			} else {
				fmt.Fprintf(&r, "get %s\r\n", k)
			}
		}
		reqs[i] = r.String()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += batch {
		feed(b, sess, in, out, reqs[(i/batch)%len(reqs)])
		// A second per key-space of requests, as under bench-kvs (about
		// 200k requests a second): most hits are an item's first in its
		// second.
		if i%keys+batch > keys {
			clock.advance(1)
		}
	}
}

// benchSession returns a session reading and writing an event loop's
// buffers.
func benchSession(svc *service) (*session, *evReader, *evWriter) {
	in := &evReader{buf: make([]byte, 0, evMaxIn), maxGetLine: svc.cfg().MaxGetLine}
	out := &evWriter{}
	s := newSession(svc, in, out)
	s.outPending = out.pending
	s.outLimit = svc.cfg().MaxItemSize + evOutSoft
	return s, in, out
}

// feed runs input through the session in buffer-sized pieces and drops the
// replies.
func feed(b *testing.B, s *session, in *evReader, out *evWriter, input string) {
	for len(input) > 0 {
		n := copy(in.buf[len(in.buf):cap(in.buf)], input)
		in.buf = in.buf[:len(in.buf)+n]
		input = input[n:]
		quit, handoff, _ := runBuffered(s, in, out)
		if quit || handoff {
			b.Fatalf("quit=%v handoff=%v", quit, handoff)
		}
		out.buf, out.off = out.buf[:0], 0
	}
}
