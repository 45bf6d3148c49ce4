package kvs

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"github.com/lbd-project/lbd/pkg/slots"
)

// ClusterStatus is a storage node's view of its clustered tenants, for
// `lbctl kvs status`.
type ClusterStatus struct {
	// Node is this node's name.
	Node string `json:"node"`
	// Members are the storage nodes of the storage membership (see
	// MembersStatus).
	Members []MemberStatus `json:"members,omitempty"`
	// Tenants are the clustered tenants, sorted by name.
	Tenants []TenantClusterStatus `json:"tenants"`
}

// TenantClusterStatus is one tenant's placement and replication state.
type TenantClusterStatus struct {
	Tenant      string `json:"tenant"`
	Replicas    int    `json:"replicas"`
	Replication string `json:"replication"`
	// Epoch is the highest slot epoch (it grows with every failover).
	Epoch uint64 `json:"epoch"`
	// Nodes are the slots each node holds.
	Nodes []NodeSlots `json:"nodes"`
	// Unavailable counts slots without a primary that serves.
	Unavailable int `json:"unavailable"`
	// OutOfSync counts the backups (slot, node) not in sync: they miss
	// writes until rebuilt (the lag in slots).
	OutOfSync int `json:"out_of_sync"`
	// Moving counts slots with a move under way (slots.Slot.Next).
	Moving int `json:"moving"`
	// MinInSync is the fewest in-sync copies (the primary and its in-sync
	// backups) of any slot: below replicas+1 only while a failed node's
	// copies are rebuilt, never because of a move.
	MinInSync int `json:"min_in_sync"`
	// Degraded counts slots with fewer in-sync copies than replicas+1 (or
	// than the nodes, if fewer): a failed node's copies not rebuilt yet.
	Degraded int `json:"degraded"`
	// Rebuilds are the rebuilds this node runs as a primary.
	Rebuilds []RebuildProgress `json:"rebuilds,omitempty"`
}

// NodeSlots is what one node holds of a tenant.
type NodeSlots struct {
	Node      string `json:"node"`
	Primaries int    `json:"primaries"`
	Backups   int    `json:"backups"`
	InSync    int    `json:"in_sync"`
}

// RebuildProgress is one backup's rebuild by this node.
type RebuildProgress struct {
	Backup     string `json:"backup"`
	Slots      int    `json:"slots"`
	ItemsSent  int64  `json:"items_sent"`
	ItemsTotal int64  `json:"items_total"`
	Done       bool   `json:"done"`
	Error      string `json:"error,omitempty"`
}

// ClusterStatus returns the node's view of its clustered tenants; false
// if the tier has not joined a cluster.
func (t *Tier) ClusterStatus() (ClusterStatus, bool) {
	t.mu.Lock()
	n := t.cluster
	t.mu.Unlock()
	if n == nil {
		return ClusterStatus{}, false
	}
	st := ClusterStatus{Node: n.opts.Node}
	st.Members, _ = MembersStatus(n.opts.Store)
	n.mu.Lock()
	routers := make([]*router, 0, len(n.routers))
	for _, r := range n.routers {
		routers = append(routers, r)
	}
	n.mu.Unlock()
	sort.Slice(routers, func(i, j int) bool { return routers[i].tenant < routers[j].tenant })
	for _, r := range routers {
		m := r.m.Load()
		ts := TenantClusterStatus{Tenant: r.tenant}
		if m != nil {
			ts = mapStatus(r.tenant, m)
		}
		for _, p := range r.repl.progress() {
			if m != nil && !slices.Contains(m.Nodes, p.Backup) {
				continue // a node no longer in the map (drained, removed)
			}
			ts.Rebuilds = append(ts.Rebuilds, RebuildProgress{Backup: p.Backup, Slots: p.Slots, ItemsSent: p.ItemsSent, ItemsTotal: p.ItemsAll, Done: p.Done, Error: p.Err})
		}
		st.Tenants = append(st.Tenants, ts)
	}
	return st, true
}

// mapStatus summarizes a slot map.
func mapStatus(tenant string, m *slots.Map) TenantClusterStatus {
	ts := TenantClusterStatus{Tenant: tenant, Replicas: m.Replicas, Replication: m.Replication, Epoch: m.MaxEpoch()}
	by := map[string]*NodeSlots{}
	get := func(n string) *NodeSlots {
		if by[n] == nil {
			by[n] = &NodeSlots{Node: n}
		}
		return by[n]
	}
	for _, n := range m.Nodes {
		get(n)
	}
	want := min(m.Replicas+1, len(m.Nodes))
	ts.MinInSync = want
	for _, s := range m.Slots {
		if len(s.Next) > 0 {
			ts.Moving++
		}
		c := len(s.InSync)
		if s.Primary == "" {
			ts.Unavailable++
		} else {
			get(s.Primary).Primaries++
			c++
		}
		ts.MinInSync = min(ts.MinInSync, c)
		if c < want {
			ts.Degraded++
		}
		for _, b := range s.Backups {
			get(b).Backups++
			if slices.Contains(s.InSync, b) {
				get(b).InSync++
			} else {
				ts.OutOfSync++
			}
		}
	}
	for _, ns := range by {
		ts.Nodes = append(ts.Nodes, *ns)
	}
	sort.Slice(ts.Nodes, func(i, j int) bool { return ts.Nodes[i].Node < ts.Nodes[j].Node })
	return ts
}

// WriteClusterStatus prints st as `lbctl kvs status` shows it; bars draws
// rebuild progress bars (for a terminal).
func WriteClusterStatus(w io.Writer, st ClusterStatus, bars bool) {
	if len(st.Members) > 0 {
		WriteMembers(w, st.Members, bars)
	}
	for _, ts := range st.Tenants {
		fmt.Fprintf(w, "tenant %s: %d slots, replicas %d %s, epoch %d, %d unavailable, %d backups out of sync, %d degraded, %d moving\n",
			ts.Tenant, slots.Count, ts.Replicas, ts.Replication, ts.Epoch, ts.Unavailable, ts.OutOfSync, ts.Degraded, ts.Moving)
		fmt.Fprintf(w, "  %-16s %9s %8s %8s\n", "node", "primaries", "backups", "in-sync")
		for _, n := range ts.Nodes {
			fmt.Fprintf(w, "  %-16s %9d %8d %8d\n", n.Node, n.Primaries, n.Backups, n.InSync)
		}
		for _, r := range ts.Rebuilds {
			state := "running"
			switch {
			case r.Error != "":
				state = "stopped: " + r.Error
			case r.Done:
				state = "done"
			}
			pct := 100.0
			if r.ItemsTotal > 0 {
				pct = 100 * float64(r.ItemsSent) / float64(r.ItemsTotal)
			}
			bar := ""
			if bars {
				full := int(pct / 5)
				bar = "[" + strings.Repeat("#", full) + strings.Repeat(".", 20-full) + "] "
			}
			fmt.Fprintf(w, "  rebuild of %s by %s: %d slots, %s%d/%d items (%.0f%%), %s\n",
				r.Backup, st.Node, r.Slots, bar, r.ItemsSent, r.ItemsTotal, pct, state)
		}
	}
}
