package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/lbd-project/lbd/internal/api"
)

func runStatus(ctx context.Context, a *app, cmd *command, args []string) error {
	fs := a.flags(cmd.path, cmd.usage)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := nargs(cmd, pos, 0, 0); err != nil {
		return err
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	st, err := c.Status(ctx)
	if err != nil {
		return err
	}
	return a.emit(st, func(w io.Writer) { a.statusTable(w, st) })
}

// statusTable prints the node, then its services like ipvsadm -Ln --stats.
func (a *app) statusTable(w io.Writer, st api.Status) {
	fmt.Fprintf(w, "Node %s, role %s, config %s, up %s\n", st.Node, st.Role, st.ConfigFile, a.ago(st.Started))
	for _, v := range st.VRRP {
		fmt.Fprintf(w, "VRRP %d on %s: %s since %s ago, priority %d, %d transitions, VIPs %s\n",
			v.VRID, v.Interface, strings.ToUpper(v.State), a.ago(v.Since), v.Priority, v.Transitions, joinAddrs(v.VIPs))
	}
	r := st.Reconcile
	fmt.Fprintf(w, "Reconcile: last %s ago, took %s, %d runs, %d failed", a.ago(r.Last), r.Took, r.Count, r.Failures)
	if r.Error != "" {
		fmt.Fprintf(w, ", last error: %s", r.Error)
	}
	fmt.Fprintln(w)
	if r.IPVSError != "" {
		fmt.Fprintf(w, "IPVS: not programmed: %s\n", r.IPVSError)
	}
	if len(st.Services) == 0 {
		fmt.Fprintln(w, "\nNo virtual services.")
		return
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Prot LocalAddress:Port\tScheduler\tForward\tWeight\tHealth\tSince\tActConn\tInActConn\tConns\tInPkts\tOutPkts\tInBytes\tOutBytes\tCPS")
	fmt.Fprintln(w, "  -> RemoteAddress:Port\t\t\t\t\t\t\t\t\t\t\t\t\t")
	for _, s := range st.Services {
		label := ""
		if s.Tenant != "" {
			label = " (tenant " + s.Tenant + ")"
		}
		if !s.InKernel {
			label += " [not in kernel]"
		}
		sched := s.Scheduler
		if s.Persistence > 0 {
			sched += fmt.Sprintf(" persistent %s", s.Persistence)
		}
		fmt.Fprintf(w, "%s  %s%s\t%s\t%s\t\t\t\t\t\t%d\t%d\t%d\t%d\t%d\t%d\n",
			strings.ToUpper(s.Protocol), netip.AddrPortFrom(s.VIP, s.Port), label, sched, forwardName(s.Forward),
			s.Stats.Conns, s.Stats.InPkts, s.Stats.OutPkts, s.Stats.InBytes, s.Stats.OutBytes, s.Stats.CPS)
		for _, rl := range s.Reals {
			weight := fmt.Sprint(rl.Weight)
			if rl.Weight != rl.ConfigWeight {
				weight += fmt.Sprintf(" (of %d)", rl.ConfigWeight)
			}
			health := rl.Health
			if rl.Draining {
				health += ",draining"
			}
			note := ""
			if rl.LastError != "" && rl.Health == "down" {
				note = "\t" + rl.LastError
			}
			fmt.Fprintf(w, "  -> %s\t\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d%s\n",
				netip.AddrPortFrom(rl.Addr, rl.Port), forwardName(rl.Forward), weight, health, a.ago(rl.HealthSince),
				rl.ActiveConns, rl.InactConns, rl.Stats.Conns, rl.Stats.InPkts, rl.Stats.OutPkts, rl.Stats.InBytes, rl.Stats.OutBytes, rl.Stats.CPS, note)
		}
	}
}

// forwardName is ipvsadm's name of a forwarding method.
func forwardName(f string) string {
	switch f {
	case "dr":
		return "Route"
	case "nat":
		return "Masq"
	case "tun":
		return "Tunnel"
	}
	return f
}

func joinAddrs(as []netip.Addr) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, ",")
}
