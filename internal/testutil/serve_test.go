package testutil

import (
	"bufio"
	"net"
	"testing"
)

func TestServe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	Serve(t, ln, func(c net.Conn) {
		c.Write([]byte("ok\n"))
		c.Close()
	})
	for range 2 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if err != nil || line != "ok\n" {
			t.Fatalf("got %q, %v; want \"ok\\n\"", line, err)
		}
	}
}
