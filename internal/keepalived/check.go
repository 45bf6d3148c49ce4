package keepalived

import (
	"strconv"
	"strings"
	"time"

	"github.com/lbd-project/lbd/pkg/config"
)

// checkOpts are the checker options keepalived lets a virtual server set
// for its real servers and a real server for its checkers. nil = not set.
type checkOpts struct {
	connectTimeout   *time.Duration
	delayBeforeRetry *time.Duration
	delayLoop        *time.Duration
	warmup           *time.Duration
	retry            *int
	alpha, inhibit   *bool
	host             string // virtualhost
}

// checkOpt applies n to o if n is one of the inherited checker options.
func (c *converter) checkOpt(o *checkOpts, n *Node) bool {
	dur := func(dst **time.Duration, positive bool) {
		if d, ok := c.seconds(n); ok {
			if positive && d <= 0 {
				c.cannot(n, "must be positive")
				return
			}
			*dst = &d
		}
	}
	switch n.Keyword {
	case "connect_timeout":
		dur(&o.connectTimeout, true)
	case "delay_before_retry":
		dur(&o.delayBeforeRetry, false)
	case "delay_loop":
		dur(&o.delayLoop, true)
	case "warmup":
		dur(&o.warmup, false)
	case "retry", "nb_get_retry":
		if v, ok := c.integer(n, 0, 1000); ok {
			o.retry = &v
		}
	case "alpha":
		if b, ok := c.boolean(n); ok {
			o.alpha = &b
		}
	case "inhibit_on_failure":
		if b, ok := c.boolean(n); ok {
			o.inhibit = &b
		}
	default:
		return false
	}
	return true
}

// checkerKinds maps the keepalived checkers lbd can run to its health
// check types.
var checkerKinds = map[string]string{
	"TCP_CHECK":  "tcp",
	"HTTP_GET":   "http",
	"SSL_GET":    "tcp",
	"SMTP_CHECK": "tcp",
}

// isChecker reports whether keyword is a keepalived checker, one lbd can
// run (checkerKinds) or not (unsupportedChecker).
func isChecker(keyword string) bool {
	return checkerKinds[keyword] != "" || unsupportedChecker[keyword] != ""
}

// unsupportedChecker explains the checkers lbd cannot run.
var unsupportedChecker = map[string]string{
	"MISC_CHECK": "lbd does not run health-check scripts",
	"DNS_CHECK":  "lbd has no DNS check",
	"UDP_CHECK":  "lbd has no UDP check",
	"PING_CHECK": "lbd has no ICMP check",
	"BFD_CHECK":  "lbd has no BFD",
	"FILE_CHECK": "lbd does not read health from files",
}

// checkerReasons explains checker options lbd has no equivalent for.
var checkerReasons = map[string]string{
	"connect_ip":       "lbd probes the real server's own address",
	"bindto":           "lbd does not choose the probe's source address",
	"bind_port":        "lbd does not choose the probe's source port",
	"bind_if":          "lbd does not choose the probe's interface",
	"fwmark":           "lbd does not mark probe packets",
	"log_all_failures": "lbd reports every state change as an event",
	"http_protocol":    "lbd chooses the HTTP version itself",
	"fast_recovery":    "lbd has no fast_recovery",
	"enable_sni":       "lbd has no SSL_GET",
	"sni_name":         "lbd has no SSL_GET",
	"tls_compliant":    "lbd has no SSL_GET",
	"helo_name":        "lbd has no SMTP check",
}

// Checker defaults from keepalived.conf(5) where they differ from lbd's.
const httpDelayBeforeRetry = 3 * time.Second

