// Package acl fences each tenant's service (VIP, port, protocol) so that only
// the tenant's own source addresses reach it, enforced by the Linux kernel.
//
// # Kernel layout
//
// Each tenant gets one ipset of type hash:net per address family it serves
// (named "<prefix><4|6>-<tenant>-<hash>", e.g. "LBD4-user1-1c2d3e4f") and
// exactly one rule per family in lbd's own filter chain (default "LBD-ACL"),
// which is jumped to from the top of INPUT:
//
//	-A INPUT -m comment --comment lbd-acl -j LBD-ACL
//	-A LBD-ACL -d 203.0.113.10/32 -p tcp -m tcp --dport 13101 \
//	    -m set ! --match-set LBD4-user1-1c2d3e4f src \
//	    -m comment --comment "lbd-acl:user1:5e6f7a8b" -j DROP
//
// The rule only ever drops (or rejects): an allowed packet returns to INPUT
// and meets the operator's own rules as if lbd were not there. lbd never
// accepts on the operator's behalf, so a host whose INPUT policy is DROP must
// still accept the tenant ports itself. Matching every packet (not only new
// connections) means removing a source also cuts its established
// connections at the next packet.
//
// Changing an allow-list touches only the set, never a rule. The per-packet
// cost does not grow with the list: a hash:net lookup costs one hash probe
// per distinct prefix length in the set (at most 32 or 128), however many
// entries there are. It does grow with the number of tenants, since packets
// entering the host walk one rule per tenant until one matches its
// destination; at the scale of this project (about a thousand tenants) that
// is a few microseconds per packet. Gating the jump on a hash:ip,port set of
// fenced services, or kube-proxy's single hash:ip,port,net set, would make
// it constant, at the price of the per-tenant set swap used below.
//
// A one-entry change is a single kernel operation and therefore atomic; any
// larger change (and every whole-list replacement) builds a complete
// temporary set and swaps it in with one "ipset swap", so the kernel
// enforces either the old list or the new one, never a mixture. If any
// step fails before the swap, the old list stays enforced and the error is
// returned.
//
// The iptables-legacy and iptables-nft backends keep separate tables, and
// the kernel runs both: a DROP in either one drops, so lbd's fence holds
// whichever backend the operator's own rules use.
//
// # Why netlink for ipset and iptables-restore for rules
//
// Sets are driven over netlink rather than by running "ipset restore": one
// allow-list update is one netlink round trip (about 15 microseconds) where
// fork+exec of the ipset binary alone costs milliseconds, which would eat
// the 2 ms budget for an update; netlink errors come back typed
// (IPSET_ERR_EXIST and so on) instead of as text to parse; and a netlink
// socket opened in a network namespace stays bound to it. Set creation,
// swap and destruction use github.com/vishvananda/netlink. Entries are added
// and deleted with a small encoder of our own that packs up to 256 entries
// into one message (IPSET_ATTR_ADT, as "ipset restore" does; the library
// sends one message per entry), and sets are listed with a small decoder of
// our own (the library's splits big sets into several results, logs through
// the global logger, and may panic on unexpected errors). A full apply of
// 1,000 tenants x 50 sources is therefore about 1,200 netlink round trips
// and two process runs.
//
// Rules are read with github.com/coreos/go-iptables but written with
// iptables-restore --noflush: go-iptables runs one iptables process per rule
// and has no transaction, whereas one restore run commits all rule changes
// of a family in a single atomic step (a tenant whose VIP or port changes
// loses its old rule and gains its new one in the same commit) and costs one
// process for 1,000 tenants instead of 1,000.
//
// # Failing closed
//
//   - An empty allow-list means nobody: the set is empty and the rule drops
//     everything to the port.
//   - Apply returns only after the tenant's rule is committed, so the caller
//     must call it before announcing a service (adding it to IPVS), and must
//     withdraw a service before calling Remove, which opens the port.
//   - The order is always: fill the set, then commit the rule that uses it;
//     delete the rule, then destroy the set. A crash between any two steps
//     leaves either the old enforcement or a harmless orphan set, which the
//     next Apply adopts or removes.
//   - Close (stopping lbd) leaves every rule and set in place. Only Purge
//     removes them, for uninstalling.
//
// # Ownership
//
// The Manager creates, adopts and removes only its own chain and the sets
// whose names carry its prefix. It inserts a single jump at the top of INPUT
// and never moves, rewrites or deletes anyone else's rules. After a restart,
// Apply adopts whatever the previous run left: sets with the right name and
// content are kept as they are (counters and all), differing ones are
// swapped, and leftovers are removed. Adopt reads those fences back before
// the first Apply, for a caller that must know what is fenced (to keep
// fencing a service that is still draining).
//
// # Network namespaces
//
// Options.NetNS names a network namespace to work in. The Manager keeps a
// goroutine locked to an OS thread which has entered the namespace and never
// leaves it. The netlink sockets are opened on that thread (a socket stays in
// the namespace it was created in), and the iptables binaries are started
// from it (the goroutine exits without unlocking, so the runtime retires the
// thread); a child process inherits the namespace of the thread that forks
// it, so iptables and iptables-restore act on that namespace while the rest
// of the process stays where it was.
package acl
