package keepalived

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/lbd-project/lbd/pkg/config"
)

// vrrpResult is the converted vrrp_instance and what it says about the
// node it runs on.
type vrrpResult struct {
	cfg      config.VRRP
	iface    string
	priority int
	srcIP    string // unicast_src_ip or mcast_src_ip: this node's address
	srcPos   Pos
	peers    []peer
}

// peer is a unicast_peer: another director.
type peer struct {
	addr string
	pos  Pos
}

// vrrpReasons explains the vrrp_instance options lbd has no equivalent for.
var vrrpReasons = map[string]string{
	"authentication":             "VRRPv3 (RFC 5798), which lbd speaks, has no authentication; dropped",
	"track_script":               "lbd has no VRRP tracking scripts",
	"track_file":                 "lbd has no tracked files",
	"track_process":              "lbd has no tracked processes",
	"track_bfd":                  "lbd has no BFD",
	"notify":                     "lbd runs notify_master, notify_backup and notify_fault only",
	"notify_stop":                "lbd runs notify_master, notify_backup and notify_fault only",
	"notify_master_rx_lower_pri": "lbd runs notify_master, notify_backup and notify_fault only",
	"smtp_alert":                 "lbd sends no mail; watch `lbctl events` or the metrics",
	"use_vmac":                   "lbd has no virtual MAC",
	"vmac_xmit_base":             "lbd has no virtual MAC",
	"virtual_routes":             "lbd does not manage routes",
	"virtual_rules":              "lbd does not manage routing rules",
	"dont_track_primary":         "lbd always tracks the VRRP interface",
	"garp_master_repeat":         "lbd sends a fixed gratuitous ARP burst",
	"garp_master_refresh_repeat": "lbd sends a fixed gratuitous ARP burst",
	"garp_lower_prio_delay":      "lbd has no such gratuitous ARP setting",
	"garp_lower_prio_repeat":     "lbd has no such gratuitous ARP setting",
	"strict_mode":                "lbd follows RFC 5798",
	"accept":                     "lbd decides accept mode itself",
	"no_accept":                  "lbd decides accept mode itself",
	"native_ipv6":                "lbd picks the VRRP family from the VIPs",
	"skip_check_adv_addr":        "lbd checks advertised addresses",
	"debug":                      "lbd logs through slog",
}

func (c *converter) vrrpInstance(n *Node) {
	if c.vrrp != nil {
		c.cannot(n, "lbd runs one VRRP instance (all VIPs move together); only the first vrrp_instance is converted")
		return
	}
	v := &vrrpResult{cfg: config.VRRP{}, priority: config.DefaultPriority}
	var master *Node
	for _, ch := range n.Children {
		switch ch.Keyword {
		case "state":
			if strings.EqualFold(ch.Arg(0), "MASTER") {
				master = ch
			}
		case "interface":
			v.iface = ch.Arg(0)
		case "virtual_router_id":
			if id, ok := c.integer(ch, 1, 255); ok {
				v.cfg.VirtualRouterID = id
			}
		case "priority":
			if p, ok := c.integer(ch, 1, 255); ok {
				v.priority = p
			}
		case "advert_int":
			if d, ok := c.seconds(ch); ok {
				v.cfg.AdvertInterval = config.Duration(d)
			}
		case "nopreempt":
			v.cfg.NoPreempt = true
		case "preempt":
		case "preempt_delay":
			if d, ok := c.seconds(ch); ok {
				v.cfg.PreemptDelay = config.Duration(d)
			}
		case "virtual_ipaddress":
			c.vips(ch, v, false)
		case "virtual_ipaddress_excluded":
			c.vips(ch, v, true)
		case "unicast_src_ip", "mcast_src_ip":
			if a, _, ok := hostAddr(ch.Arg(0)); ok {
				v.srcIP, v.srcPos = a.String(), ch.Pos
			} else {
				c.cannot(ch, "%q is not an IP address", ch.Arg(0))
			}
		case "unicast_peer":
			c.peers(ch, v)
		case "track_interface":
			c.trackInterfaces(ch, v)
		case "notify_master", "notify_backup", "notify_fault":
			c.notify(ch, v)
		case "garp_master_delay":
			if d, ok := c.seconds(ch); ok {
				cd := config.Duration(d)
				v.cfg.GARPMasterDelay = &cd
			}
		case "garp_master_refresh":
			if d, ok := c.seconds(ch); ok {
				v.cfg.GARPMasterRefresh = config.Duration(d)
			}
		case "lvs_sync_daemon_interface":
			c.syncd = &syncdResult{cfg: config.LVSSyncDaemon{Interface: ch.Arg(0)}, pos: ch.Pos}
		case "version":
			if ch.Arg(0) != "3" {
				c.cannot(ch, "lbd speaks VRRPv3 (RFC 5798) only; the peer must speak it too")
			}
		default:
			c.unsupported(ch, vrrpReasons)
		}
	}
	if master != nil {
		c.note(master.Pos, "state MASTER is not kept: lbd starts every director as backup and elects the master by priority (%d here)", v.priority)
	}
	if v.iface == "" {
		c.cannot(n, "it has no interface; lbd needs one for VRRP")
		return
	}
	if v.cfg.VirtualRouterID == 0 {
		c.cannot(n, "it has no virtual_router_id")
		return
	}
	if len(v.cfg.VIPs) == 0 {
		c.cannot(n, "it has no virtual_ipaddress")
		return
	}
	if len(v.peers) > 0 {
		v.cfg.Unicast = true
	}
	c.vrrp = v
}

