package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/lbd-project/lbd/pkg/kvs"
)

func runKVSStats(ctx context.Context, a *app, cmd *command, args []string) error {
	pos, c, err := a.begin(cmd, args, 0, 1, nil)
	if err != nil {
		return err
	}
	tenant := ""
	if len(pos) == 1 {
		tenant = pos[0]
	}
	st, err := c.KVSStats(ctx, tenant)
	if err != nil {
		return err
	}
	return a.emit(st, func(w io.Writer) {
		fmt.Fprintln(w, "NODE\tTENANT\tSTORAGE\tITEMS\tBYTES\tLIMIT\tHITS\tMISSES\tEVICTIONS\tCONNS\tTOTAL CONNS\tOPS/S")
		for _, k := range st {
			if k.Error != "" {
				fmt.Fprintf(w, "%s\t%s\tFAILED: %s\n", k.Node, k.Tenant, k.Error)
				continue
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%.0f\n", k.Node, k.Tenant, dash(k.StorageKind),
				k.Items, sizeStr(k.Bytes), sizeStr(k.LimitBytes), k.Hits, k.Misses, k.Evictions, k.CurrConns, k.TotalConns, k.OpsPerSec)
		}
	})
}

func runKVSStatus(ctx context.Context, a *app, cmd *command, args []string) error {
	_, c, err := a.begin(cmd, args, 0, 0, nil)
	if err != nil {
		return err
	}
	st, err := c.KVSClusterStatus(ctx)
	if err != nil {
		return err
	}
	f, tty := a.stdout.(*os.File)
	bars := tty && isTerminal(f)
	return a.emit(st, func(w io.Writer) { kvs.WriteClusterStatus(w, st, bars) })
}