// healthOf converts the checkers of a real server into an lbd health
// check. lbd runs one check per service: the first checker lbd can run is
// converted, the others are reported. A real server without a checker is
// always up in keepalived, which is lbd's type none.
func (c *converter) healthOf(checks []*Node, opts checkOpts, port int) config.Health {
	var chosen *Node
	for _, ch := range checks {
		switch why, unsupported := unsupportedChecker[ch.Keyword]; {
		case unsupported:
			c.cannot(ch, "%s; the real server is kept and, unless another checker of it is converted, not health-checked (health type none)", why)
		case chosen != nil:
			c.cannot(ch, "lbd runs one health check per real server; the %s at line %d is used", chosen.Keyword, chosen.Pos.Line)
		default:
			chosen = ch
		}
	}
	if chosen == nil {
		return config.Health{Type: "none"}
	}
	h := config.Health{Type: checkerKinds[chosen.Keyword]}
	switch chosen.Keyword {
	case "SSL_GET":
		c.cannot(chosen, "lbd has no TLS check; converted to a TCP connect check (the TLS handshake and the HTTP answer are not checked)")
	case "SMTP_CHECK":
		c.cannot(chosen, "lbd has no SMTP check; converted to a TCP connect check (the SMTP greeting is not checked)")
	}
	var url *Node
	for _, ch := range chosen.Children {
		if c.checkOpt(&opts, ch) {
			continue
		}
		switch {
		case ch.Keyword == "connect_port":
			if p, ok := parsePort(ch.Arg(0)); !ok {
				c.cannot(ch, "%q is not a port from 1 to 65535", ch.Arg(0))
			} else if p != port {
				h.ConnectPort = p
			}
		case ch.Keyword == "url" && chosen.Keyword == "HTTP_GET":
			if url != nil {
				c.cannot(ch, "lbd checks one url per service; the url at line %d is used", url.Pos.Line)
				continue
			}
			url = ch
			c.url(ch, &h, &opts)
		case ch.Keyword == "url":
			// SSL_GET: reported above.
		default:
			c.unsupported(ch, checkerReasons)
		}
	}
	if h.Type == "http" {
		if url == nil {
			c.cannot(chosen, "HTTP_GET without a url: lbd needs a path; checking / instead")
			h.Path = "/"
		}
		h.Host = opts.host
	}
	c.timings(&h, opts, chosen.Keyword == "HTTP_GET" || chosen.Keyword == "SSL_GET")
	return h
}

// url converts an HTTP_GET url block.
func (c *converter) url(n *Node, h *config.Health, opts *checkOpts) {
	for _, ch := range n.Children {
		switch ch.Keyword {
		case "path":
			if !strings.HasPrefix(ch.Arg(0), "/") {
				c.cannot(ch, "lbd needs a path starting with /")
				continue
			}
			h.Path = ch.Arg(0)
		case "digest":
			h.Digest = strings.ToLower(ch.Arg(0))
		case "status_code":
			h.StatusCode = c.statusCodes(ch)
		case "virtualhost":
			opts.host = ch.Arg(0)
		default:
			c.cannot(ch, "lbd checks the path, status code, digest and virtual host only")
		}
	}
	if h.Path == "" {
		c.cannot(n, "the url has no path lbd can use; checking / instead")
		h.Path = "/"
	}
}

// statusCodes expands keepalived's status_code list ("200 301-302").
func (c *converter) statusCodes(n *Node) []int {
	var out []int
	for _, a := range n.Args {
		lo, hi, isRange := strings.Cut(a, "-")
		if !isRange {
			hi = lo
		}
		l, err1 := strconv.Atoi(lo)
		h, err2 := strconv.Atoi(hi)
		if err1 != nil || err2 != nil || l < 100 || h > 599 || l > h {
			c.cannot(n, "%q is not a status code or range from 100 to 599", a)
			continue
		}
		for code := l; code <= h; code++ {
			out = append(out, code)
		}
	}
	return out
}

// timings writes the check's timings and flags where they differ from
// lbd's defaults, so the YAML says only what the keepalived.conf changed.
func (c *converter) timings(h *config.Health, o checkOpts, http bool) {
	set := func(p *time.Duration, def time.Duration) *config.Duration {
		if p == nil || *p == def {
			return nil
		}
		d := config.Duration(*p)
		return &d
	}
	h.ConnectTimeout = set(o.connectTimeout, config.DefaultConnectTimeout)
	dbr := o.delayBeforeRetry
	if dbr == nil && http {
		d := httpDelayBeforeRetry
		dbr = &d
	}
	h.DelayBeforeRetry = set(dbr, config.DefaultDelayBeforeRetry)
	h.DelayLoop = set(o.delayLoop, config.DefaultDelayLoop)
	// Both default warmup to delay_loop: write it only when it was given.
	if o.warmup != nil {
		w := config.Duration(*o.warmup)
		h.Warmup = &w
	}
	if o.retry != nil && *o.retry != config.DefaultRetry {
		h.Retry = o.retry
	}
	if o.alpha != nil && *o.alpha {
		h.Alpha = o.alpha
	}
	if o.inhibit != nil && *o.inhibit {
		h.InhibitOnFailure = o.inhibit
	}
}
