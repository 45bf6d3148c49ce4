// Package memcload is a closed-loop load generator for memcached-protocol
// servers: N connections each send a get/set mix (or multi-gets) and time
// every request, so that one tool measures memcached and lbd's KVS alike.
package memcload

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"time"
)

// Options describe a load run.
type Options struct {
	// Addr is the server's host:port.
	Addr string
	// Conns is the number of concurrent connections (default 32).
	Conns int
	// Duration is how long to measure (default 10 s).
	Duration time.Duration
	// Keys is the size of the key space (default 10000).
	Keys int
	// ValueSize is the size of values written (default 64).
	ValueSize int
	// GetRatio is the fraction of requests that are gets, from 0 (sets
	// only) to 1 (gets only); the zero value means sets only, the flag's
	// default is 0.9.
	GetRatio float64
	// MultiGet is the number of keys per get request (default 1).
	MultiGet int
	// Pipeline is the number of requests a connection sends before
	// reading their replies (default 1).
	Pipeline int
	// KeyPrefix prefixes every key.
	KeyPrefix string
	// Seed seeds the request mix.
	Seed uint64
}

func (o *Options) defaults() {
	if o.Conns <= 0 {
		o.Conns = 32
	}
	if o.Duration <= 0 {
		o.Duration = 10 * time.Second
	}
	if o.Keys <= 0 {
		o.Keys = 10000
	}
	if o.ValueSize <= 0 {
		o.ValueSize = 64
	}
	if o.MultiGet <= 0 {
		o.MultiGet = 1
	}
	if o.Pipeline <= 0 {
		o.Pipeline = 1
	}
	if o.KeyPrefix == "" {
		o.KeyPrefix = "memcload:"
	}
}

// Result is the outcome of a run.
type Result struct {
	// Requests counts completed requests (a multi-get is one).
	Requests uint64
	// Keys counts keys read or written.
	Keys uint64
	// Hits and Misses count keys found and not found by gets.
	Hits, Misses uint64
	// Errors counts error replies.
	Errors uint64
	// Elapsed is the measured time.
	Elapsed time.Duration
	// RequestsPerSec and KeysPerSec are the throughputs.
	RequestsPerSec, KeysPerSec float64
	// P50, P99, P999 and Max are request latencies (a pipelined batch is
	// timed as a whole and counted once per request in it).
	P50, P99, P999, Max time.Duration
}

// String formats the result on one line.
func (r Result) String() string {
	return fmt.Sprintf("requests/s=%.0f keys/s=%.0f p50=%s p99=%s p999=%s max=%s hits=%d misses=%d errors=%d",
		r.RequestsPerSec, r.KeysPerSec, r.P50, r.P99, r.P999, r.Max, r.Hits, r.Misses, r.Errors)
}

