package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/lbd-project/lbd/internal/api"
)

func runStatus(ctx context.Context, a *app, cmd *command, args []string) error {
	var rate bool
	_, c, err := a.begin(cmd, args, 0, 0, func(fs *flag.FlagSet) {
		fs.BoolVar(&rate, "rate", false, "show rates (per second) instead of counters, like ipvsadm --rate")
	})
	if err != nil {
		return err
	}
	st, err := c.Status(ctx)
	if err != nil {
		return err
	}
	return a.emit(st, func(w io.Writer) { a.statusTable(w, st, rate); a.freshness(w) })
}

// statusTable prints the node, then its services like ipvsadm -Ln --stats.
func (a *app) statusTable(w io.Writer, st api.Status, rate bool) {
	fmt.Fprintf(w, "Node %s, role %s, config %s, up %s\n", st.Node, st.Role, st.ConfigFile, a.ago(st.Started))
	for _, v := range st.VRRP {
		fmt.Fprintf(w, "VRRP %d on %s: %s since %s ago, priority %d, %d transitions, VIPs %s\n",
			v.VRID, v.Interface, strings.ToUpper(v.State), a.ago(v.Since), v.Priority, v.Transitions, joinComma(v.VIPs))
	}
	if cl := st.Cluster; cl != nil && cl.Stale != "" {
		fmt.Fprintf(w, "SERVING LAST STATE: %s\n", cl.Stale)
	}
	for _, s := range st.IPVSSync {
		fmt.Fprintf(w, "IPVS %s\n", s)
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
	cols := "Conns\tInPkts\tOutPkts\tInBytes\tOutBytes"
	if rate {
		cols = "CPS\tInPPS\tOutPPS\tInBPS\tOutBPS"
	}
	fmt.Fprintln(w, "Prot LocalAddress:Port\tScheduler\tForward\tWeight\tHealth\tSince\tActConn\tInActConn\t"+cols)
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
		fmt.Fprintf(w, "%s  %s%s\t%s\t%s\t\t\t\t\t\t%s\n",
			strings.ToUpper(s.Protocol), netip.AddrPortFrom(s.VIP, s.Port), label, sched, forwardName(s.Forward), statCols(s.Stats, rate))
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
			fmt.Fprintf(w, "  -> %s\t\t%s\t%s\t%s\t%s\t%d\t%d\t%s%s\n",
				netip.AddrPortFrom(rl.Addr, rl.Port), forwardName(rl.Forward), weight, health, a.ago(rl.HealthSince),
				rl.ActiveConns, rl.InactConns, statCols(rl.Stats, rate), note)
		}
	}
}

// statCols are the counters, or with rate the rates, as table cells.
func statCols(s api.Stats, rate bool) string {
	if rate {
		return fmt.Sprintf("%d\t%d\t%d\t%d\t%d", s.CPS, s.InPPS, s.OutPPS, s.InBPS, s.OutBPS)
	}
	return fmt.Sprintf("%d\t%d\t%d\t%d\t%d", s.Conns, s.InPkts, s.OutPkts, s.InBytes, s.OutBytes)
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
