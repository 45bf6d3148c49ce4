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
	"io"
	"math/rand/v2"
	"net"
	"net/http"
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
	tr := &http.Transport{MaxIdleConnsPerHost: o.Conns, MaxConnsPerHost: o.Conns, DisableCompression: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	restGet := func(accept string) func() (op, func(), error) {
		return func() (op, func(), error) {
			return func(k string) error {
				req, _ := http.NewRequest(http.MethodGet, o.REST+"/v1/keys/"+k, nil)
				req.Header.Set("Authorization", "Bearer "+o.Token)
				req.Header.Set("Accept", accept)
				return doHTTP(hc, req)
			}, func() {}, nil
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
		{"REST GET (raw bytes)", restGet("application/octet-stream")},
		{"REST GET (JSON)", restGet("application/json")},
		{"memcached set", func() (op, func(), error) {
			c, err := dialMC(o.MC)
			if err != nil {
				return nil, nil, err
			}
			return func(k string) error { return c.set(k, value) }, func() { c.c.Close() }, nil
		}},
		{"REST PUT (raw bytes)", func() (op, func(), error) {
			return func(k string) error {
				req, _ := http.NewRequest(http.MethodPut, o.REST+"/v1/keys/"+k, bytes.NewReader(value))
				req.Header.Set("Authorization", "Bearer "+o.Token)
				req.Header.Set("Content-Type", "application/octet-stream")
				return doHTTP(hc, req)
			}, func() {}, nil
		}},
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

func doHTTP(hc *http.Client, req *http.Request) error {
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s", req.Method, req.URL.Path, resp.Status)
	}
	return err
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
