//go:build integration

package kvs

import (
	"bytes"
	"io"
	"maps"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// exchange sends script on a new connection, half-closes it and returns
// every byte the server sent back.
func exchange(t *testing.T, addr, script string) []byte {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, script); err != nil {
		t.Fatal(err)
	}
	// A sentinel instead of a half-close: memcached drops a connection as
	// soon as it reads EOF, sometimes before its last replies.
	if _, err := io.WriteString(c, "mn\r\n"); err != nil {
		t.Fatal(err)
	}
	var out []byte
	buf := make([]byte, 64<<10)
	for !bytes.HasSuffix(out, []byte("MN\r\n")) {
		n, err := c.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			break
		}
	}
	return out
}

var (
	reValueCAS = regexp.MustCompile(`(?m)^(VALUE \S+ \d+ \d+) \d+\r$`)
	reMetaCAS  = regexp.MustCompile(` c\d+`)
	reVersion  = regexp.MustCompile(`VERSION \S+`)
)

// normalize hides what may differ: CAS values and the version string.
func normalize(b []byte) string {
	b = reValueCAS.ReplaceAll(b, []byte("$1 CAS\r"))
	b = reMetaCAS.ReplaceAll(b, []byte(" cCAS"))
	b = reVersion.ReplaceAll(b, []byte("VERSION X"))
	return string(b)
}

