package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/lbd-project/lbd/internal/api"
	"github.com/lbd-project/lbd/pkg/config"
)

func runTenantList(ctx context.Context, a *app, cmd *command, args []string) error {
	_, c, err := a.begin(cmd, args, 0, 0, nil)
	if err != nil {
		return err
	}
	ts, err := c.Tenants(ctx)
	if err != nil {
		return err
	}
	return a.emit(ts, func(w io.Writer) {
		fmt.Fprintln(w, "NAME\tVIP:PORT\tSTORAGE\tMEMORY\tALLOW")
		for _, t := range ts {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", t.Name, netip.AddrPortFrom(t.VIP, t.Port), dash(t.Storage),
				sizeStr(uint64(max(t.Memory, 0))), allowSummary(t))
		}
		a.freshness(w)
	})
}

// allowSummary is the allow-list on one line.
func allowSummary(t api.Tenant) string {
	if len(t.Allow) == 0 {
		return "nobody"
	}
	s := joinComma(t.Allow)
	if t.Runtime {
		s += " (runtime)"
	}
	return s
}

func runTenantShow(ctx context.Context, a *app, cmd *command, args []string) error {
	pos, c, err := a.begin(cmd, args, 1, 1, nil)
	if err != nil {
		return err
	}
	t, err := c.Tenant(ctx, pos[0])
	if err != nil {
		return err
	}
	return a.emit(t, func(w io.Writer) {
		fmt.Fprintf(w, "Name:\t%s\n", t.Name)
		fmt.Fprintf(w, "Service:\t%s\n", netip.AddrPortFrom(t.VIP, t.Port))
		fmt.Fprintf(w, "Storage:\t%s\n", dash(t.Storage))
		fmt.Fprintf(w, "Memory:\t%s\n", sizeStr(uint64(max(t.Memory, 0))))
		src := "configuration file"
		if t.Runtime {
			src = "changed at runtime"
		}
		fmt.Fprintf(w, "Allow (%s):\t%s\n", src, allowLines(t.Allow))
	})
}

func allowLines(ps []netip.Prefix) string {
	if len(ps) == 0 {
		return "nobody"
	}
	return strings.ReplaceAll(joinComma(ps), ",", "\n\t")
}

// listFlag collects comma-separated or repeated values.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(s string) error {
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l = append(*l, v)
		}
	}
	return nil
}

