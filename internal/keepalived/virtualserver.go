package keepalived

import (
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lbd-project/lbd/pkg/config"
)

// keepalivedPersistence is persistence_timeout written without a value.
const keepalivedPersistence = 6 * time.Minute

// service is a converted virtual server with its health check, before the
// health checks are lifted into defaults.
type service struct {
	vs     config.VirtualService
	health config.Health
}

// vsAddr is one VIP:port a virtual_server (or its group) stands for.
type vsAddr struct {
	vip  netip.Addr
	port int
}

// vsSettings are the virtual_server options lbd keeps per service.
type vsSettings struct {
	scheduler, forward, protocol string
	persistence                  time.Duration
	opts                         checkOpts
	flags                        []*Node
	sorry                        *Node // sorry_server
	sorryInhibit                 bool
	sorryMethod                  string
	quorum                       *int
	hysteresis                   int
	quorumUp, quorumDown         string
}

// vsReasons explains the virtual_server options lbd has no equivalent for;
// the README's "Importing keepalived.conf" says what to use instead.
var vsReasons = map[string]string{
	"ha_suspend":              "lbd checks real servers whether or not the VIP is up",
	"persistence_granularity": "lbd's persistence is per client address (/32, /128)",
	"persistence_engine":      "lbd has no persistence engines",
	"ops":                     "lbd has no one-packet scheduling",
	"omega":                   "lbd leaves its services in place when it stops, so there is no quorum to lose then",
	"smtp_alert":              "lbd sends no mail; watch `lbctl events` or the metrics",
	"snmp_name":               "lbd has no SNMP; it exports Prometheus metrics",
	"ip_family":               "lbd services are VIP:port, never fwmark",
	"nat_mask":                "lbd does not use nat_mask",
	"backup_real_server":      "lbd has no failover pool; the server is not converted (a sorry_server takes over when the quorum is lost)",
	"failover_threshold":      "lbd has no failover pool",
	"failover_up":             "lbd has no failover pool; quorum_down runs when the quorum is lost",
	"failover_down":           "lbd has no failover pool; quorum_up runs when the quorum is back",
}

// schedFlags are the virtual_server keywords that set a scheduler flag,
// spelt as lbd's scheduler_flags.
var schedFlags = map[string]bool{
	"sh-port": true, "sh-fallback": true, "mh-port": true, "mh-fallback": true,
	"flag-1": true, "flag-2": true, "flag-3": true,
}

func (c *converter) virtualServer(n *Node) {
	addrs := c.vsAddresses(n)
	if len(addrs) == 0 {
		return
	}
	set, ok := c.vsSettings(n)
	if !ok {
		return
	}
	reals, health := c.realServers(n, set, addrs[0].port)
	if len(reals) == 0 {
		c.cannot(n, "it has no real servers that could be converted (an lbd service needs at least one)")
		return
	}
	for _, a := range addrs {
		key := set.protocol + "/" + netip.AddrPortFrom(a.vip, uint16(a.port)).String()
		if first, dup := c.seenVS[key]; dup {
			c.cannot(n, "%s is already defined at %s", key, first)
			continue
		}
		c.seenVS[key] = n.Pos
		vs := config.VirtualService{
			Service: config.Service{
				VIP:                a.vip.String(),
				Port:               a.port,
				Protocol:           set.protocol,
				Scheduler:          set.scheduler,
				Forward:            set.forward,
				PersistenceTimeout: config.Duration(set.persistence),
			},
			Reals: c.realsAt(reals, set.forward, a.port),
		}
		c.quorumSettings(&vs, set, a.port)
		c.svcs = append(c.svcs, service{vs: vs, health: health})
	}
}

// vsSettings reads the options of a virtual_server that are not real
// servers. keepalived's defaults are written out, because lbd's differ:
// keepalived forwards with NAT by default (lbd with DR) and, since 2.0,
// programs UDP when no protocol is given (lbd TCP).
func (c *converter) vsSettings(n *Node) (vsSettings, bool) {
	set := vsSettings{scheduler: config.DefaultScheduler, forward: "nat"}
	ok := true
	for _, ch := range n.Children {
		if c.checkOpt(&set.opts, ch) {
			continue
		}
		switch ch.Keyword {
		case "real_server":
		case "lb_algo", "lvs_sched":
			set.scheduler = c.scheduler(ch)
		case "lb_kind", "lvs_method":
			if f, good := c.forward(ch); good {
				set.forward = f
			}
		case "protocol":
			switch strings.ToUpper(ch.Arg(0)) {
			case "TCP":
				set.protocol = "tcp"
			case "UDP":
				set.protocol = "udp"
			default:
				c.cannot(ch, "lbd balances TCP and UDP only; the virtual server is not converted")
				ok = false
			}
		case "persistence_timeout":
			set.persistence = keepalivedPersistence
			if len(ch.Args) > 0 {
				if v, good := c.integer(ch, 1, 1<<31-1); good {
					set.persistence = time.Duration(v) * time.Second
				}
			}
		case "virtualhost":
			set.opts.host = ch.Arg(0)
		case "sorry_server":
			set.sorry = ch
		case "sorry_server_inhibit":
			if b, good := c.boolean(ch); good {
				set.sorryInhibit = b
			}
		case "sorry_server_lvs_method":
			if f, good := c.forward(ch); good {
				set.sorryMethod = f
			}
		case "quorum":
			if v, good := c.integer(ch, 1, 1<<24); good {
				set.quorum = &v
			}
		case "hysteresis":
			if v, good := c.integer(ch, 0, 1<<24); good {
				set.hysteresis = v
			}
		case "quorum_up", "quorum_down":
			if len(ch.Args) > 1 {
				c.cannot(ch, "lbd runs quorum scripts as its own user; %q dropped", strings.Join(ch.Args[1:], " "))
			}
			if ch.Keyword == "quorum_up" {
				set.quorumUp = ch.Arg(0)
			} else {
				set.quorumDown = ch.Arg(0)
			}
		default:
			if schedFlags[ch.Keyword] {
				set.flags = append(set.flags, ch)
				continue
			}
			c.unsupported(ch, vsReasons)
		}
	}
	if set.protocol == "" {
		// keepalived 2 reports it and programs UDP, the kernel's default.
		c.cannot(n, "it has no protocol: keepalived reports this and programs UDP, so the service is converted as udp; add protocol TCP if TCP was meant")
		set.protocol = "udp"
	}
	return set, ok
}