// differentialScripts are sent as they are to memcached and to lbd.
var differentialScripts = []struct{ name, script string }{
	{"basic", "set a 5 0 3\r\nabc\r\nget a\r\ngets a b\r\nincr a 1\r\n"},
	// memcached shrinks a counter in place (padding with spaces) only while
	// no pending reply holds the item: right after a pipelined get it
	// sometimes allocates an exact-length copy instead. The "incr n 0"
	// between them takes that copy, so the shrinking decr always finds the
	// item unshared, as lbd always does.
	{"incr decr", "set n 0 0 3\r\n100\r\ndecr n 1\r\nget n\r\nincr n 5\r\nget n\r\nincr n 18446744073709551615\r\nget n\r\nincr n 0\r\ndecr n 1000\r\nget n\r\n"},
	{"incr parsing", "set k 0 0 3\r\n 12\r\nincr k 1\r\nget k\r\nset k 0 0 4\r\n12ab\r\nincr k 1\r\nset k 0 0 3\r\n-12\r\nincr k 1\r\nset k 0 0 2\r\n-0\r\nincr k 1\r\nset k 0 0 20\r\n18446744073709551616\r\nincr k 1\r\nincr k -1\r\nincr k +1\r\nincr k 00001\r\nincr k x\r\nincr nokey 1\r\n"},
	{"incr noreply", "set k 0 0 1\r\n5\r\nincr k 1 noreply\r\nget k\r\ndecr k 10 noreply\r\nget k\r\nincr k x noreply\r\nincr k 1 extra\r\nincr k\r\ndecr k 1 2 3\r\n"},
	{"bad data chunk", "set k 0 0 3\r\nabcde\r\nget k\r\n"},
	{"bad data chunk noreply", "set k 0 0 3 noreply\r\nabcde\r\nget k\r\n"},
	{"too large", "set k 0 0 1\r\nx\r\nset k 0 0 2000000\r\n" + strings.Repeat("v", 2000000) + "\r\nget k\r\n"},
	{"too large noreply", "set k 0 0 1 noreply\r\nx\r\nset k 0 0 2000000 noreply\r\n" + strings.Repeat("v", 2000000) + "\r\nget k\r\n"},
	{"binary safe", "set k 0 0 6\r\n\x00\r\n\xff\r\n\r\nget k\r\nappend k 0 0 2\r\n\r\n\r\ngets k\r\n"},
	{"storage commands", "set k 0 0 3 noreply\r\nabc\r\nget k\r\nadd k 0 0 1\r\nx\r\nadd k2 0 0 1\r\nx\r\nreplace k3 0 0 1\r\nx\r\nreplace k 1 0 1\r\ny\r\nget k k2\r\nappend k 0 0 2\r\nzz\r\nprepend k 7 0 2\r\naa\r\ngets k\r\nappend nope 0 0 1\r\nx\r\n"},
	{"cas", "cas k 0 0 1 1\r\nx\r\nset k 0 0 1\r\nx\r\ncas k 0 0 1 999999\r\ny\r\nget k\r\ncas k 0 0 1 abc\r\ny\r\ncas k 0 0 1\r\ncas k 0 0 1 0 noreply\r\nx\r\n"},
	{"delete", "delete k\r\nset k 0 0 1\r\nx\r\ndelete k 0\r\ndelete k 5\r\ndelete k noreply\r\ndelete k 0 noreply\r\ndelete k x y\r\ndelete\r\n"},
	{"touch gat", "touch k 10\r\nset k 0 0 1\r\nx\r\ntouch k 10\r\ntouch k abc\r\ngat 100 k\r\ngats 100 k\r\ngat abc k\r\ngat 10\r\ntouch k 1 noreply\r\ntouch k 1 2 3\r\n"},
	{"exptime edges", "set k 0 -1 1\r\nx\r\nget k\r\nset k 0 1 1\r\nx\r\nget k\r\nset k 0 99999999999 1\r\nx\r\nset k 4294967296 0 1\r\nx\r\nget k\r\nset k 0 4294967297 1\r\nx\r\nget k\r\nset k 0 1000 1\r\nx\r\nmg k t\r\n"},
	{"bad command lines", "set k -1 0 1\r\nx\r\nset k 0 0 -1\r\nset k 0 0 abc\r\nset k 0 0\r\nset k 0 0 1 2 3\r\nx\r\nset k 0x10 0 1\r\nx\r\nset k 1 0x 1\r\nx\r\nset k +5 +0 +1\r\nx\r\nget k\r\n"},
	{"errors", "get\r\nfoo\r\n\r\nGET a\r\nxx\r\nm\r\nmz a\r\nverbosity\r\nverbosity 1\r\nverbosity x\r\nverbosity 1 noreply\r\nversion\r\n \r\nget  \r\nget  a\r\n set a 0 0 1\r\nb\r\n"},
	{"flush_all", "set k 0 0 1\r\nx\r\nflush_all 0\r\nget k\r\nflush_all noreply\r\nflush_all abc\r\nflush_all 0 noreply\r\nflush_all 1 2 3\r\nflush_all -1\r\n"},
	{"key too long", "set " + strings.Repeat("k", 251) + " 0 0 1\r\nx\r\nversion\r\n"},
	{"get key too long", "get a " + strings.Repeat("k", 251) + "\r\nversion\r\n"},
	{"many keys", "set a 0 0 1\r\n1\r\nset b 0 0 1\r\n2\r\nget a b c d e f g h i j k l m n o p q r s t u v w x y z a b\r\nget " + strings.Repeat("a ", 100) + "\r\n"},
	// memcached does not enforce protocol.txt's "no control characters"
	// in keys, and stock clients rely on that: memcaslap starts every key
	// with eight 0x10 bytes. lbd accepts what memcached accepts.
	{"tabs in keys", "get a\tb\r\nset a\tb 0 0 1\r\nx\r\nget a\tb\r\n"},
	{"memcaslap keys", "set \x10\x10\x10\x10\x10\x10\x10\x10wuVqgKid 0 0 1\r\nx\r\nget \x10\x10\x10\x10\x10\x10\x10\x10wuVqgKid\r\n"},
	{"pipelined noreply", "set a 0 0 1 noreply\r\n1\r\nset b 0 0 1 noreply\r\n2\r\nincr a 5 noreply\r\ndelete b noreply\r\nget a b\r\n"},
	{"meta get set", "ms a 2\r\nhi\r\nmg a v\r\nmg a s v f t\r\nmg a k O123 q\r\nmg miss k O1\r\nmg miss q\r\nms a 2 T0 F5 I\r\nhi\r\nmg a f v\r\nms a 2 MZ\r\nhi\r\nms a S2\r\nhi\r\n"},
	{"meta set modes", "ms a 2\r\nhi\r\nms a 1 ME\r\nx\r\nms b 1 ME\r\nx\r\nms a 1 MA\r\nz\r\nms a 1 MP\r\ny\r\nmg a v\r\nms c 1 MR\r\nq\r\nms a 1 q\r\nq\r\nms a 1 C1\r\nx\r\nmd a q\r\nmd a\r\nmd a q\r\nms a 1 k O9\r\nx\r\nmd a C1\r\nmd a O5 k\r\n"},
	{"meta arith", "ma n\r\nma n N0 J10\r\nma n\r\nma n v\r\nma n MD D5 v\r\nma n q\r\nma n t v N0\r\nma n MX\r\nma n Dabc\r\nset s 0 0 1\r\nx\r\nma s\r\nma n O1 k\r\nma miss O1 k\r\nset n 0 0 3\r\n100\r\nma n MD v\r\nget n\r\nma n T100 t v\r\nma n t\r\nma nn N100 J5 t v\r\nma nn2 J5 N100 t v c\r\n"},
	{"meta ttl", "ms k 3 T100 F7\r\nabc\r\nmg k t f v s\r\nmg k T0 t\r\nmg k t\r\nmg k h l\r\nmg k h\r\nmg k u h\r\n"},
	{"meta vivify recache", "mg k N30 v c t\r\nmg k v t\r\nmg k\r\nms k 1\r\nx\r\nmg k v\r\nmg k R30 t\r\nmg k T10 R30\r\nmg k R30\r\nmg k\r\n"},
	{"meta stale", "ms k 1\r\nx\r\nmd k I T30\r\nmg k v c\r\nmg k v\r\nms k 1 I\r\ny\r\nmg k v\r\n"},
	{"meta base64", "ms a2V5 1 b\r\nx\r\nmg a2V5 b v k\r\nmg key v k\r\nmg !!!! b\r\nmd a2V5 b k\r\n"},
	{"meta opaque", "ms k 1 O12345678901234567890123456789012\r\nx\r\nms k 1 O123456789012345678901234567890123\r\nx\r\nmg k O123456789012345678901234567890123\r\nmg k v O1 O2\r\n"},
	{"meta bad flags", "ms k 1 F-1\r\nx\r\nms k 1 Fx\r\nx\r\nms k 1 C\r\nx\r\nms k 1 Cx\r\nx\r\nms k 1 T\r\nx\r\nms k 1 Tx\r\nx\r\nms k 1 MSS\r\nx\r\nms k -1\r\nx\r\nms k 1 a b c d e f g h i j k l m n o p q r s\r\nx\r\nmg a a a\r\nmg a v v\r\nmg a zz\r\nmg\r\nms\r\nms a\r\nms a x\r\nmd\r\nma\r\nme\r\nmd k x\r\nmd k O1 O2\r\n"},
	{"meta cas", "ms k 2 c\r\nhi\r\nms k 2 C1\r\nhi\r\nms k 2 ME c\r\nhi\r\nma k\r\nma k MI D2 v\r\nma k q v\r\nmd k C5 q\r\n"},
	{"meta too large", "ms k 5000000 T0\r\n" + strings.Repeat("v", 5000000) + "\r\nmg k\r\nms k 2 q\r\nhi\r\nms k 2 MR q\r\nho\r\nms kk 2 MR q\r\nho\r\n"},
	{"meta limits", "mg " + strings.Repeat("k", 251) + " v\r\nmg k a b c d e f g h i j k l m n o p q r s t u\r\nmg k s t v\r\n"},
	// memcached closes, without a reply, a connection whose unknown
	// command ends in an HTTP version: the body never runs.
	{"cross-protocol", browserPost},
	{"stats subcommands", "stats foo\r\nstats detail\r\nstats detail on\r\nstats detail dump\r\nstats reset\r\nstats cachedump 1 1\r\n"},
}

