package testutil

import (
	"net"
	"testing"
)

// Serve accepts connections on ln until it is closed, passing each one to
// handle in turn on a single goroutine; handle owns the connection and
// starts a goroutine of its own if it must not block the next Accept. ln is
// closed at the end of the test (closing it earlier is fine too).
func Serve(t testing.TB, ln net.Listener, handle func(net.Conn)) {
	t.Helper()
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			handle(c)
		}
	}()
}
