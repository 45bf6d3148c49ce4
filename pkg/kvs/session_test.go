package kvs

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The expected replies below were checked against memcached 1.6.18 (the
// integration test TestDifferential keeps checking them).
func TestProtocol(t *testing.T) {
	long := strings.Repeat("k", 251)
	tests := []struct {
		name, in, want string
	}{
		{"set get", "set a 5 0 3\r\nabc\r\nget a\r\n", "STORED\r\nVALUE a 5 3\r\nabc\r\nEND\r\n"},
		{"gets cas", "set a 0 0 1\r\nx\r\ngets a\r\n", "STORED\r\nVALUE a 0 1 1\r\nx\r\nEND\r\n"},
		{"multi get", "set a 0 0 1\r\n1\r\nset b 0 0 1\r\n2\r\nget a  b c a\r\n", "STORED\r\nSTORED\r\nVALUE a 0 1\r\n1\r\nVALUE b 0 1\r\n2\r\nVALUE a 0 1\r\n1\r\nEND\r\n"},
		{"get no key", "get\r\n", "ERROR\r\n"},
		{"unknown", "foo\r\nGET a\r\n\r\nm\r\n", "ERROR\r\nERROR\r\nERROR\r\nERROR\r\n"},
		{"bad data chunk", "set k 0 0 3\r\nabcde\r\nget k\r\n", "CLIENT_ERROR bad data chunk\r\nERROR\r\nEND\r\n"},
		{"bad chunk noreply", "set k 0 0 3 noreply\r\nabcde\r\nget k\r\n", "ERROR\r\nEND\r\n"},
		{"too large swallows and drops old", "set k 0 0 1\r\nx\r\nset k 0 0 2000000\r\n" + strings.Repeat("z", 2000000) + "\r\nget k\r\n", "STORED\r\nSERVER_ERROR object too large for cache\r\nEND\r\n"},
		{"bad command line", "set k 0 0 -1\r\nset k 0 0 abc\r\nset k 0 0\r\nset k x 0 1\r\n", "CLIENT_ERROR bad command line format\r\nCLIENT_ERROR bad command line format\r\nERROR\r\nCLIENT_ERROR bad command line format\r\n"},
		{"key too long", "set " + long + " 0 0 1\r\nx\r\nget a " + long + "\r\n", "CLIENT_ERROR bad command line format\r\nERROR\r\nCLIENT_ERROR bad command line format\r\n"},
		{"add replace", "set k 0 0 1\r\nx\r\nadd k 0 0 1\r\ny\r\nadd k2 0 0 1\r\ny\r\nreplace k3 0 0 1\r\nz\r\nreplace k 1 0 1\r\nz\r\nget k k2\r\n", "STORED\r\nNOT_STORED\r\nSTORED\r\nNOT_STORED\r\nSTORED\r\nVALUE k 1 1\r\nz\r\nVALUE k2 0 1\r\ny\r\nEND\r\n"},
		{"append prepend", "set k 3 0 1\r\nx\r\nappend k 0 0 2\r\nzz\r\nprepend k 7 0 2\r\naa\r\nget k\r\nappend no 0 0 1\r\nx\r\n", "STORED\r\nSTORED\r\nSTORED\r\nVALUE k 3 5\r\naaxzz\r\nEND\r\nNOT_STORED\r\n"},
		{"cas", "cas k 0 0 1 1\r\nx\r\nset k 0 0 1\r\nx\r\ncas k 0 0 1 9\r\ny\r\ncas k 0 0 1 1\r\ny\r\nget k\r\n", "NOT_FOUND\r\nSTORED\r\nEXISTS\r\nSTORED\r\nVALUE k 0 1\r\ny\r\nEND\r\n"},
		{"incr decr", "set n 0 0 2\r\n99\r\nincr n 1\r\ndecr n 1\r\nget n\r\ndecr n 1000\r\nincr n 18446744073709551615\r\nincr n 1\r\n", "STORED\r\n100\r\n99\r\nVALUE n 0 3\r\n99 \r\nEND\r\n0\r\n18446744073709551615\r\n0\r\n"},
		{"incr errors", "set s 0 0 2\r\nab\r\nincr s 1\r\nincr s x\r\nincr s -1\r\nincr none 1\r\nset e 0 0 0\r\n\r\nincr e 1\r\n", "STORED\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\nCLIENT_ERROR invalid numeric delta argument\r\nCLIENT_ERROR invalid numeric delta argument\r\nNOT_FOUND\r\nSTORED\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n"},
		{"delete", "delete k\r\nset k 0 0 1\r\nx\r\ndelete k 0\r\ndelete k 5\r\ndelete k noreply\r\ndelete k x y\r\n", "NOT_FOUND\r\nSTORED\r\nDELETED\r\nCLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\nCLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n"},
		{"touch gat", "touch k 10\r\nset k 0 0 1\r\nx\r\ntouch k 10\r\ntouch k abc\r\ngat 100 k\r\ngats 100 k\r\ngat abc k\r\n", "NOT_FOUND\r\nSTORED\r\nTOUCHED\r\nCLIENT_ERROR invalid exptime argument\r\nVALUE k 0 1\r\nx\r\nEND\r\nVALUE k 0 1 1\r\nx\r\nEND\r\nCLIENT_ERROR invalid exptime argument\r\n"},
		{"negative exptime", "set k 0 -1 1\r\nx\r\nget k\r\n", "STORED\r\nEND\r\n"},
		{"noreply", "set k 0 0 1 noreply\r\nx\r\nadd k 0 0 1 noreply\r\ny\r\nincr k 1 noreply\r\nget k\r\n", "VALUE k 0 1\r\nx\r\nEND\r\n"},
		{"flush_all", "set k 0 0 1\r\nx\r\nflush_all\r\nget k\r\nflush_all 0\r\nflush_all noreply\r\nflush_all abc\r\n", "STORED\r\nOK\r\nEND\r\nOK\r\nCLIENT_ERROR invalid exptime argument\r\n"},
		{"verbosity", "verbosity\r\nverbosity 1\r\nverbosity x\r\nverbosity 1 noreply\r\n", "ERROR\r\nOK\r\nCLIENT_ERROR bad command line format\r\n"},
		{"version", "version\r\n", "VERSION " + Version + "\r\n"},
		{"quit", "quit\r\nversion\r\n", ""},
		{"meta get set", "ms a 2 T100 F7\r\nhi\r\nmg a v f t s\r\nmg miss k O1\r\nmg miss q\r\nmn\r\n", "HD\r\nVA 2 f7 t100 s2\r\nhi\r\nEN kmiss O1\r\nMN\r\n"},
		{"meta set modes", "ms a 1 ME\r\nx\r\nms a 1 ME\r\ny\r\nms a 1 MA\r\nz\r\nms a 1 MP\r\ny\r\nmg a v\r\nms c 1 MR\r\nq\r\nms a 1 MZ\r\nq\r\n", "HD\r\nNS\r\nHD\r\nHD\r\nVA 3\r\nyxz\r\nNS\r\nCLIENT_ERROR invalid mode for ms M token\r\n"},
		{"meta delete", "ms a 1\r\nx\r\nmd a C999\r\nmd a q\r\nmd a O5 k\r\nmn\r\n", "HD\r\nEX\r\nNF O5 ka\r\nMN\r\n"},
		{"meta arith", "ma n\r\nma n N0 J10\r\nma n v\r\nma n MD D5 v\r\nset s 0 0 1\r\nx\r\nma s\r\n", "NF\r\nHD\r\nVA 2\r\n11\r\nVA 1\r\n6\r\nSTORED\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n"},
		{"meta errors", "mg a a a\r\nmg a v v\r\nmg a zz\r\nmg\r\nms a\r\nms a x\r\n", "CLIENT_ERROR invalid flag\r\nCLIENT_ERROR duplicate flag\r\nCLIENT_ERROR invalid flag\r\nERROR\r\nCLIENT_ERROR bad command line format\r\nCLIENT_ERROR bad command line format\r\n"},
		{"meta vivify", "mg k N30 v t\r\nmg k v t\r\n", "VA 0 t30 W\r\n\r\nVA 0 t30 Z\r\n\r\n"},
		{"meta base64 key", "ms a2V5 1 b\r\nx\r\nmg key v k\r\n", "HD\r\nVA 1 ka2V5 b\r\nx\r\n"},
		{"binary value", "set b 0 0 4\r\n\x00\r\n\xff\r\nget b\r\n", "STORED\r\nVALUE b 0 4\r\n\x00\r\n\xff\r\nEND\r\n"},
		{"nul truncates line", "get a\x00junk\r\n", "END\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := run(testService(t, newFakeClock()), tt.in)
			if got != tt.want {
				t.Errorf("input %q\n got %q\nwant %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestExpiry(t *testing.T) {
	clock := newFakeClock()
	svc := testService(t, clock)
	abs := clock.now() + 100
	in := "set rel 0 10 1\r\nx\r\nset abs 0 " + strconv.FormatInt(abs, 10) + " 1\r\ny\r\nset never 0 0 1\r\nz\r\n"
	if got := run(svc, in); got != "STORED\r\nSTORED\r\nSTORED\r\n" {
		t.Fatalf("set: %q", got)
	}
	tests := []struct {
		advance int64
		want    string
	}{
		{0, "VALUE rel 0 1\r\nx\r\nVALUE abs 0 1\r\ny\r\nVALUE never 0 1\r\nz\r\nEND\r\n"},
		{9, "VALUE rel 0 1\r\nx\r\nVALUE abs 0 1\r\ny\r\nVALUE never 0 1\r\nz\r\nEND\r\n"},
		{1, "VALUE abs 0 1\r\ny\r\nVALUE never 0 1\r\nz\r\nEND\r\n"},
		{90, "VALUE never 0 1\r\nz\r\nEND\r\n"},
	}
	for _, tt := range tests {
		clock.advance(tt.advance)
		if got := run(svc, "get rel abs never\r\n"); got != tt.want {
			t.Errorf("after +%d s: got %q want %q", tt.advance, got, tt.want)
		}
	}
}

func TestFlushAllDelayed(t *testing.T) {
	clock := newFakeClock()
	svc := testService(t, clock)
	// A delayed flush is a timer in real time; check only that it is
	// accepted and that an immediate flush cancels it.
	got := run(svc, "set k 0 0 1\r\nx\r\nflush_all 3600\r\nget k\r\nflush_all\r\nget k\r\n")
	want := "STORED\r\nOK\r\nVALUE k 0 1\r\nx\r\nEND\r\nOK\r\nEND\r\n"
	if got != want {
		t.Errorf("got %q want %q", got, want)
	}
	svc.flushMu.Lock()
	pending := svc.flushTimer != nil
	svc.flushMu.Unlock()
	if pending {
		t.Error("immediate flush_all left the delayed one pending")
	}
}

func TestLongLines(t *testing.T) {
	svc := testService(t, newFakeClock())
	// A non-get line longer than the read buffer ends the connection.
	if got := run(svc, strings.Repeat("x", readBufSize+10)+"\r\nversion\r\n"); got != "" {
		t.Errorf("long junk line: got %q", got)
	}
	// A multi-get longer than the buffer is served.
	keys := strings.Repeat("key ", readBufSize/2)
	got := run(svc, "set key 0 0 1\r\nv\r\nget "+keys+"\r\n")
	if want := "STORED\r\n" + strings.Repeat("VALUE key 0 1\r\nv\r\n", readBufSize/2) + "END\r\n"; got != want {
		t.Errorf("long multi-get: got %d bytes, want %d", len(got), len(want))
	}
	// Beyond MaxGetLine the connection is closed.
	if got := run(svc, "get "+strings.Repeat("k ", DefaultMaxGetLine)+"\r\n"); got != "" {
		t.Errorf("huge multi-get: got %d bytes", len(got))
	}
}

// TestMetaSetKeyOutlivesData checks that ms answers with its key (and
// stores under it) when the data block is read through the buffer that
// held the command line.
func TestMetaSetKeyOutlivesData(t *testing.T) {
	big := strings.Repeat("v", 3*readBufSize)
	tests := []struct {
		name, in, want string
	}{
		{"plain key", "ms mykey " + strconv.Itoa(len(big)) + " k O1 c\r\n" + big + "\r\nmg mykey s k\r\n",
			"HD kmykey O1 c1\r\nHD s" + strconv.Itoa(len(big)) + " kmykey\r\n"},
		{"base64 key", "ms a2V5 " + strconv.Itoa(len(big)) + " b k\r\n" + big + "\r\nmg key s k\r\n",
			"HD ka2V5 b\r\nHD s" + strconv.Itoa(len(big)) + " ka2V5 b\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := run(testService(t, newFakeClock()), tt.in); got != tt.want {
				t.Errorf("got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestStatsFormats(t *testing.T) {
	svc := testService(t, newFakeClock())
	out := run(svc, "stats\r\nstats settings\r\n")
	for _, line := range strings.Split(out, "\r\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		switch f[1] {
		case "rusage_user", "rusage_system":
			sec, usec, ok := strings.Cut(f[2], ".")
			if _, err := strconv.ParseUint(sec, 10, 64); err != nil || !ok || len(usec) != 6 {
				t.Errorf("%s = %q, want seconds.microseconds", f[1], f[2])
			}
		case "tcpport":
			if f[2] != "0" { // Listen is 127.0.0.1:0
				t.Errorf("tcpport = %q", f[2])
			}
		}
	}
	if !strings.Contains(out, "STAT rusage_user ") || !strings.Contains(out, "STAT tcpport ") {
		t.Errorf("stats missing lines:\n%s", out)
	}
}

// TestStatsCountExpiredGetsAndMetaDebug checks get_expired (a get that finds
// its key past its expiry) and cmd_meta, which memcached 1.6 counts for me
// only.
func TestStatsCountExpiredGetsAndMetaDebug(t *testing.T) {
	clock := newFakeClock()
	svc := testService(t, clock)
	run(svc, "set k 0 1 1\r\nx\r\nset l 0 0 1\r\ny\r\n")
	clock.advance(2)
	out := run(svc, "get k\r\nget k\r\nmg l v\r\nme l\r\nstats\r\n")
	for _, want := range []string{"STAT get_expired 1\r\n", "STAT get_misses 2\r\n", "STAT cmd_meta 1\r\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("stats lack %q:\n%s", want, out)
		}
	}
}

// failingWrites is a store whose every write fails, as a durable store's
// does when its disk does.
type failingWrites struct{ *MemoryStore }

func (failingWrites) Mutate([]byte, int64, MutateFunc) (Item, error) {
	return Item{}, errors.New("disk full")
}

// TestGatReportsFailedWrite: a gat whose new expiry cannot be stored ends
// with SERVER_ERROR, not with values whose expiry did not change.
func TestGatReportsFailedWrite(t *testing.T) {
	clock := newFakeClock()
	cfg := TenantConfig{Name: "t", Listen: "127.0.0.1:0"}.withDefaults()
	mem := NewMemoryStore(cfg.MemoryLimit)
	svc := newService(testLogger(t), cfg, failingWrites{mem}, clock.now)
	if _, err := mem.Mutate([]byte("a"), clock.now(), func(Item, bool) (Item, Op) {
		return Item{Value: []byte("x")}, OpStore
	}); err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{"gat 0 a\r\n", "gats 0 b a\r\n", "touch a 0 noreply\r\n"} {
		if got := run(svc, in); got != "SERVER_ERROR disk full\r\n" {
			t.Errorf("%q: got %q", in, got)
		}
	}
	if got := run(svc, "get a\r\n"); got != "VALUE a 0 1\r\nx\r\nEND\r\n" {
		t.Errorf("get after failed gat: %q", got)
	}
}

// slowStore is a Store whose Mutate calls past the first free ones wait
// until release is closed (writes that wait for backups or a disk).
type slowStore struct {
	Store
	free    int32
	calls   atomic.Int32
	release chan struct{}
}

func (s *slowStore) Mutate(key []byte, now int64, fn MutateFunc) (Item, error) {
	if s.calls.Add(1) > s.free {
		<-s.release
	}
	return s.Store.Mutate(key, now, fn)
}

// TestPipelineRepliesFlow: a session flushes the replies of a deep
// pipeline every reqsPerFlush requests, not only once the pipeline is
// drained: the first writes' replies go out while later ones still wait.
// (A forwarding node times its peer out when no reply comes for its
// request timeout.)
func TestPipelineRepliesFlow(t *testing.T) {
	cfg := TenantConfig{Name: "t", Listen: "127.0.0.1:0"}.withDefaults()
	st := &slowStore{Store: NewMemoryStore(cfg.MemoryLimit), free: reqsPerFlush + 5, release: make(chan struct{})}
	svc := newService(testLogger(t), cfg, st, newFakeClock().now)
	var in strings.Builder
	for i := range 200 {
		fmt.Fprintf(&in, "set k%d 0 0 1\r\nx\r\n", i)
	}
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		w := bufio.NewWriter(pw)
		newSession(svc, bufio.NewReaderSize(strings.NewReader(in.String()), readBufSize), w).serve()
		w.Flush()
		pw.Close()
	}()
	defer func() { <-done }()
	defer close(st.release)
	got := make(chan string, 1)
	go func() {
		buf := make([]byte, reqsPerFlush*len("STORED\r\n"))
		_, err := io.ReadFull(pr, buf)
		got <- fmt.Sprintf("%s%v", buf, err)
		io.Copy(io.Discard, pr)
	}()
	select {
	case r := <-got:
		if want := strings.Repeat("STORED\r\n", reqsPerFlush) + "<nil>"; r != want {
			t.Fatalf("first replies: %q", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no reply in 10 s while %d of 200 pipelined writes ran and the next one waits", st.free)
	}
}
