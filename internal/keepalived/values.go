package keepalived

import (
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// seconds reads the statement's first argument as keepalived's <TIMER>: a
// number of seconds, possibly fractional.
func (c *converter) seconds(n *Node) (time.Duration, bool) {
	f, err := strconv.ParseFloat(n.Arg(0), 64)
	if err != nil || f < 0 || math.IsNaN(f) || f > 1e9 {
		c.cannot(n, "%q is not a number of seconds", n.Arg(0))
		return 0, false
	}
	return time.Duration(f * float64(time.Second)).Round(time.Microsecond), true
}

// integer reads the statement's first argument as an integer in [lo, hi].
func (c *converter) integer(n *Node, lo, hi int) (int, bool) {
	v, err := strconv.Atoi(n.Arg(0))
	if err != nil || v < lo || v > hi {
		c.cannot(n, "%q is not an integer from %d to %d", n.Arg(0), lo, hi)
		return 0, false
	}
	return v, true
}

// boolean reads keepalived's optional <BOOL> argument: a bare keyword
// means true.
func (c *converter) boolean(n *Node) (bool, bool) {
	switch strings.ToLower(n.Arg(0)) {
	case "", "on", "true", "yes":
		return true, true
	case "off", "false", "no":
		return false, true
	}
	c.cannot(n, "%q is not a boolean (on|off|true|false|yes|no)", n.Arg(0))
	return false, false
}

// port parses a TCP/UDP port number.
func parsePort(s string) (int, bool) {
	v, err := strconv.Atoi(s)
	return v, err == nil && v >= 1 && v <= 65535
}

// hostAddr parses an address written with an optional host prefix
// ("10.0.0.1" or "10.0.0.1/32"). bits is the prefix length written, or -1.
func hostAddr(s string) (a netip.Addr, bits int, ok bool) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Addr(), p.Bits(), p.Addr().Zone() == ""
	}
	a, err := netip.ParseAddr(s)
	return a, -1, err == nil && a.Zone() == ""
}
