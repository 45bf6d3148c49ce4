package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// command is one verb (or group of verbs) of lbctl.
type command struct {
	name    string
	path    string // "lbctl tenant allow add", filled by commands()
	usage   string // the arguments, after the path
	summary string
	run     func(ctx context.Context, a *app, cmd *command, args []string) error
	sub     []*command
	// ownO: the command's -o is its own flag, not the output format.
	ownO bool
}

// commands returns lbctl's command tree.
func commands() []*command {
	cmds := []*command{
		{name: "status", usage: "[--rate]", summary: "this node's role, VRRP state and every virtual service, like ipvsadm -Ln --stats", run: runStatus},
		{name: "vs", summary: "virtual services", sub: []*command{
			{name: "list", summary: "list the virtual services", run: runVSList},
			{name: "add", usage: "[-p tcp|udp] [-s SCHED] [--forward dr|nat|tun] [--persistence DUR] --real ADDR[:PORT][@WEIGHT]... VIP:PORT", summary: "add a plain virtual service", run: runVSAdd},
			{name: "del", usage: "SERVICE", summary: "delete a virtual service (tcp/VIP:PORT, VIP:PORT or a tenant)", run: runVSDel},
		}},
		{name: "rs", summary: "real servers", sub: []*command{
			{name: "add", usage: "[-w WEIGHT] SERVICE ADDR[:PORT]", summary: "add a real server to a virtual service", run: runRSAdd},
			{name: "del", usage: "SERVICE ADDR[:PORT]", summary: "remove a real server (drained first)", run: runRSDel},
			{name: "weight", usage: "SERVICE ADDR[:PORT] WEIGHT", summary: "change a real server's weight", run: runRSWeight},
			{name: "drain", usage: "SERVICE ADDR[:PORT]", summary: "set a real server's weight to 0: no new connections", run: runRSDrain},
		}},
		{name: "apply", usage: "-f FILE [--yes] [--dry-run]", summary: "replace lbd's desired state with FILE, after showing the difference", run: runApply},
		{name: "diff", usage: "-f FILE", summary: "show what applying FILE would change", run: runDiff},
		{name: "validate", usage: "-f FILE [--remote] [--node NAME]", summary: "check FILE (locally; --remote asks lbd)", run: runValidate},
		{name: "reload", summary: "make lbd re-read its configuration file", run: runReload},
		{name: "tenant", summary: "KVS tenants and their allow-lists", sub: []*command{
			{name: "list", summary: "list the tenants", run: runTenantList},
			{name: "show", usage: "TENANT", summary: "show a tenant and its allow-list", run: runTenantShow},
			{name: "add", usage: "--vip VIP --port PORT [--allow ADDR,...] [--memory SIZE] [--storage memory|durable] [-s SCHED] [--forward FWD] TENANT", summary: "add a tenant", run: runTenantAdd},
			{name: "del", usage: "TENANT", summary: "delete a tenant (its port closes first)", run: runTenantDel},
			{name: "credentials", usage: "[--api-token] TENANT", summary: "issue the tenant's credential (panel, data API), or with --api-token an API token (data API only)", run: runTenantCredentials},
			{name: "allow", summary: "a tenant's allowed source addresses (instant, persisted)", sub: []*command{
				{name: "list", usage: "TENANT", summary: "show the allow-list", run: runAllowList},
				{name: "add", usage: "TENANT ADDR|CIDR...", summary: "allow more sources", run: runAllowChange},
				{name: "del", usage: "TENANT ADDR|CIDR...", summary: "stop allowing sources", run: runAllowChange},
				{name: "set", usage: "TENANT [ADDR|CIDR...]", summary: "replace the allow-list (nothing: nobody)", run: runAllowChange},
			}},
		}},
		{name: "operator", summary: "the operator's access to the panel", sub: []*command{
			{name: "credentials", summary: "issue the operator's credential (the old one stops working)", run: runOperatorCredentials},
		}},
		{name: "kvs", summary: "the KVS on the storage nodes", sub: []*command{
			{name: "stats", usage: "[TENANT]", summary: "per node and tenant: items, bytes, hits, misses, evictions, connections", run: runKVSStats},
			{name: "status", summary: "this storage node's view of the cluster: slots, primaries, in-sync backups, rebuild progress", run: runKVSStatus},
		}},
		nodeCommand(),
		clusterCommand(),
		{name: "events", usage: "[--recent]", summary: "stream health, VRRP and reconcile events", run: runEvents},
		{name: "import", summary: "convert another tool's configuration", sub: []*command{
			{name: "keepalived", usage: "[-o FILE] [--node NAME] [--address ADDR] KEEPALIVED.CONF", summary: "convert a keepalived.conf to lbd's YAML", run: runImportKeepalived, ownO: true},
		}},
		{name: "bench", usage: "--addr HOST:PORT [flags]", summary: "memcached-protocol load generator", run: runBench},
		{name: "completion", usage: "bash|zsh", summary: "print a shell completion script", run: runCompletion},
		{name: "help", usage: "[COMMAND...]", summary: "show help", run: runHelp},
	}
	var fill func(prefix string, cs []*command)
	fill = func(prefix string, cs []*command) {
		for _, c := range cs {
			c.path = prefix + " " + c.name
			if c.run != nil {
				c.usage = strings.TrimSpace(c.path + " " + c.usage)
			}
			fill(c.path, c.sub)
		}
	}
	fill("lbctl", cmds)
	return cmds
}

