// Package realserver prepares a Linux host to be a real server behind an
// IPVS director in DR (direct server return) mode.
//
// In DR mode the director forwards a client's packet unchanged, VIP and all,
// to a real server's MAC address, and the real server answers the client
// directly from the VIP. So each real server must accept packets for the VIP
// (the VIP is configured on lo as a /32 or /128) without ever claiming the
// VIP on the wire, which would steal it from the director: the sysctls
// arp_ignore=1 (answer ARP only for addresses on the receiving interface)
// and arp_announce=2 (never use the VIP as the source of an ARP request)
// are set on "all", on "lo" and on each interface facing the director.
// Seed 000 did this by hand on every storage server.
//
// lbd owns only what it changed. Every address it added and every sysctl it
// changed (with the value it found) is recorded in a state file, written
// before the change is made, so a restarted lbd adopts them, and Remove
// deletes only those addresses and puts back the previous sysctl values. An
// address an operator had already put on lo, or a sysctl that already had a
// suitable value, is left as it is.
//
// Everything happens in one network namespace, by default the caller's.
// Addresses go through a netlink handle opened in that namespace; sysctls
// are written through /proc/sys by a thread that has entered it, since
// /proc/sys/net shows the namespace of the thread that opens the file.
package realserver
