package kvs

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// browserPost is what a web page can make a browser send to a memcached
// port: an HTTP request whose body holds memcached commands.
const browserPost = "POST / HTTP/1.1\r\nHost: 127.0.0.1:11211\r\nContent-Type: text/plain\r\nContent-Length: 32\r\n\r\nset pwned 0 0 3\r\nabc\r\nget pwned\r\n"

func TestCrossProtocolSession(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"HTTP request line closes without a reply", browserPost, ""},
		{"HTTP/ as the last token of an unknown command", "version\r\nfoo bar HTTP/1.0\r\nversion\r\n", "VERSION " + Version + "\r\n"},
		{"HTTP/ elsewhere is an ordinary error", "HTTP/1.1 200 OK\r\nversion\r\n", "ERROR\r\nVERSION " + Version + "\r\n"},
		{"a known command ending in HTTP/ runs", "get HTTP/1.1\r\n", "END\r\n"},
		{"no newline past 2048 bytes closes", strings.Repeat("x", maxLineNoGet+1), ""},
		{"a long line with its newline runs", strings.Repeat("x", maxLineNoGet+100) + "\r\nversion\r\n", "ERROR\r\nVERSION " + Version + "\r\n"},
		{"a long get goes on", "set k 0 0 1\r\nv\r\nget " + strings.Repeat("k ", maxLineNoGet) + "\r\n", "STORED\r\n" + strings.Repeat("VALUE k 0 1\r\nv\r\n", maxLineNoGet) + "END\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := testService(t, newFakeClock())
			if got := run(svc, tt.in); got != tt.want {
				t.Errorf("got %q, want %q", trunc64(got), trunc64(tt.want))
			}
			if _, ok := svc.store.Get([]byte("pwned"), 0); ok {
				t.Error("the request's body was run as commands: pwned is stored")
			}
		})
	}
}

// TestCrossProtocolServer sends the browser's request to a real tier,
// over TCP, event loops and goroutines alike: the connection closes with
// no reply and nothing is stored. A line without a newline past 2048
// bytes that is not a get closes the connection too.
func TestCrossProtocolServer(t *testing.T) {
	for _, mode := range []struct {
		name string
		opts Options
	}{{"event loops", Options{}}, {"goroutines", Options{NoEventLoop: true}}} {
		t.Run(mode.name, func(t *testing.T) {
			_, addrs := startTier(t, mode.opts, TenantConfig{Name: "x"})
			addr := addrs["x"]
			if got := sendUntilClosed(t, addr, browserPost); got != "" {
				t.Errorf("reply to an HTTP request: %q", got)
			}
			if got := sendUntilClosed(t, addr, strings.Repeat("y", 3000)); got != "" {
				t.Errorf("reply to a 3000-byte line with no newline: %q", got)
			}
			c := dialT(t, addr)
			// A get past 2048 bytes without its newline yet is kept open:
			// the rest of its line gets an answer.
			io.WriteString(c, "get "+strings.Repeat("k", 200)+" "+strings.Repeat("a ", 1500))
			io.WriteString(c, "b\r\nget pwned\r\n")
			if got := readN(t, c, len("END\r\nEND\r\n")); got != "END\r\nEND\r\n" {
				t.Errorf("long get, then get pwned: %q (want two ENDs: nothing stored)", got)
			}
		})
	}
}

func dialT(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second)) // a stuck test's net, not a speed goal
	return c
}

// sendUntilClosed writes in and returns what the server sent until it
// closed the connection.
func sendUntilClosed(t *testing.T, addr, in string) string {
	t.Helper()
	c := dialT(t, addr)
	io.WriteString(c, in)
	b, err := io.ReadAll(c)
	if err != nil && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("the server did not close the connection: %v (read %q)", err, b)
	}
	return string(b)
}

func readN(t *testing.T, c net.Conn, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("read: %v (got %q)", err, b)
	}
	return string(b)
}
