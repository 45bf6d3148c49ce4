// Package restload is the load generator of `make bench-rest`: it drives
// a tenant's memcached port and its REST API in the same run, with the
// same keys, the same number of connections and the same closed loop (one
// request in flight per connection), and reports each side's throughput
// and latency percentiles.
package restload

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Options configure a run.
type Options struct {
	// MC is the memcached port (host:port); REST the API's base URL.
	MC, REST string
	// Token is the tenant's credential or API token.
	Token string
	// Conns is the number of connections per side.
	Conns int
	// Duration is the length of each phase.
	Duration time.Duration
	// Keys is the number of keys; ValueSize their value size.
	Keys, ValueSize int
}

// Result is one phase's figures.
type Result struct {
	Name      string
	Ops       int
	Errors    int
	OpsPerSec float64
	P50, P99  time.Duration
}

// op is one request on one connection.
type op func(key string) error

// Run preloads the keys over memcached, then runs each phase in turn:
// memcached get, REST get (raw bytes), REST get (JSON), memcached set,
// REST put.
func Run(ctx context.Context, o Options) ([]Result, error) {
	if o.Conns <= 0 || o.Keys <= 0 || o.Duration <= 0 {
		return nil, errors.New("restload: conns, keys and duration must be positive")
	}
	value := bytes.Repeat([]byte("v"), o.ValueSize)
	pre, err := dialMC(o.MC)
	if err != nil {
		return nil, err
	}
	for i := range o.Keys {
		if err := pre.set(keyOf(i), value); err != nil {
			return nil, fmt.Errorf("restload: preload: %w", err)
		}
	}
	pre.c.Close()
	u, err := url.Parse(o.REST)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("restload: REST URL %q: want http://host:port", o.REST)
	}
	// The HTTP side is a lean HTTP/1.1 keep-alive client, as wrk is: one
	// connection, request bytes out, the response read in place, no
	// goroutines of its own (Go's http.Client costs the shared CPUs far
	// more per request than the memcached client does).
	restConn := func(method, accept string, body []byte) func() (op, func(), error) {
		return func() (op, func(), error) {
			c, err := dialHTTP(u.Host)
			if err != nil {
				return nil, nil, err
			}
			return func(k string) error { return c.do(method, "/v1/keys/"+k, o.Token, accept, body) }, func() { c.c.Close() }, nil
		}
	}
	phases := []struct {
		name string
		mk   func() (op, func(), error)
	}{
		{"memcached get", func() (op, func(), error) {
			c, err := dialMC(o.MC)
			if err != nil {
				return nil, nil, err
			}
			return c.get, func() { c.c.Close() }, nil
		}},
		{"REST GET (raw bytes)", restConn(http.MethodGet, "application/octet-stream", nil)},
		{"REST GET (JSON)", restConn(http.MethodGet, "application/json", nil)},
		{"memcached set", func() (op, func(), error) {
			c, err := dialMC(o.MC)
			if err != nil {
				return nil, nil, err
			}
			return func(k string) error { return c.set(k, value) }, func() { c.c.Close() }, nil
		}},
		{"REST PUT (raw bytes)", restConn(http.MethodPut, "application/json", value)},
	}
	var out []Result
	for _, p := range phases {
		r, err := phase(ctx, p.name, o, p.mk)
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
	return out, nil
}

func keyOf(i int) string { return "bench:" + strconv.Itoa(i) }

