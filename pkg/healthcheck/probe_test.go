package healthcheck

import (
	"bufio"
	"context"
	"crypto/md5"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/lbd-project/lbd/internal/testutil"
)

// listen returns a loopback listener that accepts and closes connections.
func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	testutil.Serve(t, ln, func(c net.Conn) { c.Close() })
	return ln
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.MustParseAddrPort(ln.Addr().String())
	ln.Close()
	return addr
}

// fakeMemcached answers each line with reply.
func fakeMemcached(t *testing.T, reply string) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	testutil.Serve(t, ln, func(c net.Conn) {
		go func() {
			defer c.Close()
			line, err := bufio.NewReader(c).ReadString('\n')
			if err != nil || line != "version\r\n" {
				io.WriteString(c, "ERROR\r\n")
				return
			}
			io.WriteString(c, reply)
		}()
	})
	return netip.MustParseAddrPort(ln.Addr().String())
}

func addrOf(t *testing.T, s string) netip.AddrPort {
	t.Helper()
	return netip.MustParseAddrPort(strings.TrimPrefix(strings.TrimPrefix(s, "http://"), "https://"))
}

func TestProbes(t *testing.T) {
	const body = "healthy\n"
	sum := md5.Sum([]byte(body))
	digest := hex.EncodeToString(sum[:])
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body) })
	mux.HandleFunc("/fail", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", 503) })
	mux.HandleFunc("/host", func(w http.ResponseWriter, r *http.Request) {
		if r.Host != "kvs.example" {
			http.Error(w, "wrong host "+r.Host, 404)
		}
	})
	web := httptest.NewServer(mux)
	t.Cleanup(web.Close)
	tlsWeb := httptest.NewTLSServer(mux)
	t.Cleanup(tlsWeb.Close)
	webAddr, tlsAddr := addrOf(t, web.URL), addrOf(t, tlsWeb.URL)
	open := netip.MustParseAddrPort(listen(t).Addr().String())
	closed := closedAddr(t)

	httpSpec := func(h HTTPSpec) Spec { return Spec{Type: HTTP, HTTP: h} }
	tests := []struct {
		name   string
		addr   netip.AddrPort
		spec   Spec
		wantOK bool
	}{
		{"tcp open", open, Spec{Type: TCP}, true},
		{"tcp closed", closed, Spec{Type: TCP}, false},
		{"tcp connect_addr override", closed, Spec{Type: TCP, ConnectAddr: open}, true},
		{"http 2xx by default", webAddr, httpSpec(HTTPSpec{Path: "/ok"}), true},
		{"http 503", webAddr, httpSpec(HTTPSpec{Path: "/fail"}), false},
		{"http 503 listed", webAddr, httpSpec(HTTPSpec{Path: "/fail", StatusCodes: []int{503}}), true},
		{"http 200 not listed", webAddr, httpSpec(HTTPSpec{Path: "/ok", StatusCodes: []int{204}}), false},
		{"http digest match", webAddr, httpSpec(HTTPSpec{Path: "/ok", Digest: strings.ToUpper(digest)}), true},
		{"http digest mismatch", webAddr, httpSpec(HTTPSpec{Path: "/ok", Digest: strings.Repeat("0", 32)}), false},
		{"http host header", webAddr, httpSpec(HTTPSpec{Path: "/host", Host: "kvs.example"}), true},
		{"http without host header", webAddr, httpSpec(HTTPSpec{Path: "/host"}), false},
		{"http closed", closed, httpSpec(HTTPSpec{}), false},
		{"https (ssl_get)", tlsAddr, httpSpec(HTTPSpec{Path: "/ok", TLS: true, Digest: digest}), true},
		{"plain http to https", tlsAddr, httpSpec(HTTPSpec{Path: "/ok"}), false},
		{"memcached", fakeMemcached(t, "VERSION 1.6.21\r\n"), Spec{Type: Memcached}, true},
		{"memcached wrong reply", fakeMemcached(t, "SERVER_ERROR busy\r\n"), Spec{Type: Memcached}, false},
		{"memcached silent peer", open, Spec{Type: Memcached}, false},
		{"memcached closed", closed, Spec{Type: Memcached}, false},
	}
	c := New(Options{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.spec.ConnectTimeout = 5 * time.Second
			err := c.probe(context.Background(), Target{ID: "x", Addr: tt.addr, Spec: tt.spec})
			if (err == nil) != tt.wantOK {
				t.Fatalf("probe error %v, want ok=%v", err, tt.wantOK)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "healthcheck: ") {
				t.Fatalf("error %q lacks context", err)
			}
		})
	}
}

func TestProbeTimeout(t *testing.T) {
	// A listener that accepts but never answers: the memcached probe must
	// give up after ConnectTimeout.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	c := New(Options{})
	spec := Spec{Type: Memcached, ConnectTimeout: 50 * time.Millisecond}
	err = c.probe(context.Background(), Target{ID: "x", Addr: netip.MustParseAddrPort(ln.Addr().String()), Spec: spec})
	if err == nil {
		t.Fatal("probe of a silent server succeeded")
	}
}

// TestCheckerRealListener runs the whole Checker on the real clock against
// a loopback listener that is closed and reopened.
func TestCheckerRealListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.MustParseAddrPort(ln.Addr().String())
	serve := func(ln net.Listener) {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}
	go serve(ln)

	trs := make(chan Transition, 10)
	c := New(Options{OnTransition: func(tr Transition) { trs <- tr }})
	spec := Spec{Type: TCP, ConnectTimeout: time.Second, DelayLoop: 20 * time.Millisecond,
		DelayBeforeRetry: 10 * time.Millisecond, Retry: 1, Warmup: 20 * time.Millisecond}
	if err := c.Update([]Target{{ID: "rs", Addr: addr, Spec: spec}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()

	waitFor(t, "a first check", func() bool { st, _ := c.State("rs"); return st.Checks > 0 })
	ln.Close()
	if tr := nextTransition(t, trs); tr.Up {
		t.Fatalf("transition %+v, want down", tr)
	}
	ln2, err := net.Listen("tcp", addr.String())
	if err != nil {
		t.Skipf("cannot listen on %s again: %v", addr, err)
	}
	defer ln2.Close()
	go serve(ln2)
	if tr := nextTransition(t, trs); !tr.Up {
		t.Fatalf("transition %+v, want up", tr)
	}
}

func nextTransition(t *testing.T, trs <-chan Transition) Transition {
	t.Helper()
	select {
	case tr := <-trs:
		return tr
	case <-time.After(20 * time.Second):
		t.Fatal("timed out waiting for a transition")
		return Transition{}
	}
}

func TestIsMD5Hex(t *testing.T) {
	for s, want := range map[string]bool{
		"d41d8cd98f00b204e9800998ecf8427e":  true,
		"D41D8CD98F00B204E9800998ECF8427E":  true,
		"d41d8cd98f00b204e9800998ecf8427":   false,
		"d41d8cd98f00b204e9800998ecf8427e0": false,
		"g41d8cd98f00b204e9800998ecf8427e":  false,
		"":                                  false,
	} {
		if got := isMD5Hex(s); got != want {
			t.Errorf("isMD5Hex(%q) = %v, want %v", s, got, want)
		}
	}
}
