package kvs

import (
	"bytes"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"
)

// echoProto answers every byte with itself, uppercased if a letter, on
// the loops; "!" is answered on a goroutine (Slow), "q" closes.
type echoProto struct{}

func (echoProto) NewConn(netip.AddrPort) ProtoConn { return echoConn{} }

type echoConn struct{}

func (echoConn) Serve(in, out []byte) Step {
	for i, c := range in {
		switch c {
		case '!':
			return Step{Out: out, N: i + 1, Slow: func() ([]byte, bool) { return []byte("slow"), false }}
		case 'q':
			return Step{Out: out, N: len(in), Close: true}
		case 'B':
			out = append(out, bytes.Repeat([]byte("b"), bigAnswer)...)
			continue
		}
		out = append(out, bytes.ToUpper([]byte{c})...)
	}
	return Step{Out: out, N: len(in)}
}

// bigAnswer is more than a loopback socket holds.
const bigAnswer = 16 << 20

// TestProtoBigAnswerThenClose: an answer bigger than the socket holds,
// then a close, arrives whole before the connection closes.
func TestProtoBigAnswerThenClose(t *testing.T) {
	tier := New(nil, Options{EventLoops: 1})
	defer tier.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tier.ServeProto(ln, echoProto{}, ProtoOptions{})
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).SetReadBuffer(64 << 10)
	c.SetDeadline(time.Now().Add(20 * time.Second))
	io.WriteString(c, "aBq")
	time.Sleep(200 * time.Millisecond) // the loop's write blocks meanwhile
	b, err := io.ReadAll(c)
	if err != nil || len(b) != 1+bigAnswer {
		t.Fatalf("%d bytes, %v; want %d", len(b), err, 1+bigAnswer)
	}
}

// TestProtoServerOnLoops: a protocol served by the tier's loops answers in
// order across Slow steps, closes when told, and the tier's Close closes
// it and its connections.
func TestProtoServerOnLoops(t *testing.T) {
	for _, opts := range []Options{{EventLoops: 1}, {NoEventLoop: true}} {
		tier := New(nil, opts)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		tier.ServeProto(ln, echoProto{}, ProtoOptions{})
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, "ab!cd!ef")
		want := "ABslowCDslowEF"
		got := make([]byte, len(want))
		if _, err := io.ReadFull(c, got); err != nil || string(got) != want {
			t.Fatalf("%+v: %q %v, want %q", opts, got, err, want)
		}
		io.WriteString(c, "xq")
		if b, err := io.ReadAll(c); err != nil || string(b) != "X" {
			t.Fatalf("%+v: after q: %q %v", opts, b, err)
		}
		c2, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c2.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c2, "z")
		io.ReadFull(c2, make([]byte, 1))
		tier.Close()
		if n, err := c2.Read(make([]byte, 1)); n != 0 || err == nil {
			t.Fatalf("%+v: connection open after the tier closed", opts)
		}
	}
}

// TestProtoIdleTimeout: a connection that sends nothing for IdleTimeout is
// closed, on the loops and on a goroutine; one that keeps sending stays.
func TestProtoIdleTimeout(t *testing.T) {
	for _, opts := range []Options{{EventLoops: 1}, {NoEventLoop: true}} {
		tier := New(nil, opts)
		defer tier.Close()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		tier.ServeProto(ln, echoProto{}, ProtoOptions{IdleTimeout: time.Second})
		idle, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		busy, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		closed := make(chan time.Duration)
		go func() {
			idle.SetReadDeadline(time.Now().Add(20 * time.Second))
			idle.Read(make([]byte, 1))
			closed <- time.Since(start)
		}()
		busy.SetDeadline(time.Now().Add(20 * time.Second))
		for range 25 { // 2.5 s of a byte every 100 ms
			time.Sleep(100 * time.Millisecond)
			if _, err := io.WriteString(busy, "a"); err != nil {
				t.Fatalf("%+v: busy connection: %v", opts, err)
			}
			if _, err := io.ReadFull(busy, make([]byte, 1)); err != nil {
				t.Fatalf("%+v: busy connection closed after %v: %v", opts, time.Since(start), err)
			}
		}
		if d := <-closed; d < 700*time.Millisecond || d > 15*time.Second {
			t.Fatalf("%+v: idle connection closed after %v", opts, d)
		}
		idle.Close()
		busy.Close()
	}
}
