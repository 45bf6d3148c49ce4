//go:build linux

package kvs

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/lbd-project/lbd/pkg/slots"
)

// BenchmarkClusterMultiGet runs bench-cluster's multi-get (16 keys of
// 64-byte values, spread over the three nodes) through one node of an
// in-process three-node cluster (replicas 0, plain TCP, event loops):
// node 0 splits each request by primary, serves its part, forwards the
// rest to the other two nodes' loops, and merges the replies. Clients send
// batches of 8 requests, as memcload's connections pipeline. One op is one
// multi-get; allocs/op counts every node's allocations for it (the
// forwarding node's and the two serving nodes').
func BenchmarkClusterMultiGet(b *testing.B) {
	const (
		keys  = 1000
		per   = 16
		batch = 8
	)
	tc := startCluster(b, 3, 0, slots.Sync)
	c, err := net.DialTimeout("tcp", tc.addrs[0], 5*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReaderSize(c, 64<<10)
	val := strings.Repeat("v", 64)
	var pre strings.Builder
	for i := range keys {
		fmt.Fprintf(&pre, "set bench:%d 0 0 %d\r\n%s\r\n", i, len(val), val)
	}
	if _, err := io.WriteString(c, pre.String()); err != nil {
		b.Fatal(err)
	}
	for range keys {
		if l, err := br.ReadString('\n'); err != nil || l != "STORED\r\n" {
			b.Fatalf("set: %q %v", l, err)
		}
	}
	reqs := make([]string, 64)
	for i := range reqs {
		var r strings.Builder
		for j := range batch {
			r.WriteString("get")
			for k := range per {
				fmt.Fprintf(&r, " bench:%d", (i*batch*per+j*per+k*7)%keys)
			}
			r.WriteString("\r\n")
		}
		reqs[i] = r.String()
	}
	read := func() {
		for range batch {
			for n := 0; ; n++ {
				l, err := br.ReadSlice('\n')
				if err != nil {
					b.Fatal(err)
				}
				if string(l) == "END\r\n" {
					if n != per {
						b.Fatalf("%d values, want %d", n, per)
					}
					break
				}
				if !strings.HasPrefix(string(l), "VALUE ") {
					b.Fatalf("reply %q", l)
				}
				if _, err := br.Discard(len(val) + 2); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	c.SetDeadline(time.Now().Add(10 * time.Minute))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += batch {
		if _, err := io.WriteString(c, reqs[(i/batch)%len(reqs)]); err != nil {
			b.Fatal(err)
		}
		read()
	}
}
