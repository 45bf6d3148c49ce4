// Command memcload drives a memcached-protocol server with a get/set mix
// and prints throughput and latency; scripts/bench-kvs.sh uses it.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/lbd-project/lbd/internal/memcload"
)

func main() {
	var o memcload.Options
	flag.StringVar(&o.Addr, "addr", "127.0.0.1:11211", "server address")
	prefill := o.AddFlags(flag.CommandLine)
	asJSON := flag.Bool("json", false, "print the result as JSON")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if *prefill {
		pctx, cancel := context.WithTimeout(ctx, time.Minute)
		err := memcload.Prefill(pctx, o)
		cancel()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	res, err := memcload.Run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if *asJSON {
		json.NewEncoder(os.Stdout).Encode(map[string]any{
			"requests_per_sec": res.RequestsPerSec, "keys_per_sec": res.KeysPerSec,
			"p50_us": res.P50.Microseconds(), "p99_us": res.P99.Microseconds(), "p999_us": res.P999.Microseconds(),
			"max_us": res.Max.Microseconds(), "hits": res.Hits, "misses": res.Misses, "errors": res.Errors,
		})
		return
	}
	fmt.Println(res)
}
