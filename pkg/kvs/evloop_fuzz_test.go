//go:build linux

package kvs

import (
	"bufio"
	"bytes"
	"math/rand/v2"
	"testing"
)

// runChunked serves input the way an event loop does, fed in chunks, and
// switches to a goroutine-style session on hand-off, as the server does.
func runChunked(svc *service, input []byte, seed uint64) string {
	rng := rand.New(rand.NewPCG(seed, 7))
	var in evReader
	in.maxGetLine = svc.cfg().MaxGetLine
	var out evWriter
	s := newSession(svc, &in, &out)
	s.outPending = out.pending
	s.outLimit = svc.cfg().MaxItemSize + evOutSoft
	var res bytes.Buffer
	for len(input) > 0 {
		// Fill the buffer as serve does, but in random-sized reads.
		if len(in.buf) >= evMaxIn {
			break // hand-off: the request is bigger than the buffer
		}
		n := min(1+rng.IntN(300), len(input), evMaxIn-len(in.buf))
		in.buf = append(in.buf, input[:n]...)
		input = input[n:]
		quit, handoff, _ := runBuffered(s, &in, &out)
		res.Write(out.buf)
		out.buf = out.buf[:0]
		if quit {
			return res.String()
		}
		if handoff {
			break
		}
	}
	// Goroutine mode for the rest, starting with what is buffered.
	rest := append(bytes.Clone(in.buf[in.pos:]), input...)
	if in.skip > 0 {
		rest = rest[min(in.skip, len(rest)):]
	}
	w := bufio.NewWriter(&res)
	g := newSession(svc, bufio.NewReaderSize(bytes.NewReader(rest), readBufSize), w)
	g.serve()
	w.Flush()
	return res.String()
}

// FuzzEventLoopChunks checks that the event-loop framing (partial requests
// rewound and retried, swallowed data skipped across reads, hand-offs)
// gives exactly the replies of the plain streaming session.
func FuzzEventLoopChunks(f *testing.F) {
	for _, s := range []string{
		"set a 0 0 5\r\nhello\r\nget a a\r\nincr a 1\r\n",
		"set a 0 0 3\r\nabcde\r\nget a\r\n",
		"set a 0 0 2000\r\n" + string(bytes.Repeat([]byte("v"), 2000)) + "\r\nget a a a a\r\nmg a v\r\n",
		"set a 0 0 70000\r\n" + string(bytes.Repeat([]byte("w"), 70000)) + "\r\nget a\r\n",
		"set a 0 0 2000000\r\nxx\r\nget a\r\n",
		"ms a 3 T10\r\nabc\r\nmg a v t\r\nma n N0 J5\r\nmd a q\r\nmn\r\n",
		"get " + string(bytes.Repeat([]byte("key "), 5000)) + "\r\nversion\r\n",
		"quit\r\nversion\r\n",
	} {
		f.Add([]byte(s), uint64(1))
	}
	f.Fuzz(func(t *testing.T, input []byte, seed uint64) {
		if bytes.Contains(input, []byte("stats")) {
			t.Skip("stats counts bytes and commands, which rewinds recount")
		}
		cfg := TenantConfig{Name: "f", Listen: "127.0.0.1:0", MemoryLimit: 4 << 20, MaxItemSize: 100 << 10}.withDefaults()
		clock := newFakeClock()
		want := run(newService(testLogger(t), cfg, NewMemoryStore(cfg.MemoryLimit), clock.now), string(input))
		got := runChunked(newService(testLogger(t), cfg, NewMemoryStore(cfg.MemoryLimit), clock.now), input, seed)
		if got != want {
			t.Fatalf("input %q\nstreaming:  %q\nevent loop: %q", trunc64(string(input)), trunc64(want), trunc64(got))
		}
	})
}
