package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/lbd-project/lbd/internal/memcload"
)

// benchResult is `lbctl bench -o json`'s output.
type benchResult struct {
	Addr           string  `json:"addr"`
	Requests       uint64  `json:"requests"`
	RequestsPerSec float64 `json:"requests_per_sec"`
	KeysPerSec     float64 `json:"keys_per_sec"`
	P50us          int64   `json:"p50_us"`
	P99us          int64   `json:"p99_us"`
	P999us         int64   `json:"p999_us"`
	MaxUs          int64   `json:"max_us"`
	Hits           uint64  `json:"hits"`
	Misses         uint64  `json:"misses"`
	Errors         uint64  `json:"errors"`
}

// runBench drives a memcached-protocol server (a tenant's VIP:port, a
// storage node, or memcached itself) with internal/memcload.
func runBench(ctx context.Context, a *app, cmd *command, args []string) error {
	var (
		o       memcload.Options
		prefill *bool
	)
	_, err := a.parseArgs(cmd, args, 0, 0, func(fs *flag.FlagSet) {
		fs.StringVar(&o.Addr, "addr", "", "server `HOST:PORT`")
		prefill = o.AddFlags(fs)
	})
	if err != nil {
		return err
	}
	if o.Addr == "" {
		return usagef("bench needs --addr HOST:PORT")
	}
	if err := a.checkOutput(); err != nil {
		return err
	}
	if *prefill {
		pctx, cancel := context.WithTimeout(ctx, time.Minute)
		err := memcload.Prefill(pctx, o)
		cancel()
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
	}
	res, err := memcload.Run(ctx, o)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	out := benchResult{Addr: o.Addr, Requests: res.Requests, RequestsPerSec: res.RequestsPerSec, KeysPerSec: res.KeysPerSec,
		P50us: res.P50.Microseconds(), P99us: res.P99.Microseconds(), P999us: res.P999.Microseconds(), MaxUs: res.Max.Microseconds(),
		Hits: res.Hits, Misses: res.Misses, Errors: res.Errors}
	return a.emit(out, func(w io.Writer) { fmt.Fprintln(w, res) })
}