// TestDifferential sends the same scripts to memcached 1.6 and to lbd's
// KVS (memory and durable stores, event loops and goroutines) and wants the
// same bytes back, CAS values and version aside.
func TestDifferential(t *testing.T) {
	mc := startMemcached(t, 64)
	for _, mode := range []struct {
		name   string
		opts   Options
		tenant TenantConfig
	}{
		{"memory", Options{}, TenantConfig{Name: "diff"}},
		{"memory-goroutines", Options{NoEventLoop: true}, TenantConfig{Name: "diff"}},
		{"durable", Options{}, TenantConfig{Name: "diff", Store: StoreDurable, Dir: t.TempDir()}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			_, addrs := startTier(t, mode.opts, mode.tenant)
			differential(t, mc, addrs["diff"])
		})
	}
}

func differential(t *testing.T, mc, lbd string) {
	for _, sc := range differentialScripts {
		t.Run(sc.name, func(t *testing.T) {
			for _, addr := range []string{mc, lbd} {
				exchange(t, addr, "flush_all\r\n")
			}
			want := normalize(exchange(t, mc, sc.script))
			got := normalize(exchange(t, lbd, sc.script))
			// Only the cross-protocol script ends with the connection closed.
			if !strings.HasSuffix(want, "MN\r\n") && sc.name != "cross-protocol" {
				t.Fatalf("memcached reply incomplete: %q", trunc(want))
			}
			if got != want {
				t.Errorf("script %q\nmemcached: %q\nlbd:       %q", trunc(sc.script), trunc(want), trunc(got))
			}
		})
	}
}

func trunc(s string) string {
	if len(s) > 400 {
		return s[:400] + "..."
	}
	return s
}

// TestDifferentialSlabClasses stores items of many sizes in memcached and
// in lbd and wants `stats items` to put the same number of them in the
// same slab classes.
func TestDifferentialSlabClasses(t *testing.T) {
	mc := startMemcached(t, 64)
	_, addrs := startTier(t, Options{}, TenantConfig{Name: "diff"})
	var b strings.Builder
	for i, size := range []int{1, 5, 36, 37, 60, 100, 200, 500, 1000, 3000, 10000, 100000, 400000, 600000} {
		for j := range 3 {
			flags := j % 2
			v := strings.Repeat("v", size)
			b.WriteString("set k" + strconv.Itoa(i) + "-" + strconv.Itoa(j) + " " + strconv.Itoa(flags) + " 0 " + strconv.Itoa(size) + " noreply\r\n" + v + "\r\n")
		}
	}
	classes := func(addr string) map[string]string {
		exchange(t, addr, "flush_all\r\n")
		out := exchange(t, addr, b.String()+"stats items\r\n")
		got := map[string]string{}
		for _, l := range strings.Split(string(out), "\r\n") {
			if f := strings.Fields(l); len(f) == 3 && strings.HasSuffix(f[1], ":number") {
				got[f[1]] = f[2]
			}
		}
		return got
	}
	want, got := classes(mc), classes(addrs["diff"])
	if len(want) == 0 || !maps.Equal(want, got) {
		t.Errorf("items per class:\nmemcached %v\nlbd       %v", want, got)
	}
}
