package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/lbd-project/lbd/pkg/config"
	"github.com/lbd-project/lbd/pkg/kvs"
)

// eventLoopFlags defines on fs the flags that shape the KVS event loops,
// each name and usage given prefix and usagePrefix (the daemon's are
// --kvs-...), and returns a function giving the tier's options once fs is
// parsed.
func eventLoopFlags(fs *flag.FlagSet, prefix, usagePrefix string) func() kvs.Options {
	loops := fs.Int(prefix+"event-loops", 0, usagePrefix+"event loops serving connections (0: one per CPU)")
	affinity := fs.Bool(prefix+"cpu-affinity", true, usagePrefix+"pin the event loops to CPUs and serve each connection on the CPU that receives it")
	batch := fs.Bool(prefix+"sched-batch", true, usagePrefix+"run the event loops under SCHED_BATCH: a loop that wakes does not preempt the thread running on its CPU")
	return func() kvs.Options {
		return kvs.Options{EventLoops: *loops, NoCPUAffinity: !*affinity, NoBatchScheduling: !*batch, GoMemoryLimit: true}
	}
}

// runKVS runs `lbd kvs`: a single standalone KVS instance, memcached
// compatible, until ctx ends.
func runKVS(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("lbd kvs", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg         kvs.TenantConfig
		store, sync string
		memory      string
		itemSize    string
		verbose     bool
	)
	fs.StringVar(&cfg.Name, "name", "default", "tenant name (for logs and stats)")
	fs.StringVar(&cfg.Listen, "listen", ":11211", "TCP address to serve on (host:port)")
	fs.StringVar(&store, "store", "memory", "store kind: memory or durable")
	fs.StringVar(&cfg.Dir, "dir", "", "data directory of the durable store")
	fs.StringVar(&memory, "memory", "64MiB", "memory limit (items of a memory store, caches of a durable one)")
	fs.StringVar(&sync, "sync", "always", "durable store sync policy: always or group")
	fs.DurationVar(&cfg.SyncInterval, "sync-interval", kvs.DefaultSyncInterval, "group commit period for --sync group")
	fs.StringVar(&itemSize, "max-item-size", "1MiB", "largest item accepted")
	fs.IntVar(&cfg.MaxConns, "max-conns", kvs.DefaultMaxConns, "maximum concurrent connections")
	fs.DurationVar(&cfg.IdleTimeout, "idle-timeout", 0, "close connections idle this long (0: never)")
	fs.BoolVar(&verbose, "v", false, "debug logging")
	tierOpts := eventLoopFlags(fs, "", "")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "lbd kvs: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	var err error
	if cfg.MemoryLimit, err = config.ParseSize(memory); err != nil {
		fmt.Fprintf(stderr, "lbd kvs: --memory: %v\n", err)
		return 2
	}
	n, err := config.ParseSize(itemSize)
	if err != nil {
		fmt.Fprintf(stderr, "lbd kvs: --max-item-size: %v\n", err)
		return 2
	}
	cfg.MaxItemSize = int(n)
	cfg.Store = kvs.StoreKind(store)
	cfg.Sync = kvs.SyncMode(sync)

	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	spareProcs()
	tier := kvs.New(log, tierOpts())
	defer tier.Close()
	if err := tier.Apply(ctx, []kvs.TenantConfig{cfg}); err != nil {
		fmt.Fprintf(stderr, "lbd %v\n", err) // err starts with "kvs: "
		return 1
	}
	if addr, ok := tier.Addr(cfg.Name); ok {
		fmt.Fprintf(stdout, "lbd kvs: serving %s store on %s\n", cfg.Store, addr)
	}
	<-ctx.Done()
	log.Info("lbd kvs: shutting down")
	return 0
}
