package kvhistory

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Caller sends one request to the store and returns its reply; sent is
// false when the request surely ran nowhere (no connection).
type Caller func(req string) (reply string, sent bool, err error)

// Tally counts how the store answered the workers' requests.
type Tally struct {
	mu sync.Mutex
	// OK counts the answers memcached gives, ServerErrors the
	// "SERVER_ERROR ..." lines, Failures the requests that got no
	// answer (refused, reset, timed out).
	OK, ServerErrors, Failures int
	// Odds counts any other answer (a client must never see one), Odd
	// lists the first ones.
	Odds int
	Odd  []string
}

func (t *Tally) count(reply string, err error, valid bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case err != nil:
		t.Failures++
	case valid:
		t.OK++
	case strings.HasPrefix(reply, "SERVER_ERROR ") && strings.HasSuffix(reply, "\r\n") && strings.Count(reply, "\n") == 1:
		t.ServerErrors++
	default:
		if len(t.Odd) < 20 {
			t.Odd = append(t.Odd, reply)
		}
		t.Odds++
	}
}

// String sums the tally up.
func (t *Tally) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return fmt.Sprintf("%d answers, %d SERVER_ERROR, %d without an answer, %d odd", t.OK, t.ServerErrors, t.Failures, t.Odds)
}

// Worker is one client making random operations (4 in 10 gets, 2 sets, 2
// gets+cas, 2 incrs) and recording them in a history.
type Worker struct {
	Client   int
	Rng      *rand.Rand
	Call     Caller
	H        *History
	T        *Tally
	Strings  []string      // keys that get set and cas
	Counters []string      // keys that get incr (set to "0" first, with Set)
	Value    func() string // a value never written before
}

// call runs req; a "SERVER_ERROR lbd: unavailable" answer means the
// request ran nowhere, as a refused connection does.
func (w *Worker) call(req string, valid func(string) bool) (reply string, sent bool, err error) {
	reply, sent, err = w.Call(req)
	w.T.count(reply, err, err == nil && valid(reply))
	if strings.HasPrefix(reply, "SERVER_ERROR lbd: unavailable") {
		sent = false
	}
	return reply, sent, err
}

func isGet(r string) bool {
	return r == "END\r\n" || strings.HasPrefix(r, "VALUE ") && strings.HasSuffix(r, "\r\nEND\r\n")
}

func isLine(words ...string) func(string) bool {
	return func(r string) bool {
		for _, w := range words {
			if r == w+"\r\n" {
				return true
			}
		}
		return false
	}
}

func isIncr(r string) bool {
	if r == "NOT_FOUND\r\n" {
		return true
	}
	_, err := strconv.ParseUint(strings.TrimSuffix(r, "\r\n"), 10, 64)
	return err == nil
}

// Set sets key to val and records it; it reports whether it was stored.
func (w *Worker) Set(key, val string) bool {
	call := w.H.Now()
	reply, sent, err := w.call(fmt.Sprintf("set %s 0 0 %d\r\n%s\r\n", key, len(val), val), isLine("STORED"))
	ret := w.H.Now()
	if sent {
		w.H.Add(w.Client, Input{Op: "set", Key: key, Value: val}, call, Output{Unknown: err != nil || reply != "STORED\r\n"}, ret)
	}
	return err == nil && reply == "STORED\r\n"
}

// Get reads key and records it; it reports whether it got an answer.
func (w *Worker) Get(key string) bool {
	call := w.H.Now()
	reply, _, err := w.call("get "+key+"\r\n", isGet)
	ret := w.H.Now()
	if err != nil || !isGet(reply) {
		return false // a failed read changes nothing
	}
	out := Output{Found: reply != "END\r\n"}
	if out.Found {
		out.Value = strings.Split(reply, "\r\n")[1]
	}
	w.H.Add(w.Client, Input{Op: "get", Key: key}, call, out, ret)
	return true
}

