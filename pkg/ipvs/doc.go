// Package ipvs programs the kernel's IP Virtual Server table by reconciling:
// a desired set of virtual services and real servers is diffed against what
// the kernel has, and only the difference is written, through
// github.com/moby/ipvs.
//
// A Reconciler owns only the services it created. It records their keys in a
// state file, adopts them again after a restart without touching them when
// they already match, and never flushes the table, so services an operator
// added by hand (ipvsadm -A) survive. A real server that leaves the desired
// state is first set to weight 0 and deleted only after a drain period, so
// established connections finish; a virtual service that leaves is drained
// the same way before it is deleted.
//
// The kernel is reached through the small Kernel interface. NewNetlink
// implements it on a real kernel (per network namespace); the decision logic
// is tested against the fake in package ipvstest.
//
// Reconciling is cheap when little changed: after a full resync (at start,
// after an error, and every Options.ResyncInterval) the Reconciler trusts its
// record of what it applied, so a reload that changes one weight at 10,000
// services costs exactly one netlink write and no dump. Large plans (a first
// converge) are sent many requests per system call, each request still its
// own netlink message with its own acknowledgement.
//
// The kernel's connection sync daemons (IPVS_CMD_NEW_DAEMON, _DEL_DAEMON,
// _GET_DAEMON, which moby/ipvs names but does not call) are started and
// stopped by a SyncManager, which likewise owns only the daemons it started
// and records them in the state directory.
package ipvs