// phase runs o.Conns loops of one kind for o.Duration.
func phase(ctx context.Context, name string, o Options, mk func() (op, func(), error)) (Result, error) {
	var mu sync.Mutex
	var lat []time.Duration
	res := Result{Name: name}
	var wg sync.WaitGroup
	var firstErr error
	// Every connection is opened and used once (a warm-up, not counted)
	// before the clock starts.
	var ready sync.WaitGroup
	begin := make(chan struct{})
	for w := range o.Conns {
		f, closeFn, err := mk()
		if err != nil {
			close(begin)
			return res, fmt.Errorf("restload: %s: %w", name, err)
		}
		ready.Add(1)
		wg.Go(func() {
			defer closeFn()
			f(keyOf(w % o.Keys))
			ready.Done()
			<-begin
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			local := make([]time.Duration, 0, 1<<16)
			errs := 0
			var e error
			for ctx.Err() == nil {
				k := keyOf(rng.IntN(o.Keys))
				t0 := time.Now()
				if err := f(k); err != nil {
					errs++
					e = err
					if errs > 100 {
						break
					}
					continue
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, local...)
			res.Errors += errs
			if e != nil && firstErr == nil {
				firstErr = e
			}
			mu.Unlock()
		})
	}
	ready.Wait()
	ctx, cancel := context.WithTimeout(ctx, o.Duration)
	defer cancel()
	start := time.Now()
	close(begin)
	wg.Wait()
	took := time.Since(start)
	if res.Errors > 0 && len(lat) == 0 {
		return res, fmt.Errorf("restload: %s: %w", name, firstErr)
	}
	slices.Sort(lat)
	res.Ops = len(lat)
	res.OpsPerSec = float64(len(lat)) / took.Seconds()
	if len(lat) > 0 {
		res.P50, res.P99 = lat[len(lat)/2], lat[len(lat)*99/100]
	}
	return res, nil
}

// httpConn is one keep-alive HTTP/1.1 connection.
type httpConn struct {
	c    net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
	host string
}

func dialHTTP(host string) (*httpConn, error) {
	c, err := net.DialTimeout("tcp", host, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("restload: %w", err)
	}
	return &httpConn{c: c, r: bufio.NewReaderSize(c, 64<<10), w: bufio.NewWriter(c), host: host}, nil
}

// do sends one request and reads its response, which must be 200 with a
// Content-Length (lbd's API always sends one).
func (h *httpConn) do(method, path, token, accept string, body []byte) error {
	fmt.Fprintf(h.w, "%s %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nAccept: %s\r\n", method, path, h.host, token, accept)
	if body != nil {
		fmt.Fprintf(h.w, "Content-Type: application/octet-stream\r\nContent-Length: %d\r\n", len(body))
	}
	h.w.WriteString("\r\n")
	h.w.Write(body)
	if err := h.w.Flush(); err != nil {
		return err
	}
	status, err := h.r.ReadString('\n')
	if err != nil {
		return err
	}
	n := -1
	for {
		l, err := h.r.ReadString('\n')
		if err != nil {
			return err
		}
		if l == "\r\n" {
			break
		}
		if k, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(k, "Content-Length") {
			if n, err = strconv.Atoi(strings.TrimSpace(v)); err != nil {
				return fmt.Errorf("%s %s: bad Content-Length %q", method, path, v)
			}
		}
	}
	if n < 0 {
		return fmt.Errorf("%s %s: no Content-Length", method, path)
	}
	if _, err := h.r.Discard(n); err != nil {
		return err
	}
	if !strings.HasPrefix(status, "HTTP/1.1 200 ") {
		return fmt.Errorf("%s %s: %s", method, path, strings.TrimSpace(status))
	}
	return nil
}

// mcConn is a memcached text-protocol connection.
type mcConn struct {
	c net.Conn
	r *bufio.Reader
	w *bufio.Writer
}

func dialMC(addr string) (*mcConn, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("restload: %w", err)
	}
	return &mcConn{c: c, r: bufio.NewReaderSize(c, 64<<10), w: bufio.NewWriter(c)}, nil
}

func (m *mcConn) set(k string, v []byte) error {
	fmt.Fprintf(m.w, "set %s 0 0 %d\r\n", k, len(v))
	m.w.Write(v)
	m.w.WriteString("\r\n")
	if err := m.w.Flush(); err != nil {
		return err
	}
	l, err := m.r.ReadString('\n')
	if err != nil {
		return err
	}
	if l != "STORED\r\n" {
		return fmt.Errorf("set %s: %q", k, strings.TrimSpace(l))
	}
	return nil
}

func (m *mcConn) get(k string) error {
	m.w.WriteString("get " + k + "\r\n")
	if err := m.w.Flush(); err != nil {
		return err
	}
	l, err := m.r.ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(l, "VALUE ") {
		return fmt.Errorf("get %s: %q", k, strings.TrimSpace(l))
	}
	f := strings.Fields(l)
	n, err := strconv.Atoi(f[len(f)-1])
	if err != nil {
		return fmt.Errorf("get %s: %q", k, l)
	}
	if _, err := m.r.Discard(n + 2); err != nil {
		return err
	}
	end, err := m.r.ReadString('\n')
	if err != nil || end != "END\r\n" {
		return fmt.Errorf("get %s: no END (%q, %v)", k, end, err)
	}
	return nil
}
