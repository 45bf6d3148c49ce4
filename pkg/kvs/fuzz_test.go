package kvs

import (
	"bufio"
	"bytes"
	"io"
	"testing"
)

// limitedWriter fails once too much output accumulates, so the fuzzer
// catches replies that grow without bound.
type limitedWriter struct{ n int }

func (w *limitedWriter) Write(p []byte) (int, error) {
	w.n += len(p)
	if w.n > 64<<20 {
		return 0, io.ErrShortWrite
	}
	return len(p), nil
}

// FuzzParse drives the whole protocol engine (tokenizer, command parsers,
// meta flags, data blocks) with arbitrary bytes: it must never panic, and
// its memory is bounded by the item size and line limits.
func FuzzParse(f *testing.F) {
	seeds := []string{
		"set a 0 0 1\r\nx\r\nget a\r\n",
		"gets a b c\r\ngat 10 a\r\ngats 0 a b\r\n",
		"add a 1 2 3 noreply\r\nabc\r\nreplace a 0 0 1\r\nb\r\n",
		"append a 0 0 1\r\nc\r\nprepend a 0 0 1\r\nd\r\ncas a 0 0 1 1\r\ne\r\n",
		"incr a 1\r\ndecr a 18446744073709551615\r\ntouch a -1\r\ndelete a 0 noreply\r\n",
		"flush_all 10\r\nflush_all noreply\r\nverbosity 1\r\nversion\r\nstats\r\nstats settings\r\nstats items\r\nstats slabs\r\n",
		"mg a v k c f s t h l O1 q\r\nms a 2 T10 F3 MA C5 I q b\r\nhi\r\nmd a q C1 I T5\r\nma a N10 J4 D3 MD v t c\r\nmn\r\nme a\r\n",
		"mg a N30 R10 T20 u\r\nms YQ== 1 b k c O9\r\nx\r\n",
		"set a 0 0 2000000\r\n",
		"set a 0 0 4294967295\r\n",
		"get " + string(bytes.Repeat([]byte("k "), 300)) + "\r\n",
		"\r\n\n \r\n\x00\r\nquit\r\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		cfg := TenantConfig{Name: "f", Listen: "127.0.0.1:0", MemoryLimit: 1 << 20, MaxItemSize: 64 << 10, MaxGetLine: 64 << 10}.withDefaults()
		svc := newService(testLogger(t), cfg, NewMemoryStore(cfg.MemoryLimit), newFakeClock().now)
		defer svc.stop()
		s := newSession(svc, bufio.NewReaderSize(bytes.NewReader(in), readBufSize), bufio.NewWriter(&limitedWriter{}))
		s.serve()
		if st := svc.store.Stats(); st.Bytes > cfg.MemoryLimit {
			t.Fatalf("store holds %d bytes over limit %d", st.Bytes, cfg.MemoryLimit)
		}
	})
}
