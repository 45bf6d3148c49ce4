package kvs

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestLargeAndSlowClients covers the hand-off from the event loops to
// goroutines: values bigger than a loop's buffer, a multi-get bigger than
// its output budget, and a client that sends before it reads.
func TestLargeAndSlowClients(t *testing.T) {
	for _, noLoop := range []bool{false, true} {
		t.Run(fmt.Sprintf("noEventLoop=%v", noLoop), func(t *testing.T) {
			_, addrs := startTier(t, Options{NoEventLoop: noLoop}, TenantConfig{Name: "a"})
			c := dial(t, addrs["a"])
			big := strings.Repeat("x", 500<<10)
			if got := c.do("set big 0 0 "+fmt.Sprint(len(big))+"\r\n"+big+"\r\n", 1); got != "STORED\r\n" {
				t.Fatalf("set big: %q", got)
			}
			// Pipeline 40 gets of 500 KiB (20 MB of replies) before reading.
			var req strings.Builder
			for range 40 {
				req.WriteString("get big big\r\n")
			}
			req.WriteString("set small 0 0 1\r\ns\r\nget small\r\n")
			c.conn.SetDeadline(time.Now().Add(30 * time.Second))
			go io.WriteString(c.conn, req.String())
			want := "VALUE big 0 " + fmt.Sprint(len(big)) + "\r\n" + big + "\r\n"
			for i := range 40 {
				for j := range 2 {
					line, err := c.r.ReadString('\n')
					if err != nil || line != "VALUE big 0 512000\r\n" {
						t.Fatalf("get %d.%d: %q %v", i, j, trunc64(line), err)
					}
					body := make([]byte, len(big)+2)
					if _, err := io.ReadFull(c.r, body); err != nil || string(body) != big+"\r\n" {
						t.Fatalf("get %d.%d body: %v", i, j, err)
					}
				}
				if line, _ := c.r.ReadString('\n'); line != "END\r\n" {
					t.Fatalf("get %d end: %q", i, line)
				}
			}
			_ = want
			rest := ""
			for range 4 {
				line, err := c.r.ReadString('\n')
				if err != nil {
					t.Fatal(err)
				}
				rest += line
			}
			if rest != "STORED\r\nVALUE small 0 1\r\ns\r\nEND\r\n" {
				t.Errorf("after the big replies: %q", rest)
			}
		})
	}
}

func trunc64(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// TestConcurrentClientsAndReload runs many clients with random requests
// (some split across writes, some big) while tenants are reloaded and
// removed, and checks every reply it can.
func TestConcurrentClientsAndReload(t *testing.T) {
	tier, addrs := startTier(t, Options{}, TenantConfig{Name: "a"}, TenantConfig{Name: "b"})
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	errs := make(chan error, 64)
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			addr := addrs["a"]
			for ctx.Err() == nil {
				c, err := net.DialTimeout("tcp", addr, time.Second)
				if err != nil {
					errs <- err
					return
				}
				r := bufio.NewReader(c)
				c.SetDeadline(time.Now().Add(10 * time.Second))
				for i := 0; i < 50 && ctx.Err() == nil; i++ {
					key := fmt.Sprintf("w%d-%d", w, rng.IntN(20))
					n := rng.IntN(10)
					if rng.IntN(10) == 0 {
						n = 70 << 10 // bigger than a loop's input buffer
					}
					val := bytes.Repeat([]byte{'a' + byte(w)}, n)
					req := fmt.Sprintf("set %s 0 0 %d\r\n%s\r\nget %s\r\n", key, n, val, key)
					// Split the request at a random point.
					cut := rng.IntN(len(req))
					c.Write([]byte(req[:cut]))
					c.Write([]byte(req[cut:]))
					want := fmt.Sprintf("STORED\r\nVALUE %s 0 %d\r\n%s\r\nEND\r\n", key, n, val)
					got := make([]byte, len(want))
					if _, err := io.ReadFull(r, got); err != nil {
						break // the tenant may be gone: reconnect
					}
					if string(got) != want {
						errs <- fmt.Errorf("worker %d: got %q want %q", w, trunc64(string(got)), trunc64(want))
						c.Close()
						return
					}
				}
				c.Close()
			}
		}()
	}
	// Reload while the clients run: change a's limit, drop and re-add b.
	for i := 0; ctx.Err() == nil; i++ {
		want := []TenantConfig{{Name: "a", Listen: "127.0.0.1:0", MemoryLimit: int64(32+i%2*32) << 20}}
		if i%2 == 0 {
			want = append(want, TenantConfig{Name: "b", Listen: "127.0.0.1:0"})
		}
		if err := tier.Apply(context.Background(), want); err != nil {
			t.Fatalf("Apply: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if st := tier.Stats(); st[0].TotalConnections == 0 {
		t.Error("no connections served")
	}
}

// TestPipelinedRepliesOverOutputBudget sends, in one write, more gets than
// an event loop answers before writing (evOutSoft of replies), then reads:
// the requests left in the buffer must run once the replies are written,
// though no more input comes.
func TestPipelinedRepliesOverOutputBudget(t *testing.T) {
	_, addrs := startTier(t, Options{}, TenantConfig{Name: "a"})
	c := dial(t, addrs["a"])
	value := strings.Repeat("v", 1000)
	if got := c.do("set k 0 0 1000\r\n"+value+"\r\n", 1); got != "STORED\r\n" {
		t.Fatalf("set: %q", got)
	}
	const n = 1500 // 1.5 MB of replies from 10 KB of requests
	c.conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c.conn, strings.Repeat("get k\r\n", n)); err != nil {
		t.Fatal(err)
	}
	reply := "VALUE k 0 1000\r\n" + value + "\r\nEND\r\n"
	buf := make([]byte, len(reply))
	for i := range n {
		if _, err := io.ReadFull(c.r, buf); err != nil || string(buf) != reply {
			t.Fatalf("reply %d of %d: %v", i+1, n, err)
		}
	}
}
