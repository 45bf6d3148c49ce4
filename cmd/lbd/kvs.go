package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/lbd-project/lbd/pkg/cluster"
	"github.com/lbd-project/lbd/pkg/cluster/certs"
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
	clusterNodes := fs.String("cluster", "", "static cluster: NAME=PEERADDR,... of every storage node (the tenant's keys spread over them; no failover)")
	node := fs.String("node", "", "with --cluster: this node's NAME")
	replicas := fs.Int("replicas", 0, "with --cluster: backups per slot (0, 1 or 2)")
	replication := fs.String("replication", "sync", "with --cluster: sync or async")
	certDir := fs.String("certs", "", "with --cluster: node-to-node mutual TLS with the certificates of `lbctl cluster certs` in this directory (ca.pem, NODE.pem, NODE-key.pem), as a daemon's storage nodes talk")
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
	if *clusterNodes != "" {
		cfg.Replicas = *replicas
		if err := joinStatic(ctx, tier, *clusterNodes, *node, *certDir, cfg.Name, *replicas, *replication); err != nil {
			fmt.Fprintf(stderr, "lbd kvs: --cluster: %v\n", err)
			return 2
		}
	}
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

// joinStatic joins tier to a static cluster: every node given as
// NAME=PEERADDR, the tenant's slots placed over them the same way on every
// node (placement is a pure function), with no replicated state: nothing
// fails over. With certDir, the nodes talk mutual TLS with its
// certificates (see staticTLS).
func joinStatic(ctx context.Context, tier *kvs.Tier, spec, node, certDir, tenant string, replicas int, replication string) error {
	st := cluster.NewMemory()
	var names []string
	listen := ""
	for _, nv := range strings.Split(spec, ",") {
		name, addr, ok := strings.Cut(nv, "=")
		if !ok || name == "" || addr == "" {
			return fmt.Errorf("%q: want NAME=PEERADDR", nv)
		}
		rec, _ := json.Marshal(map[string]string{"peer": addr})
		if _, err := st.Propose(ctx, cluster.Op{Key: kvs.NodeKey(name), Value: rec}); err != nil {
			return err
		}
		names = append(names, name)
		if name == node {
			listen = addr
		}
	}
	if listen == "" {
		return fmt.Errorf("--node %q is not in the list", node)
	}
	if _, err := kvs.PlaceTenant(ctx, st, tenant, names, replicas, replication); err != nil {
		return err
	}
	opts := kvs.ClusterOptions{Node: node, PeerListen: listen, Store: st, Static: true}
	if certDir != "" {
		tc, err := staticTLS(certDir, node)
		if err != nil {
			return err
		}
		opts.ServerTLS, opts.ClientTLS = tc, tc.Clone()
	}
	return tier.JoinCluster(ctx, opts)
}

// staticTLS is the node-to-node TLS of node with the files `lbctl cluster
// certs init` and `issue` write in dir: the same configuration a daemon's
// storage node uses (certs.Loader).
func staticTLS(dir, node string) (*tls.Config, error) {
	l, err := certs.NewLoader(filepath.Join(dir, certs.NodeCertFile(node)), filepath.Join(dir, certs.NodeKeyFile(node)), filepath.Join(dir, certs.CACertFile))
	if err != nil {
		return nil, fmt.Errorf("--certs %s: node %s: %w", dir, node, err)
	}
	return l.Config(), nil
}
