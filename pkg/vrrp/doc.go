// Package vrrp implements VRRP version 3 (RFC 5798) over IPv4 and IPv6: the
// packet codec, a pure state machine (Initialize, Backup, Master, plus
// keepalived's Fault), and the network side that moves virtual IP addresses
// (VIPs) between two or more directors and announces them with gratuitous
// ARP (IPv4) or unsolicited neighbour advertisements (IPv6).
//
// It interoperates with keepalived 2.2 configured with "vrrp_version 3": the
// same multicast group (224.0.0.18), IP protocol 112, TTL 255, TOS 0xc0,
// advertisement interval in centiseconds, checksum over the IPv4
// pseudo-header (keepalived computes it that way too; see
// TestKeepalivedCapture), priority 0 on a clean stop and the same
// master-down interval, 3 x Master_Adver_Interval + Skew_Time where
// Skew_Time = (256 - Priority) x Master_Adver_Interval / 256.
//
// An instance whose VIPs are IPv6 speaks VRRPv3 over IPv6 as keepalived
// does (TestKeepalivedInteropIPv6): adverts to ff02::12 with hop limit 255
// from the interface's link-local address (RFC 5798 section 5.1.2), the
// checksum over the IPv6 pseudo-header, and adverts with any other hop
// limit dropped. An instance carries one family; mixing IPv4 and IPv6 VIPs
// is a Config error.
//
// # Use
//
// Build a Config per virtual router (keepalived's vrrp_instance), make an
// Instance with New and call Run in its own goroutine; cancel the context for
// a clean stop (priority 0, VIPs removed). State, Status, Options.OnStateChange
// and Notify report what happens. SetPriorityOffset and SetFault feed health
// into the election (keepalived's track weights and track scripts). Put
// instances whose VIPs must move together in a SyncGroup and run the group
// instead.
//
// # Security
//
// VRRPv3 has no authentication: RFC 5798 section 9 removed the schemes of
// VRRPv2. Anyone
// who can put a packet with TTL 255 on the segment can claim to be the
// Master and take the VIPs. The TTL check only proves that the sender is on
// the local link. When unicast peers are configured, adverts from any source
// that is not a configured peer are dropped (and counted in
// Stats.DroppedSource). On a shared segment, use unicast peers, or keep VRRP
// on a dedicated, trusted link.
//
// # Behaviour worth knowing
//
//   - Like keepalived by default (no use_vmac), the Master answers for the
//     VIPs with its own MAC address, not 00-00-5e-00-01-{VRID}; gratuitous
//     ARP requests (sender and target address = VIP) move neighbours' ARP
//     entries, and for IPv6 VIPs unsolicited neighbour advertisements to
//     ff02::1 with the Override flag (from the VIP, Router flag set when the
//     interface forwards IPv6, as the kernel sends its own) move their
//     neighbour entries. A burst of GARPMasterRepeat announcements goes
//     out on becoming Master, a second burst after GARPMasterDelay, and
//     optionally a refresh (the GARP settings govern both kinds).
//   - VIPs are added with their prefix length (keepalived adds a bare
//     address as /32), IPv6 ones with IFA_F_NODAD as keepalived does: DAD
//     would hold a moving VIP tentative. A Backup removes the VIPs at start
//     too, so VIPs left behind by a run that was killed go away. The address
//     owner (priority 255) owns them for real: it adds them if missing but
//     never removes them.
//   - An IPv6 instance waits at start until its interface has a link-local
//     address that passed DAD (a link that is down has none), holding
//     nothing and sending nothing meanwhile.
//   - With exactly one unicast peer there can be no second Backup, so a
//     Backup that receives priority 0 takes over at once instead of after
//     Skew_Time, which exists only to let the best of several Backups win.
//   - preempt_delay, as in keepalived, holds off preemption for that long
//     after start or after leaving FAULT.
//   - A sync group member becomes Master on a timeout only if no other member
//     still hears a Master (keepalived's rule), so a group whose members
//     disagree settles in BACKUP instead of flapping.
//   - Restarting an instance hands Mastership over (priority 0), so a
//     daemon should keep instances running across reloads unless their own
//     Config changed; priority changes go through SetPriorityOffset.
//   - Each Instance has its own raw socket and sees every VRRP packet on the
//     host; several VRIDs per interface work, at the cost of each instance
//     skipping the others' adverts.
//   - VRRPv2 is not spoken at all, so a keepalived peer needs
//     vrrp_version 3.
//
// # Layout
//
//   - packet.go: Advertisement, Marshal, Decode, Checksum.
//   - state.go, fsm.go, fsm_events.go: Machine, the state machine, driven by
//     events and a caller-supplied time; it performs no I/O.
//   - config.go, instance.go, run.go, transition.go: Instance, which ties a
//     Machine to the network.
//   - conn.go, garp.go, ndisc.go, vip.go, track.go: raw sockets (IPv4 and
//     IPv6), gratuitous ARP, neighbour advertisements, netlink addresses,
//     link tracking.
//   - group.go: SyncGroup. notify.go: notify scripts. mailbox.go: the
//     non-blocking queue instances and groups message each other with.
package vrrp