// vips converts a virtual_ipaddress block. Each line is
// ADDR[/MASK] [brd X] [dev IF] [scope S] [label L] ...; lbd puts VIPs up as
// host addresses on the VRRP interface.
func (c *converter) vips(n *Node, v *vrrpResult, excluded bool) {
	if excluded && len(n.Children) > 0 {
		c.note(n.Pos, "virtual_ipaddress_excluded: lbd has no excluded addresses; they become ordinary VIPs")
	}
	for _, e := range n.Children {
		a, bits, ok := hostAddr(e.Keyword)
		if !ok {
			c.cannot(e, "%q is not an IP address", e.Keyword)
			continue
		}
		if bits >= 0 && bits != a.BitLen() {
			c.cannot(e, "lbd adds a VIP as a host address (/%d); the /%d prefix is dropped", a.BitLen(), bits)
		}
		var dropped []string
		for i := 0; i < len(e.Args); i++ {
			switch opt := e.Args[i]; {
			case opt == "dev" && i+1 < len(e.Args):
				if dev := e.Args[i+1]; v.iface != "" && dev != v.iface {
					c.cannot(e, "lbd puts every VIP on the VRRP interface %s, not %s", v.iface, dev)
				}
				i++
			case opt == "label" && i+1 < len(e.Args):
				i++
			default:
				dropped = append(dropped, opt)
			}
		}
		if len(dropped) > 0 {
			c.cannot(e, "address options %q are not kept", strings.Join(dropped, " "))
		}
		s := a.String()
		if slices.Contains(v.cfg.VIPs, s) {
			c.cannot(e, "the address is listed twice")
			continue
		}
		v.cfg.VIPs = append(v.cfg.VIPs, s)
	}
}

func (c *converter) peers(n *Node, v *vrrpResult) {
	for _, e := range n.Children {
		a, err := netip.ParseAddr(e.Keyword)
		if err != nil {
			c.cannot(e, "%q is not an IP address", e.Keyword)
			continue
		}
		if len(e.Args) > 0 {
			c.cannot(e, "peer options %q are not kept", strings.Join(e.Args, " "))
		}
		v.peers = append(v.peers, peer{addr: a.String(), pos: e.Pos})
	}
}

func (c *converter) trackInterfaces(n *Node, v *vrrpResult) {
	for _, e := range n.Children {
		if len(e.Args) > 0 {
			c.cannot(e, "lbd has no tracking weights: the interface going down puts the director in FAULT")
		}
		v.cfg.TrackInterfaces = append(v.cfg.TrackInterfaces, e.Keyword)
	}
}

// notify converts a notify script. keepalived runs it as an optional
// user and group; lbd runs it as itself.
func (c *converter) notify(n *Node, v *vrrpResult) {
	if len(n.Args) > 1 {
		c.cannot(n, "lbd runs notify scripts as its own user; %q dropped", strings.Join(n.Args[1:], " "))
	}
	switch n.Keyword {
	case "notify_master":
		v.cfg.NotifyMaster = n.Arg(0)
	case "notify_backup":
		v.cfg.NotifyBackup = n.Arg(0)
	case "notify_fault":
		v.cfg.NotifyFault = n.Arg(0)
	}
}

// syncdResult is a converted lvs_sync_daemon (global_defs) or
// lvs_sync_daemon_interface (vrrp_instance).
type syncdResult struct {
	cfg config.LVSSyncDaemon
	pos Pos
}

// syncDaemon converts global_defs' lvs_sync_daemon <INTERFACE>
// [[inst] <VRRP_INSTANCE>] [id <SYNC_ID>] [maxlen <LEN>] [port <PORT>]
// [ttl <TTL>] [group <IP ADDR>]. lbd runs the sync daemons with its one
// VRRP instance, so the instance name is not kept.
func (c *converter) syncDaemon(n *Node) {
	if len(n.Args) == 0 {
		c.cannot(n, "it has no interface")
		return
	}
	r := &syncdResult{cfg: config.LVSSyncDaemon{Interface: n.Args[0]}, pos: n.Pos}
	num := func(s string, lo, hi int) (int, bool) {
		v, err := strconv.Atoi(s)
		if err != nil || v < lo || v > hi {
			c.cannot(n, "%q is not an integer from %d to %d", s, lo, hi)
			return 0, false
		}
		return v, true
	}
	args := n.Args[1:]
	for i := 0; i < len(args); i++ {
		key, val := args[i], ""
		if i+1 < len(args) {
			val = args[i+1]
		}
		switch key {
		case "inst":
			i++
		case "id":
			if v, ok := num(val, 0, 255); ok {
				r.cfg.SyncID = &v
			}
			i++
		case "maxlen":
			if v, ok := num(val, 1, 65507); ok {
				r.cfg.MaxLen = v
			}
			i++
		case "port":
			if v, ok := num(val, 1, 65535); ok {
				r.cfg.Port = v
			}
			i++
		case "ttl":
			if v, ok := num(val, 1, 255); ok {
				r.cfg.TTL = v
			}
			i++
		case "group":
			if a, err := netip.ParseAddr(val); err == nil && a.IsMulticast() {
				r.cfg.Group = a.String()
			} else {
				c.cannot(n, "group %q is not a multicast address", val)
			}
			i++
		default:
			if i > 0 {
				c.cannot(n, "unknown option %q", key)
			}
			// The first word after the interface is the VRRP instance.
		}
	}
	c.syncd = r
}
