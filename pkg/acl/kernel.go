package acl

import (
	"context"
	"net/netip"
)

// setType is the only ipset type lbd creates.
const setType = "hash:net"

// setInfo is one ipset as listed by the kernel.
type setInfo struct {
	name    string
	family  family
	typ     string
	entries []netip.Prefix
}

// kernel is the narrow privileged surface the Manager drives. The real one
// talks to netlink and iptables in a network namespace; tests use a fake.
// Every method is one kernel transaction or a read.
type kernel interface {
	// listSets returns the ipsets whose names keep accepts, with their
	// entries.
	listSets(ctx context.Context, keep func(name string) bool) ([]setInfo, error)
	// setSizes returns every set's entry count, from set headers only.
	setSizes(ctx context.Context) (map[string]int, error)
	// createSet creates an empty hash:net set; it fails if name exists.
	createSet(ctx context.Context, name string, f family, maxElem uint32) error
	// addEntries adds entries (already present ones are fine).
	addEntries(ctx context.Context, set string, entries []netip.Prefix) error
	// delEntries deletes entries (absent ones are fine).
	delEntries(ctx context.Context, set string, entries []netip.Prefix) error
	// swapSets exchanges the contents of two sets atomically.
	swapSets(ctx context.Context, a, b string) error
	// destroySet destroys a set no rule refers to.
	destroySet(ctx context.Context, name string) error
	// listRules returns "iptables -S chain" lines (with counters when
	// asked); exists is false when the chain does not exist.
	listRules(ctx context.Context, f family, chain string, counters bool) (lines []string, exists bool, err error)
	// restore runs iptables-restore --noflush: all or nothing.
	restore(ctx context.Context, f family, input []byte) error
	// close releases the namespace thread and netlink socket.
	close() error
}