// Step makes one random operation.
func (w *Worker) Step() {
	switch p := w.Rng.IntN(10); {
	case p < 4:
		if w.Rng.IntN(3) == 0 {
			w.Get(w.Counters[w.Rng.IntN(len(w.Counters))])
		} else {
			w.Get(w.Strings[w.Rng.IntN(len(w.Strings))])
		}
	case p < 6:
		w.Set(w.Strings[w.Rng.IntN(len(w.Strings))], w.Value())
	case p < 8: // gets, then cas with its unique
		k := w.Strings[w.Rng.IntN(len(w.Strings))]
		reply, _, err := w.call("gets "+k+"\r\n", isGet)
		if err != nil || !strings.HasPrefix(reply, "VALUE ") || !isGet(reply) {
			return
		}
		lines := strings.Split(reply, "\r\n")
		f := strings.Fields(lines[0])
		if len(f) != 5 {
			return
		}
		expect, val := lines[1], w.Value()
		call := w.H.Now()
		reply, sent, err := w.call(fmt.Sprintf("cas %s 0 0 %d %s\r\n%s\r\n", k, len(val), f[4], val), isLine("STORED", "EXISTS", "NOT_FOUND"))
		ret := w.H.Now()
		if !sent {
			return
		}
		out := Output{Result: strings.TrimSpace(reply)}
		out.Unknown = err != nil || !isLine("STORED", "EXISTS", "NOT_FOUND")(reply)
		w.H.Add(w.Client, Input{Op: "cas", Key: k, Value: val, Expect: expect}, call, out, ret)
	default:
		k := w.Counters[w.Rng.IntN(len(w.Counters))]
		call := w.H.Now()
		reply, sent, err := w.call("incr "+k+" 1\r\n", isIncr)
		ret := w.H.Now()
		if !sent {
			return
		}
		out := Output{}
		switch r := strings.TrimSpace(reply); {
		case err != nil || !isIncr(reply):
			out.Unknown = true
		case r == "NOT_FOUND":
			out.Result = r
		default:
			out.Value = r
		}
		w.H.Add(w.Client, Input{Op: "incr", Key: k}, call, out, ret)
	}
}

// Pool is a memcached text-protocol client of several nodes for one
// worker: each call goes to a random node, on a new connection or, half
// the time, on one kept from an earlier call to that node.
type Pool struct {
	Addrs   []string
	Rng     *rand.Rand
	Timeout time.Duration // per request, dial included
	// Last is the address of the last Call.
	Last string
	idle map[string][]*poolConn
}

type poolConn struct {
	c  net.Conn
	br *bufio.Reader
}

// Call is a Caller.
func (p *Pool) Call(req string) (string, bool, error) {
	addr := p.Addrs[p.Rng.IntN(len(p.Addrs))]
	p.Last = addr
	var pc *poolConn
	if idle := p.idle[addr]; len(idle) > 0 && p.Rng.IntN(2) == 0 {
		pc, p.idle[addr] = idle[len(idle)-1], idle[:len(idle)-1]
	} else {
		c, err := net.DialTimeout("tcp", addr, p.Timeout)
		if err != nil {
			return "", false, err
		}
		pc = &poolConn{c: c, br: bufio.NewReader(c)}
	}
	pc.c.SetDeadline(time.Now().Add(p.Timeout))
	reply, err := roundTrip(pc, req)
	if err != nil {
		pc.c.Close()
		return reply, true, err
	}
	if p.idle == nil {
		p.idle = map[string][]*poolConn{}
	}
	if len(p.idle[addr]) >= 2 {
		pc.c.Close() // keep a couple per node, not every one dialled
	} else {
		p.idle[addr] = append(p.idle[addr], pc)
	}
	return reply, true, nil
}

// Close closes the kept connections.
func (p *Pool) Close() {
	for _, idle := range p.idle {
		for _, pc := range idle {
			pc.c.Close()
		}
	}
	p.idle = nil
}

// roundTrip sends req and reads the reply: VALUE lines with their data,
// up to the first other line (END, STORED, a number, an error...).
func roundTrip(pc *poolConn, req string) (string, error) {
	if _, err := io.WriteString(pc.c, req); err != nil {
		return "", err
	}
	var out strings.Builder
	for {
		line, err := pc.br.ReadString('\n')
		out.WriteString(line)
		if err != nil {
			return out.String(), err
		}
		if !strings.HasPrefix(line, "VALUE ") {
			return out.String(), nil
		}
		var k string
		var f, n int
		if _, err := fmt.Sscanf(line, "VALUE %s %d %d", &k, &f, &n); err != nil || n < 0 || n > 1<<20 {
			return out.String(), fmt.Errorf("bad VALUE line %q", line)
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(pc.br, buf); err != nil {
			return out.String(), err
		}
		out.Write(buf)
	}
}