// findCommand walks the tree along args; a group without a matching
// subcommand is returned as is.
func findCommand(cmds []*command, args []string) (*command, []string, error) {
	var cur *command
	list := cmds
	for len(args) > 0 {
		var next *command
		for _, c := range list {
			if c.name == args[0] {
				next = c
			}
		}
		if next == nil {
			if cur == nil {
				return nil, nil, usagef("unknown command %q", args[0])
			}
			return cur, args, nil
		}
		cur, list, args = next, next.sub, args[1:]
		if cur.run != nil {
			return cur, args, nil
		}
	}
	return cur, args, nil
}

// printHelp writes help for cmd (nil: every command).
func (a *app) printHelp(w io.Writer, cmd *command) {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	var walk func(cs []*command)
	walk = func(cs []*command) {
		for _, c := range cs {
			if c.run != nil {
				fmt.Fprintf(tw, "  %s\t%s\n", strings.TrimPrefix(c.path, "lbctl "), c.summary)
			}
			walk(c.sub)
		}
	}
	if cmd == nil {
		fmt.Fprint(tw, "lbctl controls lbd, the load-balancer daemon.\n\nusage: lbctl [global flags] COMMAND [args]\n\ncommands:\n")
		walk(commands())
		fmt.Fprint(tw, "\nglobal flags (before or after the command):\n"+
			"  --socket PATH\tlbd's unix socket (default /run/lbd/lbd.sock, env LBD_SOCKET)\n"+
			"  --server URL\tlbd's TCP API, e.g. https://lb1:8443 (env LBD_SERVER)\n"+
			"  --token TOKEN\tbearer token for --server (env LBD_TOKEN)\n"+
			"  --cacert FILE\tCA certificate for an https --server\n"+
			"  -o FORMAT\ttable (default), json or yaml\n"+
			"  --wait DURATION\tafter a change, wait until every node has applied it\n"+
			"\nexit codes: 0 ok, 1 operation failed, 2 usage error, 3 cannot reach lbd, 4 invalid configuration,\n"+
			"  5 the cluster has no leader (nothing written), 6 not applied on every node within --wait\n"+
			"'lbctl help COMMAND' or 'lbctl COMMAND -h' shows a command's arguments and flags.\n")
	} else {
		fmt.Fprintf(tw, "%s: %s\n\n", cmd.path, cmd.summary)
		if cmd.run != nil {
			fmt.Fprintf(tw, "usage: %s\n", cmd.usage)
		} else {
			fmt.Fprint(tw, "commands:\n")
			walk(cmd.sub)
		}
	}
	tw.Flush()
}

func runHelp(_ context.Context, a *app, _ *command, args []string) error {
	if len(args) == 0 {
		a.printHelp(a.stdout, nil)
		return nil
	}
	cmd, rest, err := findCommand(commands(), args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("%s: unknown command %q", cmd.path, rest[0])
	}
	a.printHelp(a.stdout, cmd)
	return nil
}
