package main

import (
	"context"
	"fmt"
	"io"
)

func runKVSStats(ctx context.Context, a *app, cmd *command, args []string) error {
	fs := a.flags(cmd)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := nargs(cmd, pos, 0, 1); err != nil {
		return err
	}
	tenant := ""
	if len(pos) == 1 {
		tenant = pos[0]
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	st, err := c.KVSStats(ctx, tenant)
	if err != nil {
		return err
	}
	return a.emit(st, func(w io.Writer) {
		fmt.Fprintln(w, "NODE\tTENANT\tSTORAGE\tITEMS\tBYTES\tLIMIT\tHITS\tMISSES\tEVICTIONS\tCONNS\tTOTAL CONNS\tOPS/S")
		for _, k := range st {
			fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%.0f\n", k.Node, k.Tenant, dash(k.StorageKind),
				k.Items, sizeStr(k.Bytes), sizeStr(k.LimitBytes), k.Hits, k.Misses, k.Evictions, k.CurrConns, k.TotalConns, k.OpsPerSec)
		}
	})
}
