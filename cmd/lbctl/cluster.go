package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/lbd-project/lbd/internal/api"
)

// Exit codes of the replicated state (see main.go).
const (
	// exitNoLeader: the cluster has no leader; nothing was written.
	exitNoLeader = 5
	// exitNotEverywhere: the change is committed and applied on the node
	// that took it, but not every node applied it within --wait.
	exitNotEverywhere = 6
)

// errNotEverywhere is a --wait that ran out.
var errNotEverywhere = errors.New("not applied on every node within --wait")

// clusterCommand is `lbctl cluster`: the replicated state's members.
func clusterCommand() *command {
	return &command{name: "cluster", summary: "the replicated cluster state: leader, members, joins", sub: []*command{
		{name: "status", summary: "leader, term, this node's applied index, each member's state and what the cluster survives", run: runClusterStatus},
		{name: "members", summary: "each member: voter or not, state, last contact, applied and reconciled index", run: runClusterMembers},
		{name: "join", usage: "[--voter] NODE HOST:PORT", summary: "add a node (a non-voter unless --voter); it serves its role once caught up", run: runClusterJoin},
		{name: "remove", usage: "NODE", summary: "remove a node from the cluster", run: runClusterRemove},
		clusterCertsCommand(),
	}}
}

func runClusterStatus(ctx context.Context, a *app, cmd *command, args []string) error {
	_, c, err := a.begin(cmd, args, 0, 0, nil)
	if err != nil {
		return err
	}
	st, err := c.ClusterStatus(ctx)
	if err != nil {
		return err
	}
	return a.emit(st, func(w io.Writer) {
		leader := st.Leader
		if leader == "" {
			leader = "NONE (no quorum: writes fail, every node keeps enforcing its last state)"
		}
		fmt.Fprintf(w, "Mode:\t%s\n", st.Mode)
		fmt.Fprintf(w, "Node:\t%s\n", st.Node)
		fmt.Fprintf(w, "Leader:\t%s\n", leader)
		if st.Term > 0 {
			fmt.Fprintf(w, "Term:\t%d\n", st.Term)
		}
		fmt.Fprintf(w, "Applied index:\t%d (reconciled %d)\n", st.AppliedIndex, st.ReconciledIndex)
		fmt.Fprintf(w, "Last contact:\t%s\n", contact(st.LastContact))
		caught := "yes"
		if !st.CaughtUp {
			caught = "not yet"
		}
		fmt.Fprintf(w, "Caught up:\t%s\n", caught)
		if st.Stale != "" {
			fmt.Fprintf(w, "SERVING LAST STATE:\t%s\n", st.Stale)
		}
		fmt.Fprintf(w, "Survives:\t%s\n\n", st.Survives)
		membersTable(w, st.Members)
	})
}

func runClusterMembers(ctx context.Context, a *app, cmd *command, args []string) error {
	_, c, err := a.begin(cmd, args, 0, 0, nil)
	if err != nil {
		return err
	}
	st, err := c.ClusterStatus(ctx)
	if err != nil {
		return err
	}
	return a.emit(st.Members, func(w io.Writer) { membersTable(w, st.Members) })
}

func membersTable(w io.Writer, ms []api.ClusterMember) {
	fmt.Fprintln(w, "NAME\tADDRESS\tVOTER\tSTATE\tLAST CONTACT\tAPPLIED\tRECONCILED")
	for _, m := range ms {
		voter := "no"
		if m.Voter {
			voter = "yes"
		}
		state := m.State
		if m.Error != "" {
			state += " (" + m.Error + ")"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%d\n", m.Name, dash(m.Address), voter, state, contact(m.LastContact), m.AppliedIndex, m.ReconciledIndex)
	}
}

// contact formats a last contact: 0 is the leader itself, < 0 never.
func contact(d time.Duration) string {
	switch {
	case d < 0:
		return "never"
	case d == 0:
		return "-"
	}
	return d.Truncate(time.Millisecond).String() + " ago"
}

func runClusterJoin(ctx context.Context, a *app, cmd *command, args []string) error {
	var voter bool
	pos, c, err := a.begin(cmd, args, 2, 2, func(fs *flag.FlagSet) {
		fs.BoolVar(&voter, "voter", false, "join as a voter (keep the number of voters odd)")
	})
	if err != nil {
		return err
	}
	if err := c.JoinMember(ctx, api.JoinRequest{Name: pos[0], Address: pos[1], Voter: voter}); err != nil {
		return err
	}
	kind := "non-voter"
	if voter {
		kind = "voter"
	}
	return a.done(fmt.Sprintf("%s joined as a %s", pos[0], kind))
}

func runClusterRemove(ctx context.Context, a *app, cmd *command, args []string) error {
	pos, c, err := a.begin(cmd, args, 1, 1, nil)
	if err != nil {
		return err
	}
	if err := c.RemoveMember(ctx, pos[0]); err != nil {
		return err
	}
	return a.done("removed " + pos[0])
}

// reportApplied tells, after a write, which nodes have applied it; with
// --wait it waits for every node first. The report goes to stderr, so
// that stdout stays the command's answer.
func (a *app) reportApplied(ctx context.Context) error {
	if a.c == nil {
		return nil
	}
	idx := a.c.LastMeta().Index
	if idx == 0 {
		return nil
	}
	rep, err := a.c.WaitApplied(ctx, idx, a.g.wait)
	if err != nil {
		fmt.Fprintf(a.stderr, "committed at index %d and applied on this node; which other nodes have applied it is unknown: %v\n", idx, err)
		return nil
	}
	var have, lack []string
	for _, n := range rep.Nodes {
		if n.Applied {
			have = append(have, n.Name)
			continue
		}
		s := n.Name
		if n.Error != "" {
			s += " (" + n.Error + ")"
		}
		lack = append(lack, s)
	}
	if rep.All {
		fmt.Fprintf(a.stderr, "applied on every node (%d/%d) at index %d\n", len(have), len(rep.Nodes), idx)
		return nil
	}
	fmt.Fprintf(a.stderr, "committed at index %d; applied on %d/%d nodes: %s; not yet on: %s\n",
		idx, len(have), len(rep.Nodes), orNone(have), strings.Join(lack, ", "))
	if a.g.wait > 0 {
		return fmt.Errorf("%w (%s): %s", errNotEverywhere, a.g.wait, strings.Join(lack, ", "))
	}
	return nil
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// freshness is the line a read's table ends with: how fresh the node's
// state is.
func (a *app) freshness(w io.Writer) {
	if a.c == nil {
		return
	}
	m := a.c.LastMeta()
	if !m.Known {
		return
	}
	leader := m.Leader
	if leader == "" {
		leader = "none"
	}
	fmt.Fprintf(w, "\nState as of index %d on this node; leader %s, last contact %s\n", m.AppliedIndex, leader, contact(m.LastContact))
}
