//go:build integration

package kvs

import (
	"bufio"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// buildLbd builds the lbd binary into a temporary directory.
func buildLbd(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	bin := filepath.Join(t.TempDir(), "lbd")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/lbd")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/lbd: %v\n%s", err, out)
	}
	return bin
}

// TestDurabilityKill9 writes through `lbd kvs --store durable --sync
// always` from several connections, kills the process with SIGKILL in the
// middle of the writes, restarts it and checks that every acknowledged
// write is there and that expired items are gone.
func TestDurabilityKill9(t *testing.T) {
	bin := buildLbd(t)
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	args := []string{"kvs", "--listen", addr, "--store", "durable", "--dir", dir, "--sync", "always", "--memory", "16MiB"}

	proc := startProcess(t, bin, args...)
	waitListening(t, addr, proc)

	// Items that must expire: written first, with a 2 s TTL.
	c := dialRaw(t, addr)
	for i := range 20 {
		if got := c.cmd(fmt.Sprintf("set ttl%d 0 2 1\r\nx\r\n", i)); got != "STORED\r\n" {
			t.Fatalf("set ttl%d: %q", i, got)
		}
	}
	if got := c.cmd("set counter 0 0 1\r\n0\r\n"); got != "STORED\r\n" {
		t.Fatalf("set counter: %q", got)
	}
	ttlSetAt := time.Now()

	// Writers record what the server acknowledged until it dies.
	var mu sync.Mutex
	acked := map[string]string{}
	incrs := 0
	var wg sync.WaitGroup
	start := make(chan struct{})
	enough := make(chan struct{})
	var once sync.Once
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wc, err := net.Dial("tcp", addr)
			if err != nil {
				return
			}
			defer wc.Close()
			r := bufio.NewReader(wc)
			<-start
			for i := 0; ; i++ {
				key := fmt.Sprintf("w%d-%d", w, i)
				val := strings.Repeat(strconv.Itoa(i%10), 1+i%100)
				if _, err := fmt.Fprintf(wc, "set %s 0 0 %d\r\n%s\r\n", key, len(val), val); err != nil {
					return
				}
				if line, err := r.ReadString('\n'); err != nil || line != "STORED\r\n" {
					return
				}
				if _, err := fmt.Fprintf(wc, "incr counter 1\r\n"); err != nil {
					return
				}
				if _, err := r.ReadString('\n'); err != nil {
					return
				}
				mu.Lock()
				acked[key] = val
				incrs++
				if len(acked) >= 2000 {
					once.Do(func() { close(enough) })
				}
				mu.Unlock()
			}
		}()
	}
	close(start)
	select {
	case <-enough:
	case <-time.After(90 * time.Second):
		t.Log("fewer than 2000 writes in 90 s; killing anyway")
	}
	kill9(t, proc)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d acknowledged writes before kill -9", len(acked))

	// Let the TTL items expire, then restart on the same directory.
	if d := time.Until(ttlSetAt.Add(3 * time.Second)); d > 0 {
		time.Sleep(d)
	}
	proc = startProcess(t, bin, args...)
	waitListening(t, addr, proc)
	c = dialRaw(t, addr)
	missing := 0
	for key, val := range acked {
		want := fmt.Sprintf("VALUE %s 0 %d\r\n%s\r\nEND\r\n", key, len(val), val)
		if got := c.cmd("get " + key + "\r\n"); got != want {
			missing++
			if missing < 5 {
				t.Errorf("acknowledged %s lost: got %q", key, got)
			}
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d acknowledged writes lost", missing, len(acked))
	}
	// The counter holds at least every acknowledged increment (one more
	// may have been applied but not acknowledged).
	got := c.cmd("get counter\r\n")
	lines := strings.Split(got, "\r\n")
	if len(lines) < 2 {
		t.Fatalf("get counter: %q", got)
	}
	n, err := strconv.Atoi(strings.TrimSpace(lines[1]))
	if err != nil || n < incrs || n > incrs+4 {
		t.Errorf("counter = %q, want %d..%d", lines[1], incrs, incrs+4)
	}
	for i := range 20 {
		if got := c.cmd(fmt.Sprintf("get ttl%d\r\n", i)); got != "END\r\n" {
			t.Errorf("expired ttl%d came back: %q", i, got)
		}
	}
}

// rawConn is a minimal request/reply client for one-line and get replies.
type rawConn struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c, r: bufio.NewReader(c)}
}

// cmd sends req and reads one reply: a line, or a get reply up to END.
func (rc *rawConn) cmd(req string) string {
	rc.t.Helper()
	rc.c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := rc.c.Write([]byte(req)); err != nil {
		rc.t.Fatal(err)
	}
	var sb strings.Builder
	for {
		line, err := rc.r.ReadString('\n')
		if err != nil {
			rc.t.Fatalf("reply to %q: %v", req, err)
		}
		sb.WriteString(line)
		if !strings.HasPrefix(line, "VALUE ") {
			if strings.HasPrefix(req, "get") && line != "END\r\n" {
				continue
			}
			return sb.String()
		}
	}
}