// unsupported reports an option from a table of reasons, or as unknown.
func (c *converter) unsupported(n *Node, reasons map[string]string) {
	if why, ok := reasons[n.Keyword]; ok {
		c.cannot(n, "%s", why)
		return
	}
	c.cannot(n, "unknown or unsupported keyword here")
}

// scheduler maps lb_algo/lvs_sched onto a scheduler lbd knows.
func (c *converter) scheduler(n *Node) string {
	s := strings.ToLower(n.Arg(0))
	if slices.Contains(config.Schedulers, s) {
		return s
	}
	c.cannot(n, "lbd does not offer the %q scheduler; using %s", s, config.DefaultScheduler)
	return config.DefaultScheduler
}

// forward maps lb_kind/lvs_method onto dr, nat or tun.
func (c *converter) forward(n *Node) (string, bool) {
	f := strings.ToLower(n.Arg(0))
	if !slices.Contains(config.Forwards, f) {
		c.cannot(n, "unknown forwarding method (want DR, NAT or TUN)")
		return "", false
	}
	if len(n.Args) > 1 {
		c.cannot(n, "lbd tunnels with ipip only; options %q dropped", strings.Join(n.Args[1:], " "))
	}
	return f, true
}

// services places the converted services in cfg. A health check that is
// the same for every service is lifted into defaults.health.
func (c *converter) services(cfg *config.Config) {
	if len(c.svcs) == 0 {
		return
	}
	same := true
	for _, s := range c.svcs[1:] {
		same = same && reflect.DeepEqual(s.health, c.svcs[0].health)
	}
	if same {
		cfg.Defaults.Health = c.svcs[0].health
	}
	for _, s := range c.svcs {
		vs := s.vs
		if !same {
			h := s.health
			vs.Health = &h
		}
		cfg.VirtualServices = append(cfg.VirtualServices, vs)
	}
}

// quorumSettings writes the scheduler flags, the sorry server and the
// quorum of a virtual_server into the service vs at port.
func (c *converter) quorumSettings(vs *config.VirtualService, set vsSettings, port int) {
	svc := &vs.Service
	for _, f := range set.flags {
		if want := f.Keyword[:2]; (want == "sh" || want == "mh") && want != svc.Scheduler {
			if c.once("flag " + f.Pos.String()) {
				c.note(f.Pos, "%s is ignored: the scheduler is %s (keepalived ignores it too)", f.Keyword, svc.Scheduler)
			}
			continue
		}
		if !slices.Contains(svc.SchedulerFlags, f.Keyword) {
			svc.SchedulerFlags = append(svc.SchedulerFlags, f.Keyword)
		}
	}
	svc.Quorum, svc.Hysteresis, svc.QuorumUp, svc.QuorumDown = set.quorum, set.hysteresis, set.quorumUp, set.quorumDown
	n := set.sorry
	if n == nil {
		if (set.sorryInhibit || set.sorryMethod != "") && c.once("sorryopts "+svc.VIP) {
			c.note(Pos{File: c.file}, "sorry_server_inhibit and sorry_server_lvs_method without a sorry_server are ignored")
		}
		return
	}
	a, _, ok := hostAddr(n.Arg(0))
	if !ok {
		if c.once("sorry " + n.Pos.String()) {
			c.cannot(n, "%q is not an IP address", n.Arg(0))
		}
		return
	}
	vip, _ := netip.ParseAddr(svc.VIP)
	if a.Is4() != vip.Is4() {
		if c.once("sorry " + n.Pos.String()) {
			c.cannot(n, "the sorry server and the virtual server are of different address families")
		}
		return
	}
	ss := &config.SorryServer{Address: a.String()}
	fwd := set.sorryMethod
	if fwd == "" {
		fwd = svc.Forward
	}
	if p, err := strconv.Atoi(n.Arg(1)); err == nil && p != port {
		if fwd != "nat" {
			if c.once("sorry " + n.Pos.String()) {
				c.cannot(n, "%s forwarding cannot change the port: IPVS sends to port %d, so the sorry server is converted with that port", fwd, port)
			}
		} else {
			ss.Port = p
		}
	}
	sp := ss.Port
	if sp == 0 {
		sp = port
	}
	for _, r := range vs.Reals {
		rp := r.Port
		if rp == 0 {
			rp = port
		}
		if r.Address == ss.Address && rp == sp {
			if c.once("sorry " + n.Pos.String()) {
				c.cannot(n, "the sorry server is also a real server of this virtual server; it stays a real server only")
			}
			return
		}
	}
	svc.SorryServer, svc.SorryServerInhibit = ss, set.sorryInhibit
	if set.sorryMethod != "" && set.sorryMethod != svc.Forward {
		svc.SorryServerLVSMethod = set.sorryMethod
	}
}
