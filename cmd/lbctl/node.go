package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/lbd-project/lbd/internal/api"
	"github.com/lbd-project/lbd/pkg/kvs"
)

// nodeCommand is `lbctl node`: the storage tier's membership.
func nodeCommand() *command {
	return &command{name: "node", summary: "the storage nodes that hold the KVS slots (cluster section)", sub: []*command{
		{name: "list", summary: "each storage node: state (active, draining), primaries, backups, in-sync, progress", run: runNodeList},
		{name: "add", usage: "NODE", summary: "put a storage node of the file into placement: slots are rebuilt onto it online (throttled), then it gets its share of primaries", run: runNodeChange},
		{name: "drain", usage: "NODE", summary: "move every slot off a storage node, online; lbctl kvs status shows the progress", run: runNodeChange},
		{name: "remove", usage: "[--force] NODE", summary: "take a drained storage node (or, with --force, a dead one) out of the storage tier", run: runNodeChange},
	}}
}

func runNodeList(ctx context.Context, a *app, cmd *command, args []string) error {
	_, c, err := a.begin(cmd, args, 0, 0, nil)
	if err != nil {
		return err
	}
	ns, err := c.KVSNodes(ctx)
	if err != nil {
		return err
	}
	return a.emit(ns, func(w io.Writer) { kvs.WriteMembers(w, ns.Nodes, a.bars()) })
}

func runNodeChange(ctx context.Context, a *app, cmd *command, args []string) error {
	force := false
	var define func(fs *flag.FlagSet)
	if cmd.name == api.KVSNodeRemove {
		define = func(fs *flag.FlagSet) {
			fs.BoolVar(&force, "force", false, "remove a node that still holds slots (a dead one): its primaries go to in-sync backups")
		}
	}
	pos, c, err := a.begin(cmd, args, 1, 1, define)
	if err != nil {
		return err
	}
	ns, err := c.ChangeKVSNode(ctx, api.KVSNodeRequest{Op: cmd.name, Name: pos[0], Force: force})
	if err != nil {
		return err
	}
	return a.emit(ns, func(w io.Writer) {
		switch cmd.name {
		case api.KVSNodeAdd:
			fmt.Fprintf(w, "%s added: its slots are rebuilt onto it (lbctl kvs status shows the progress)\n", pos[0])
		case api.KVSNodeDrain:
			fmt.Fprintf(w, "%s draining: its slots move to the other nodes; lbctl node remove %s once it holds none\n", pos[0], pos[0])
		default:
			fmt.Fprintf(w, "%s removed from the storage tier\n", pos[0])
		}
		kvs.WriteMembers(w, ns.Nodes, a.bars())
	})
}

// bars reports whether progress bars fit stdout (a terminal).
func (a *app) bars() bool {
	f, ok := a.stdout.(*os.File)
	return ok && isTerminal(f)
}