// Prefill stores every key of the key space once, so that gets hit.
func Prefill(ctx context.Context, o Options) error {
	o.defaults()
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", o.Addr)
	if err != nil {
		return fmt.Errorf("memcload: prefill: %w", err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	w := bufio.NewWriter(c)
	r := bufio.NewReader(c)
	val := value(o.ValueSize)
	const batch = 100
	for i := 0; i < o.Keys; i += batch {
		n := min(batch, o.Keys-i)
		// The batch's last set, with a reply, ends it (not mn: twemproxy
		// has no meta commands).
		for j := range n {
			noreply := " noreply"
			if j == n-1 {
				noreply = ""
			}
			fmt.Fprintf(w, "set %s%d 0 0 %d%s\r\n%s\r\n", o.KeyPrefix, i+j, len(val), noreply, val)
		}
		if err := w.Flush(); err != nil {
			return fmt.Errorf("memcload: prefill: %w", err)
		}
		line, err := r.ReadString('\n')
		if err != nil || line != "STORED\r\n" {
			return fmt.Errorf("memcload: prefill: reply %q: %v", line, err)
		}
	}
	return nil
}

func value(n int) []byte {
	v := make([]byte, n)
	for i := range v {
		v[i] = 'a' + byte(i%26)
	}
	return v
}

// Run drives the server for o.Duration and returns what it measured.
func Run(ctx context.Context, o Options) (Result, error) {
	o.defaults()
	if o.GetRatio < 0 || o.GetRatio > 1 {
		return Result{}, fmt.Errorf("memcload: get ratio %g is not between 0 and 1", o.GetRatio)
	}
	conns := make([]net.Conn, 0, o.Conns)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range o.Conns {
		c, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "tcp", o.Addr)
		if err != nil {
			return Result{}, fmt.Errorf("memcload: dial %s: %w", o.Addr, err)
		}
		conns = append(conns, c)
	}
	ctx, cancel := context.WithTimeout(ctx, o.Duration)
	defer cancel()
	workers := make([]*worker, len(conns))
	var wg sync.WaitGroup
	start := time.Now()
	for i, c := range conns {
		w := &worker{o: &o, c: c, rng: rand.New(rand.NewPCG(o.Seed, uint64(i))), val: value(o.ValueSize)}
		workers[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.run(ctx)
		}()
	}
	<-ctx.Done()
	// Unblock workers waiting on replies.
	for _, c := range conns {
		c.SetDeadline(time.Now())
	}
	wg.Wait()
	elapsed := time.Since(start)
	var res Result
	var h histogram
	var firstErr error
	for _, w := range workers {
		res.Requests += w.requests
		res.Keys += w.keys
		res.Hits += w.hits
		res.Misses += w.misses
		res.Errors += w.errors
		h.merge(&w.hist)
		if w.err != nil && firstErr == nil {
			firstErr = w.err
		}
	}
	res.Elapsed = elapsed
	res.RequestsPerSec = float64(res.Requests) / elapsed.Seconds()
	res.KeysPerSec = float64(res.Keys) / elapsed.Seconds()
	res.P50, res.P99, res.P999, res.Max = h.quantile(0.5), h.quantile(0.99), h.quantile(0.999), h.max
	if res.Requests == 0 && firstErr != nil {
		return res, fmt.Errorf("memcload: no request completed: %w", firstErr)
	}
	return res, nil
}

type worker struct {
	o                                    *Options
	c                                    net.Conn
	rng                                  *rand.Rand
	val                                  []byte
	hist                                 histogram
	requests, keys, hits, misses, errors uint64
	err                                  error
	kinds                                []bool // per pipelined request: is a get
}

func (w *worker) run(ctx context.Context) {
	o := w.o
	bw := bufio.NewWriterSize(w.c, 64<<10)
	br := bufio.NewReaderSize(w.c, 64<<10)
	buf := make([]byte, 0, 4096)
	for ctx.Err() == nil {
		w.kinds = w.kinds[:0]
		for range o.Pipeline {
			buf = buf[:0]
			if w.rng.Float64() < o.GetRatio {
				buf = append(buf, "get"...)
				for range o.MultiGet {
					buf = append(buf, ' ')
					buf = append(buf, o.KeyPrefix...)
					buf = strconv.AppendInt(buf, int64(w.rng.IntN(o.Keys)), 10)
				}
				buf = append(buf, '\r', '\n')
				w.kinds = append(w.kinds, true)
			} else {
				buf = append(buf, "set "...)
				buf = append(buf, o.KeyPrefix...)
				buf = strconv.AppendInt(buf, int64(w.rng.IntN(o.Keys)), 10)
				buf = append(buf, " 0 0 "...)
				buf = strconv.AppendInt(buf, int64(len(w.val)), 10)
				buf = append(buf, '\r', '\n')
				buf = append(buf, w.val...)
				buf = append(buf, '\r', '\n')
				w.kinds = append(w.kinds, false)
			}
			bw.Write(buf)
		}
		t0 := time.Now()
		if err := bw.Flush(); err != nil {
			w.fail(ctx, err)
			return
		}
		for _, isGet := range w.kinds {
			if err := w.readReply(br, isGet); err != nil {
				w.fail(ctx, err)
				return
			}
		}
		d := time.Since(t0)
		for range w.kinds {
			w.hist.add(d)
		}
		w.requests += uint64(len(w.kinds))
	}
}

func (w *worker) fail(ctx context.Context, err error) {
	if ctx.Err() == nil {
		w.err = err
	}
}

var (
	replyEnd    = []byte("END\r\n")
	replyStored = []byte("STORED\r\n")
	replyValue  = []byte("VALUE ")
)

func (w *worker) readReply(br *bufio.Reader, isGet bool) error {
	if !isGet {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		w.keys++
		if !bytes.Equal(line, replyStored) {
			w.errors++
		}
		return nil
	}
	found := uint64(0)
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if bytes.Equal(line, replyEnd) {
			break
		}
		if !bytes.HasPrefix(line, replyValue) {
			w.errors++
			return errors.New("memcload: unexpected reply " + strconv.Quote(string(line)))
		}
		// VALUE <key> <flags> <bytes> [<cas>]\r\n
		f := bytes.Fields(line)
		if len(f) < 4 {
			return errors.New("memcload: bad VALUE line")
		}
		n, err := strconv.Atoi(string(f[3]))
		if err != nil {
			return fmt.Errorf("memcload: bad VALUE length: %w", err)
		}
		if _, err := br.Discard(n + 2); err != nil {
			return err
		}
		found++
	}
	n := uint64(w.o.MultiGet)
	w.keys += n
	w.hits += found
	w.misses += n - min(found, n)
	return nil
}
