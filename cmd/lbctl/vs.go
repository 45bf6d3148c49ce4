package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/lbd-project/lbd/internal/api"
	"github.com/lbd-project/lbd/pkg/config"
)

func runVSList(ctx context.Context, a *app, cmd *command, args []string) error {
	_, c, err := a.begin(cmd, args, 0, 0, nil)
	if err != nil {
		return err
	}
	svcs, err := c.Services(ctx)
	if err != nil {
		return err
	}
	return a.emit(svcs, func(w io.Writer) {
		fmt.Fprintln(w, "NAME\tTENANT\tPROTO\tVIP:PORT\tSCHED\tFORWARD\tREALS\tUP\tIN KERNEL")
		for _, s := range svcs {
			up := 0
			for _, r := range s.Reals {
				if r.Health != "down" {
					up++
				}
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%v\n", s.Name, dash(s.Tenant), s.Protocol,
				netip.AddrPortFrom(s.VIP, s.Port), s.Scheduler, s.Forward, len(s.Reals), up, s.InKernel)
		}
	})
}

// realsFlag collects --real ADDR[:PORT][@WEIGHT].
type realsFlag []config.Real

func (r *realsFlag) String() string { return fmt.Sprint(len(*r)) }

func (r *realsFlag) Set(s string) error {
	rl, err := parseRealSpec(s)
	if err != nil {
		return err
	}
	*r = append(*r, rl)
	return nil
}

// parseRealSpec parses ADDR[:PORT][@WEIGHT].
func parseRealSpec(s string) (config.Real, error) {
	addr, w, hasW := strings.Cut(s, "@")
	var rl config.Real
	if hasW {
		n, err := strconv.Atoi(w)
		if err != nil {
			return rl, fmt.Errorf("bad weight in %q", s)
		}
		rl.Weight = &n
	}
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		rl.Address, rl.Port = ap.Addr().String(), int(ap.Port())
		return rl, nil
	}
	a, err := netip.ParseAddr(strings.Trim(addr, "[]"))
	if err != nil {
		return rl, fmt.Errorf("bad real server %q (want ADDR[:PORT][@WEIGHT])", s)
	}
	rl.Address = a.String()
	return rl, nil
}

func runVSAdd(ctx context.Context, a *app, cmd *command, args []string) error {
	var (
		vs      config.VirtualService
		reals   realsFlag
		persist time.Duration
	)
	pos, err := a.parseArgs(cmd, args, 1, 1, func(fs *flag.FlagSet) {
		fs.StringVar(&vs.Protocol, "p", "tcp", "`protocol`: tcp or udp")
		fs.StringVar(&vs.Scheduler, "s", "", "`scheduler`: "+strings.Join(config.Schedulers, ", ")+" (default: the file's)")
		fs.StringVar(&vs.Forward, "forward", "", "`forwarding`: dr, nat or tun (default: the file's)")
		fs.DurationVar(&persist, "persistence", 0, "persistence `timeout` (0: none)")
		fs.Var(&reals, "real", "real server `ADDR[:PORT][@WEIGHT]` (repeatable)")
	})
	if err != nil {
		return err
	}
	ap, err := netip.ParseAddrPort(pos[0])
	if err != nil {
		return usagef("bad VIP:PORT %q", pos[0])
	}
	if len(reals) == 0 {
		return usagef("a virtual service needs at least one --real")
	}
	vs.VIP, vs.Port, vs.Reals = ap.Addr().String(), int(ap.Port()), reals
	vs.PersistenceTimeout = config.Duration(persist)
	c, err := a.client()
	if err != nil {
		return err
	}
	if err := c.AddService(ctx, vs); err != nil {
		return err
	}
	return a.done(fmt.Sprintf("added %s/%s", vs.Protocol, ap))
}

func runVSDel(ctx context.Context, a *app, cmd *command, args []string) error {
	pos, c, err := a.begin(cmd, args, 1, 1, nil)
	if err != nil {
		return err
	}
	name := serviceName(pos[0])
	if err := c.DeleteService(ctx, name); err != nil {
		return err
	}
	return a.done("deleted " + name)
}

// serviceName turns VIP:PORT into tcp/VIP:PORT; names and proto/VIP:PORT
// pass unchanged.
func serviceName(s string) string {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return "tcp/" + ap.String()
	}
	return s
}

// done reports a successful change: a line for humans, {"ok":true,...}
// for scripts.
func (a *app) done(msg string) error {
	return a.emit(struct {
		api.OK
		Message string `json:"message"`
	}{api.OK{OK: true}, msg}, func(w io.Writer) { fmt.Fprintln(w, msg) })
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
