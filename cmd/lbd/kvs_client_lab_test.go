//go:build integration || vm

// The memcached clients of the clustered store's tests: the test binary,
// run by probe inside the client's namespace, plays them.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lbd-project/lbd/internal/testutil/kvhistory"
)

// kvsClient runs the test binary in ns as a memcached client (see
// kvsClientMain) and returns what it printed.
func (l *clusterLab) kvsClient(ns, mode, prefix string, n int, addrs []string) (string, error) {
	out, err := l.nc(ns, strings.Join(addrs, ","), "KVS "+mode+" "+prefix+" "+strconv.Itoa(n))
	if err == nil && !strings.HasPrefix(out, "ok") {
		err = fmt.Errorf("%s", strings.TrimSpace(out))
	}
	return out, err
}

// kvsClientMain is the client of kvsClient, run by probe when its command
// is "KVS MODE PREFIX N" and its address a list: mode rw sets N keys, each
// on a new connection to a random node, and reads each back at once on a
// new connection to another; mode get reads them back. It prints "ok"
// (and how many requests it sent again, see -retry) or the first failure.
func kvsClientMain(addrList, cmd string) int {
	if cmd == "KVS lin" {
		return linClientMain(addrList)
	}
	f := strings.Fields(cmd)
	n, _ := strconv.Atoi(f[3])
	mode, prefix, addrs := f[1], f[2], strings.Split(addrList, ",")
	if other := kvsClientModes[mode]; other != nil {
		if code, ok := other(addrs, f); ok {
			return code
		}
	}
	pick := func(not int) int {
		for {
			i := rand.IntN(len(addrs))
			if i != not || len(addrs) == 1 {
				return i
			}
		}
	}
	// With -retry (rw-retry, get-retry), a request that ran nowhere
	// ("SERVER_ERROR lbd: unavailable") is sent again, as a client may,
	// up to 20 times 500ms apart: in the emulated VM a late probe lets a
	// node's lease lapse now and then.
	roundTrip := kvsRoundTrip
	again := 0 // requests sent again
	if m, ok := strings.CutSuffix(mode, "-retry"); ok {
		mode = m
		roundTrip = func(addr, req, end string) (string, error) {
			for range 20 {
				got, err := kvsRoundTrip(addr, req, end)
				if err != nil || !strings.HasPrefix(got, "SERVER_ERROR lbd: unavailable") {
					return got, err
				}
				again++
				time.Sleep(500 * time.Millisecond)
			}
			return kvsRoundTrip(addr, req, end)
		}
	}
	for k := range n {
		key, val := fmt.Sprintf("%s%d", prefix, k), fmt.Sprintf("v%d-%s", k, prefix)
		from := -1
		if mode == "rw" {
			from = pick(-1)
			if got, err := roundTrip(addrs[from], fmt.Sprintf("set %s 0 0 %d\r\n%s\r\n", key, len(val), val), "\r\n"); err != nil || got != "STORED\r\n" {
				fmt.Printf("set %s via %s: %q %v\n", key, addrs[from], got, err)
				return 0
			}
		}
		to := pick(from)
		want := fmt.Sprintf("VALUE %s 0 %d\r\n%s\r\nEND\r\n", key, len(val), val)
		if got, err := roundTrip(addrs[to], "get "+key+"\r\n", "END\r\n"); err != nil || got != want {
			fmt.Printf("get %s via %s (set via %d): %q %v\n", key, addrs[to], from, got, err)
			return 0
		}
	}
	fmt.Printf("ok, %d requests sent again\n", again)
	return 0
}

// kvsClientModes are kvsClientMain's other modes, set by the files of the
// integration build: a mode's func gets the addresses and the command's
// fields, and reports whether it served the command.
var kvsClientModes = map[string]func(addrs, f []string) (int, bool){}

// kvsRoundTrip sends req on a new connection and reads until a line ends
// with end (or an error line).
func kvsRoundTrip(addr, req, end string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(req)); err != nil {
		return "", err
	}
	r := bufio.NewReader(c)
	var b strings.Builder
	for {
		line, err := r.ReadString('\n')
		b.WriteString(line)
		if err != nil {
			return b.String(), err
		}
		if strings.HasSuffix(b.String(), end) || strings.Contains(line, "ERROR") {
			return b.String(), nil
		}
	}
}

func init() { kvsClient = kvsClientMain }

// linResult is what the linearizability clients print.
type linResult struct {
	Ops                              []kvhistory.Op `json:"ops"`
	OK, ServerErrors, Failures, Odds int
	Odd                              []string `json:"odd"`
	Error                            string   `json:"error,omitempty"`
}

// linClientMain runs the clients of TestClusterKVSLinearizable (probe's
// "KVS lin"): six workers through random nodes of addrList until stdin
// closes (at most 4,000 operations each, one every 10ms at most), then
// every key read through every node, retried for up to 30s each; prints
// a linResult.
func linClientMain(addrList string) int {
	addrs := strings.Split(addrList, ",")
	h, tally := kvhistory.New(), &kvhistory.Tally{}
	strKeys := []string{"s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7"}
	ctrKeys := []string{"c0", "c1", "c2", "c3"}
	var uniq atomic.Int64
	worker := func(cl int, addrs []string) (*kvhistory.Worker, func()) {
		rng := rand.New(rand.NewPCG(uint64(cl), uint64(time.Now().UnixNano())))
		pool := &kvhistory.Pool{Addrs: addrs, Rng: rng, Timeout: 5 * time.Second}
		return &kvhistory.Worker{Client: cl, Rng: rng, Call: pool.Call, H: h, T: tally, Strings: strKeys, Counters: ctrKeys,
			Value: func() string { return fmt.Sprintf("v%d", uniq.Add(1)) }}, pool.Close
	}
	var res linResult
	w0, closeW0 := worker(0, addrs)
	for _, k := range ctrKeys {
		for !w0.Set(k, "0") {
			time.Sleep(100 * time.Millisecond)
		}
	}
	closeW0()

	stopped := make(chan struct{})
	go func() { io.Copy(io.Discard, os.Stdin); close(stopped) }()
	var wg sync.WaitGroup
	for cl := 1; cl <= 6; cl++ {
		w, closeW := worker(cl, addrs)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer closeW()
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			for range 4000 {
				select {
				case <-stopped:
					return
				case <-tick.C:
				}
				w.Step()
			}
		}()
	}
	wg.Wait()
	<-stopped

	// Every key through every node: an acknowledged write must be there.
	for i, addr := range addrs {
		w, closeW := worker(100+i, []string{addr})
		for _, k := range slices.Concat(strKeys, ctrKeys) {
			deadline := time.Now().Add(30 * time.Second)
			for !w.Get(k) {
				if time.Now().After(deadline) {
					res.Error += fmt.Sprintf("no answer to get %s through %s for 30s; ", k, addr)
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
		closeW()
	}
	res.Ops = h.Ops()
	res.OK, res.ServerErrors, res.Failures, res.Odds, res.Odd = tally.OK, tally.ServerErrors, tally.Failures, tally.Odds, tally.Odd
	bw := bufio.NewWriter(os.Stdout)
	json.NewEncoder(bw).Encode(res)
	bw.Flush()
	return 0
}
