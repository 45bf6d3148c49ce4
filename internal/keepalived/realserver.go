package keepalived

import (
	"net/netip"
	"reflect"
	"strings"

	"github.com/lbd-project/lbd/pkg/config"
)

// convReal is a converted real server and the port keepalived gave it
// (0: the virtual server's).
type convReal struct {
	real config.Real
	port int
	node *Node
}

// realServers converts the real_servers of a virtual server and picks the
// service's health check: lbd has one per service, keepalived one per real
// server, so the first real server's wins and every difference is reported.
func (c *converter) realServers(vs *Node, set vsSettings, vsPort int) ([]convReal, config.Health) {
	var reals []convReal
	var health config.Health
	var first *Node
	for _, n := range vs.Find("real_server") {
		r, h, ok := c.realServer(n, set, vsPort)
		if !ok {
			continue
		}
		reals = append(reals, r)
		if first == nil {
			first, health = n, h
			continue
		}
		if diff := healthDiff(health, h); len(diff) > 0 {
			c.cannot(n, "its health check differs from the first real server's (%s, line %d) in %s; lbd has one health check per service and uses the first one's for every real server",
				first.String(), first.Pos.Line, strings.Join(diff, ", "))
		}
	}
	return reals, health
}

func (c *converter) realServer(n *Node, set vsSettings, vsPort int) (convReal, config.Health, bool) {
	a, _, ok := hostAddr(n.Arg(0))
	if !ok {
		c.cannot(n, "%q is not an IP address", n.Arg(0))
		return convReal{}, config.Health{}, false
	}
	r := convReal{real: config.Real{Address: a.String()}, node: n}
	if len(n.Args) > 1 {
		if r.port, ok = parsePort(n.Arg(1)); !ok {
			c.cannot(n, "%q is not a port from 1 to 65535", n.Arg(1))
			return convReal{}, config.Health{}, false
		}
	}
	probed := vsPort
	if r.port != 0 && set.forward == "nat" {
		probed = r.port
	}
	weight := config.DefaultWeight
	opts := set.opts
	var checks []*Node
	for _, ch := range n.Children {
		if c.checkOpt(&opts, ch) {
			continue
		}
		switch {
		case ch.Keyword == "weight":
			if v, good := c.integer(ch, 0, 65535); good {
				weight = v
			}
		case ch.Keyword == "lvs_method":
			if f, good := c.forward(ch); good && f != set.forward {
				c.cannot(ch, "lbd forwards a whole service one way; the virtual server's %s is used", set.forward)
			}
		case ch.Keyword == "virtualhost":
			opts.host = ch.Arg(0)
		case ch.Block && isChecker(ch.Keyword):
			checks = append(checks, ch)
		default:
			c.unsupported(ch, rsReasons)
		}
	}
	r.real.Weight = &weight
	return r, c.healthOf(checks, opts, probed), true
}

// healthDiff names the fields in which two health checks differ.
func healthDiff(a, b config.Health) []string {
	var out []string
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	t := va.Type()
	for i := range t.NumField() {
		if !reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
			out = append(out, name)
		}
	}
	return out
}

// realsAt places the real servers behind one VIP:port. NAT sends to the
// real server's own port; DR and TUN cannot change the port, so IPVS
// sends to the service's. A real server listed twice is kept once.
func (c *converter) realsAt(reals []convReal, forward string, port int) []config.Real {
	out := make([]config.Real, 0, len(reals))
	seen := map[netip.AddrPort]*Node{}
	for _, r := range reals {
		rr := r.real
		eff := port
		switch {
		case r.port == 0 || r.port == port:
		case forward == "nat":
			rr.Port, eff = r.port, r.port
		case c.once("port " + r.node.Pos.String()):
			c.cannot(r.node, "%s forwarding cannot change the port: IPVS sends to port %d, so the real server is converted with that port", forward, port)
		}
		ap := netip.AddrPortFrom(netip.MustParseAddr(rr.Address), uint16(eff))
		if first := seen[ap]; first != nil {
			if c.once("dup " + r.node.Pos.String()) {
				c.cannot(r.node, "real server %s is already listed at line %d", ap, first.Pos.Line)
			}
			continue
		}
		seen[ap] = r.node
		out = append(out, rr)
	}
	return out
}

// rsReasons explains the real_server options lbd has no equivalent for.
var rsReasons = map[string]string{
	"notify_up":   "lbd runs no scripts on real server changes; watch `lbctl events`",
	"notify_down": "lbd runs no scripts on real server changes; watch `lbctl events`",
	"uthreshold":  "lbd sets no connection thresholds",
	"lthreshold":  "lbd sets no connection thresholds",
	"smtp_alert":  "lbd sends no mail; watch `lbctl events` or the metrics",
	"snmp_name":   "lbd has no SNMP; it exports Prometheus metrics",
}
