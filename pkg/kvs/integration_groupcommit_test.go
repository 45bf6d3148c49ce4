//go:build integration

package kvs

import (
	"bufio"
	"fmt"
	"net"
	"testing"
	"time"
)

// TestGroupCommitBoundKill9 checks sync: group's promise across kill -9:
// a write acknowledged more than the sync interval plus one sync before
// the kill is there after a restart. A kill -9 loses what lbd had not
// handed to the kernel yet: Pebble's log writer holds records while its
// flusher waits on a sync, so the writes lost are those acknowledged
// while the last sync ran (measured here: under 10ms with a 10ms
// interval). The allowance for a sync is generous, as this machine's disk
// is shared and its timing noisy; the test fails if writes acknowledged
// before that window are lost. (A power loss, which also loses what the
// kernel had not written, is not tested here.)
func TestGroupCommitBoundKill9(t *testing.T) {
	const interval = 10 * time.Millisecond
	const syncAllowance = 500 * time.Millisecond
	bin := buildLbd(t)
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	args := []string{"kvs", "--listen", addr, "--store", "durable", "--dir", dir, "--sync", "group",
		"--sync-interval", interval.String(), "--memory", "16MiB"}
	proc := startProcess(t, bin, args...)
	waitListening(t, addr, proc)

	// One writer, one write at a time: each acknowledgement's time is
	// known. It writes until the server dies.
	type ack struct {
		key string
		at  time.Time
	}
	acks := make(chan ack, 1<<16)
	go func() {
		defer close(acks)
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		for i := 0; i < 1<<16; i++ {
			key := fmt.Sprintf("g%d", i)
			if _, err := fmt.Fprintf(c, "set %s 0 0 5\r\nvalue\r\n", key); err != nil {
				return
			}
			if line, err := r.ReadString('\n'); err != nil || line != "STORED\r\n" {
				return
			}
			acks <- ack{key, time.Now()}
		}
	}()
	// Kill once enough writes are in, well past several intervals.
	var got []ack
	for a := range acks {
		got = append(got, a)
		if len(got) == 2000 {
			break
		}
	}
	if len(got) < 2000 {
		t.Fatalf("only %d writes before the server stopped", len(got))
	}
	killedAt := time.Now()
	kill9(t, proc)
	for a := range acks {
		got = append(got, a)
	}

	proc = startProcess(t, bin, args...)
	waitListening(t, addr, proc)
	c := dialRaw(t, addr)
	bound := killedAt.Add(-interval - syncAllowance)
	lost, lostInBound := 0, 0
	var oldestLost time.Duration
	for _, a := range got {
		if c.cmd("get "+a.key+"\r\n") == "VALUE "+a.key+" 0 5\r\nvalue\r\nEND\r\n" {
			continue
		}
		lost++
		if before := killedAt.Sub(a.at); before > oldestLost {
			oldestLost = before
		}
		if a.at.Before(bound) {
			lostInBound++
			if lostInBound < 5 {
				t.Errorf("%s, acknowledged %v before the kill, lost", a.key, killedAt.Sub(a.at))
			}
		}
	}
	t.Logf("%d acknowledged writes, %d lost (the oldest of them acknowledged %v before the kill)", len(got), lost, oldestLost)
	if lostInBound > 0 {
		t.Errorf("%d writes acknowledged more than %v before kill -9 lost", lostInBound, interval+syncAllowance)
	}
}