func runTenantAdd(ctx context.Context, a *app, cmd *command, args []string) error {
	var (
		t     config.Tenant
		allow listFlag
		mem   string
	)
	pos, err := a.parseArgs(cmd, args, 1, 1, func(fs *flag.FlagSet) {
		fs.StringVar(&t.Service.VIP, "vip", "", "the tenant's `VIP`")
		fs.IntVar(&t.Service.Port, "port", 0, "the tenant's `port` on the VIP")
		fs.StringVar(&t.Service.Scheduler, "s", "", "`scheduler` (default: the file's)")
		fs.StringVar(&t.Service.Forward, "forward", "", "`forwarding`: dr, nat or tun (default: the file's)")
		fs.Var(&allow, "allow", "allowed source `ADDR|CIDR` (comma-separated or repeated; none: nobody)")
		fs.StringVar(&mem, "memory", "", "KVS memory `size`, e.g. 256MiB")
		fs.StringVar(&t.KVS.Storage, "storage", "", "KVS `storage`: memory or durable")
		fs.BoolVar(&t.AllowAny, "allow-any", false, "confirm allow entries that admit (nearly) everybody (0.0.0.0/0, ::/0, shorter than /8)")
	})
	if err != nil {
		return err
	}
	if t.Service.VIP == "" || t.Service.Port == 0 {
		return usagef("tenant add needs --vip and --port")
	}
	if mem != "" {
		n, err := config.ParseSize(mem)
		if err != nil {
			return usagef("--memory %q: %v", mem, err)
		}
		t.KVS.Memory = config.Size(n)
	}
	t.Name, t.Allow = pos[0], allow
	if t.Allow == nil {
		t.Allow = []string{}
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	if err := c.AddTenant(ctx, t); err != nil {
		return err
	}
	return a.done(fmt.Sprintf("added tenant %s on %s:%d", t.Name, t.Service.VIP, t.Service.Port))
}

func runTenantDel(ctx context.Context, a *app, cmd *command, args []string) error {
	pos, c, err := a.begin(cmd, args, 1, 1, nil)
	if err != nil {
		return err
	}
	if err := c.DeleteTenant(ctx, pos[0]); err != nil {
		return err
	}
	return a.done("deleted tenant " + pos[0])
}

func runAllowList(ctx context.Context, a *app, cmd *command, args []string) error {
	pos, c, err := a.begin(cmd, args, 1, 1, nil)
	if err != nil {
		return err
	}
	list, err := c.Allow(ctx, pos[0])
	if err != nil {
		return err
	}
	return a.printAllow(pos[0], list)
}

func runAllowChange(ctx context.Context, a *app, cmd *command, args []string) error {
	min := 2
	if cmd.name == "set" {
		min = 1
	}
	var allowAny bool
	pos, err := a.parseArgs(cmd, args, min, -1, func(fs *flag.FlagSet) {
		fs.BoolVar(&allowAny, "allow-any", false, "confirm entries that admit (nearly) everybody (0.0.0.0/0, ::/0, shorter than /8)")
	})
	if err != nil {
		return err
	}
	var entries listFlag
	for _, e := range pos[1:] {
		_ = entries.Set(e)
	}
	if _, err := config.ParseAllow(entries); err != nil {
		return usagef("%v", err)
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	list, err := c.ChangeAllowRequest(ctx, pos[0], api.AllowRequest{Op: api.AllowOp(cmd.name), Entries: entries, AllowAny: allowAny})
	if err != nil {
		return err
	}
	return a.printAllow(pos[0], list)
}

func (a *app) printAllow(tenant string, list []netip.Prefix) error {
	if list == nil {
		list = []netip.Prefix{}
	}
	return a.emit(api.AllowList{Tenant: tenant, Allow: list}, func(w io.Writer) {
		if len(list) == 0 {
			fmt.Fprintf(w, "%s: nobody is allowed\n", tenant)
			return
		}
		for _, p := range list {
			fmt.Fprintln(w, p)
		}
	})
}

// runTenantCredentials issues a tenant's credential (panel and data API),
// or with --token an API token (data API only); the secret is shown once.
func runTenantCredentials(ctx context.Context, a *app, cmd *command, args []string) error {
	var token bool
	pos, c, err := a.begin(cmd, args, 1, 1, func(fs *flag.FlagSet) {
		fs.BoolVar(&token, "api-token", false, "issue an API token for the data API instead (many may exist)")
	})
	if err != nil {
		return err
	}
	cr, err := c.IssueCredential(ctx, pos[0], token)
	if err != nil {
		return err
	}
	return emitCredential(a, cr)
}

// runOperatorCredentials issues the operator's credential (the panel's
// view of every tenant); the previous one stops working.
func runOperatorCredentials(ctx context.Context, a *app, cmd *command, args []string) error {
	_, c, err := a.begin(cmd, args, 0, 0, nil)
	if err != nil {
		return err
	}
	cr, err := c.IssueCredential(ctx, "", false)
	if err != nil {
		return err
	}
	return emitCredential(a, cr)
}

func emitCredential(a *app, cr api.Credential) error {
	return a.emit(cr, func(w io.Writer) {
		who := cr.Tenant
		if who == "" {
			who = "operator"
		}
		fmt.Fprintf(w, "Subject:\t%s\n", who)
		fmt.Fprintf(w, "Kind:\t%s\n", cr.Kind)
		fmt.Fprintf(w, "ID:\t%s\n", cr.ID)
		fmt.Fprintf(w, "Secret:\t%s\n", cr.Secret)
		fmt.Fprintln(w, "(shown once: lbd keeps only its hash)")
	})
}
