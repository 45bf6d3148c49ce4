package cluster

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkPropose measures writes through a follower of three loopback
// nodes (forwarded to the leader, committed, applied on the follower):
// sequential (latency) and with 64 writers (throughput), with raft's
// default timing. Not a test: `go test -run X -bench Propose ./pkg/cluster`.
func BenchmarkPropose(b *testing.B) {
	for _, writers := range []int{1, 64, 256} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			c := newBenchCluster(b)
			defer c.stopAll()
			f := c.follower()
			ctx := context.Background()
			var next atomic.Int64
			var mu sync.Mutex
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			var wg sync.WaitGroup
			for range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := next.Add(1)
						if i > int64(b.N) {
							return
						}
						start := time.Now()
						if _, err := propose(ctx, f, Op{Key: fmt.Sprintf("k/%d", i%1000), Value: []byte("value")}); err != nil {
							b.Error(err)
							return
						}
						d := time.Since(start)
						mu.Lock()
						lat = append(lat, d)
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			slices.Sort(lat)
			if len(lat) > 0 {
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
			}
		})
	}
}

// BenchmarkCatchUp measures how long a follower that missed 100,000
// writes (on 1,000 keys) takes to catch up when it comes back, with the
// default snapshot settings. One round per run: -benchtime 1x.
func BenchmarkCatchUp(b *testing.B) {
	const writes, writers = 100000, 64
	for range b.N {
		c := newBenchCluster(b)
		l := c.leader()
		f := c.follower()
		fi := c.index(f)
		c.stop(fi)
		ctx := context.Background()
		var next atomic.Int64
		var wg sync.WaitGroup
		for range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := next.Add(1)
					if i > writes {
						return
					}
					if _, err := propose(ctx, l, Op{Key: fmt.Sprintf("k/%d", i%1000), Value: []byte("value")}); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		target := l.AppliedIndex()
		start := time.Now()
		c.start(fi)
		f = c.nodes[fi]
		eventually(b, 120*time.Second, "catch-up", func() bool { return f.AppliedIndex() >= target })
		b.ReportMetric(float64(time.Since(start).Milliseconds()), "catchup-ms")
		b.ReportMetric(float64(f.Status().SnapshotsInstalled), "snapshots")
		c.stopAll()
	}
}
