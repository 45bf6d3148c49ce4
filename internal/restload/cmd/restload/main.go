// Command restload is the load generator of `make bench-rest`: a tenant's
// memcached port against its REST API, same keys, same run.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/lbd-project/lbd/internal/restload"
)

func main() {
	var o restload.Options
	flag.StringVar(&o.MC, "mc", "127.0.0.1:11211", "the tenant's memcached `host:port`")
	flag.StringVar(&o.REST, "rest", "http://127.0.0.1:11311", "the tenant's REST API base `URL`")
	flag.StringVar(&o.Token, "token", os.Getenv("RESTLOAD_TOKEN"), "the tenant's credential or API `token` (or $RESTLOAD_TOKEN)")
	flag.IntVar(&o.Conns, "conns", 16, "connections per side")
	flag.DurationVar(&o.Duration, "duration", 5*time.Second, "length of each phase")
	flag.IntVar(&o.Keys, "keys", 10000, "number of keys")
	flag.IntVar(&o.ValueSize, "value-size", 64, "value size in bytes")
	flag.Parse()
	rs, err := restload.Run(context.Background(), o)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("%-22s %10s %10s %10s %8s\n", "phase", "ops/s", "p50", "p99", "errors")
	for _, r := range rs {
		fmt.Printf("%-22s %10.0f %10s %10s %8d\n", r.Name, r.OpsPerSec, r.P50.Round(time.Microsecond), r.P99.Round(time.Microsecond), r.Errors)
	}
	if len(rs) == 5 && rs[0].OpsPerSec > 0 && rs[3].OpsPerSec > 0 {
		fmt.Printf("ratio REST/memcached: GET raw %.2fx, GET JSON %.2fx (goal >= 0.5x), PUT %.2fx; p99 GET raw %.2fx, PUT %.2fx\n",
			rs[1].OpsPerSec/rs[0].OpsPerSec, rs[2].OpsPerSec/rs[0].OpsPerSec, rs[4].OpsPerSec/rs[3].OpsPerSec,
			float64(rs[1].P99)/float64(rs[0].P99), float64(rs[4].P99)/float64(rs[3].P99))
	}
}
