package config

import (
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lbd-project/lbd/internal/sysmem"
)

var (
	nameRe  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$`)
	ifaceRe = regexp.MustCompile(`^[A-Za-z0-9_.:@-]{1,15}$`)
)

// ValidName reports whether s may name a node or a tenant: letters,
// digits, '-', '_' and '.', starting with a letter or digit, at most 32.
func ValidName(s string) bool { return nameRe.MatchString(s) }

// checker accumulates problems while validating and resolving a Config.
type checker struct {
	c     *Config
	probs []Problem
}

// warnf records something accepted that the operator should hear.
func (k *checker) warnf(path []any, format string, args ...any) {
	k.c.warnings = append(k.c.warnings, Problem{File: k.c.File, Line: lineOf(k.c.root, path...), Msg: fmt.Sprintf(format, args...)})
}

func (k *checker) errf(path []any, format string, args ...any) {
	k.probs = append(k.probs, Problem{File: k.c.File, Line: lineOf(k.c.root, path...), Msg: fmt.Sprintf(format, args...)})
}

// oneOf checks an enumerated setting: empty takes def, anything outside
// allowed is reported.
func (k *checker) oneOf(path []any, key string, v *string, def string, allowed ...string) {
	switch {
	case *v == "":
		*v = def
	case !slices.Contains(allowed, *v):
		k.errf(path, "unknown %s %q (want %s)", key, *v, orList(allowed))
	}
}

// orList formats "a, b or c".
func orList(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}

// at builds a path for lineOf.
func at(segs ...any) []any { return segs }

// validate checks every field, applies defaults and resolves the services.
// It returns every problem found.
func (c *Config) validate() []Problem {
	k := &checker{c: c}
	k.daemon()
	k.panel()
	k.nodes()
	k.vrrp()
	k.defaults()
	k.cluster()
	seen := map[string]int{} // service key -> line of first definition
	tenantPorts := map[int]int{}
	names := map[string]int{}
	for i := range c.Tenants {
		k.tenant(i, seen, tenantPorts, names)
	}
	for i := range c.VirtualServices {
		k.virtualService(i, seen)
	}
	return k.probs
}

func (k *checker) daemon() {
	d := &k.c.Daemon
	if d.StateDir == "" {
		d.StateDir = DefaultStateDir
	}
	if d.Socket == "" {
		d.Socket = DefaultSocket
	}
	if d.Listen != "" {
		if _, _, err := net.SplitHostPort(d.Listen); err != nil {
			k.errf(at("daemon", "listen"), "listen %q: want host:port", d.Listen)
		}
		if d.TokenFile == "" {
			k.errf(at("daemon", "listen"), "a TCP listener needs token_file: the API changes the kernel")
		}
		switch {
		case d.TLSCert == "" && !d.Insecure:
			k.errf(at("daemon", "listen"), "a TCP listener without TLS sends the token in clear: set tls_cert and tls_key, or insecure: true to mean it")
		case d.TLSCert == "":
			k.warnf(at("daemon", "insecure"), "the TCP API on %s has no TLS (insecure: true): its token crosses the network in clear", d.Listen)
		}
	}
	if (d.TLSCert == "") != (d.TLSKey == "") {
		k.errf(at("daemon"), "tls_cert and tls_key go together")
	}
}

// panel checks the panel's listener: HTTPS only, so it needs both files.
func (k *checker) panel() {
	p := &k.c.Panel
	if p.Listen == "" {
		if p.TLSCert != "" || p.TLSKey != "" {
			k.errf(at("panel"), "tls_cert and tls_key without listen: the panel is off")
		}
		return
	}
	if _, _, err := net.SplitHostPort(p.Listen); err != nil {
		k.errf(at("panel", "listen"), "listen %q: want host:port", p.Listen)
	}
	if p.TLSCert == "" || p.TLSKey == "" {
		k.errf(at("panel"), "the panel is served over HTTPS only: set tls_cert and tls_key")
	}
}

// name checks the name of the node or tenant (kind) at path: present,
// valid and not taken yet; seen maps the names taken to their lines.
func (k *checker) name(kind string, path []any, name string, seen map[string]int) {
	p := append(slices.Clone(path), "name")
	switch {
	case name == "":
		k.errf(path, "%s has no name", kind)
	case !ValidName(name):
		k.errf(p, "%s name %q: use letters, digits, '-', '_', '.' (at most 32)", kind, name)
	case seen[name] > 0:
		k.errf(p, "duplicate %s %q (first at line %d)", kind, name, seen[name])
	default:
		seen[name] = lineOf(k.c.root, p...)
	}
}

func (k *checker) nodes() {
	names := map[string]int{}
	addrs := map[netip.Addr]int{}
	for i := range k.c.Nodes {
		n := &k.c.Nodes[i]
		p := func(f string) []any { return at("nodes", i, f) }
		k.name("node", at("nodes", i), n.Name, names)
		switch n.Role {
		case RoleDirector, RoleStorage, RoleBoth:
		case "":
			k.errf(at("nodes", i), "node %q has no role (director, storage or both)", n.Name)
		default:
			k.errf(p("role"), "unknown role %q (want director, storage or both)", n.Role)
		}
		if a, err := netip.ParseAddr(n.Address); err != nil {
			k.errf(p("address"), "node %q: invalid address %q", n.Name, n.Address)
		} else if first := addrs[a]; first > 0 {
			k.errf(p("address"), "node %q: address %s already used (line %d)", n.Name, a, first)
		} else {
			addrs[a] = lineOf(k.c.root, p("address")...)
		}
		if n.Interface != "" && !ifaceRe.MatchString(n.Interface) {
			k.errf(p("interface"), "invalid interface name %q", n.Interface)
		}
		if n.Role.IsDirector() {
			if n.Priority == 0 {
				n.Priority = DefaultPriority
			}
			if n.Priority < 1 || n.Priority > 255 {
				k.errf(p("priority"), "priority %d out of range 1-255", n.Priority)
			}
		} else if n.Priority != 0 {
			k.errf(p("priority"), "priority is for directors; node %q is %s", n.Name, n.Role)
		}
	}
}

func (k *checker) vrrp() {
	v := k.c.VRRP
	if v == nil {
		return
	}
	p := func(f string) []any { return at("vrrp", f) }
	if v.VirtualRouterID < 1 || v.VirtualRouterID > 255 {
		k.errf(p("virtual_router_id"), "virtual_router_id %d out of range 1-255", v.VirtualRouterID)
	}
	if v.AdvertInterval == 0 {
		v.AdvertInterval = Duration(DefaultAdvertInterval)
	}
	if iv := v.AdvertInterval.D(); iv < 10*time.Millisecond || iv > 4095*10*time.Millisecond || iv%(10*time.Millisecond) != 0 {
		k.errf(p("advert_interval"), "advert_interval %s: want a multiple of 10ms from 10ms to 40.95s", iv)
	}
	if v.GARPMasterDelay == nil {
		d := Duration(DefaultGARPMasterDelay)
		v.GARPMasterDelay = &d
	}
	if len(v.VIPs) == 0 {
		k.errf(at("vrrp"), "vrrp has no vips")
	}
	seen := map[netip.Addr]bool{}
	var first netip.Addr // decides the instance's family: IPv6 VIPs, VRRP over IPv6
	for i, s := range v.VIPs {
		a, err := netip.ParseAddr(s)
		switch {
		case err != nil || a.Zone() != "" || a.Is4In6():
			k.errf(at("vrrp", "vips", i), "invalid vip %q", s)
		case seen[a]:
			k.errf(at("vrrp", "vips", i), "vip %s listed twice", a)
		case first.IsValid() && a.Is4() != first.Is4():
			k.errf(at("vrrp", "vips", i), "vip %s and vip %s are of different families: a VRRP instance carries IPv4 or IPv6 addresses, not both (RFC 5798)", a, first)
		case !first.IsValid():
			first = a
		}
		seen[a] = true
	}
	if v.TrackReals < 0 || v.TrackReals > 254 {
		k.errf(p("track_reals"), "track_reals %d out of range 0-254", v.TrackReals)
	}
	for i, name := range v.TrackInterfaces {
		if !ifaceRe.MatchString(name) {
			k.errf(at("vrrp", "track_interface", i), "invalid interface name %q", name)
		}
	}
	directors := 0
	for i, n := range k.c.Nodes {
		if n.Role.IsDirector() {
			directors++
			if n.Interface == "" {
				k.errf(at("nodes", i), "director %q needs an interface for vrrp", n.Name)
			}
			// Unicast adverts go from and to the directors' addresses.
			if a, err := netip.ParseAddr(n.Address); err == nil && v.Unicast && first.IsValid() && a.Is4() != first.Is4() {
				k.errf(at("nodes", i, "address"), "director %q: vrrp.unicast sends from and to the directors' addresses, and %s is not of the vips' family (%s)", n.Name, a, first)
			}
		}
	}
	if directors == 0 {
		k.errf(at("vrrp"), "vrrp is configured but no node is a director")
	}
	k.syncDaemon(directors)
}

// syncDaemon validates vrrp.lvs_sync_daemon; directors is how many sync
// ids it needs.
func (k *checker) syncDaemon(directors int) {
	s := k.c.VRRP.LVSSyncDaemon
	if s == nil {
		return
	}
	p := func(f string) []any { return at("vrrp", "lvs_sync_daemon", f) }
	if s.Interface != "" && !ifaceRe.MatchString(s.Interface) {
		k.errf(p("interface"), "invalid interface name %q", s.Interface)
	}
	if id := k.c.VRRP.SyncID(); s.SyncID != nil && (id < 0 || id > 255) {
		k.errf(p("syncid"), "syncid %d out of range 0-255", id)
	} else if id+directors-1 > 255 {
		k.errf(p("syncid"), "syncid %d: the %d directors use %d to %d, beyond 255", id, directors, id, id+directors-1)
	}
	if s.Version != nil && *s.Version != 0 && *s.Version != 1 {
		k.errf(p("version"), "version %d: want 0 or 1", *s.Version)
	}
	if s.Group != "" {
		if a, err := netip.ParseAddr(s.Group); err != nil || !a.IsMulticast() {
			k.errf(p("group"), "group %q: want a multicast address (the kernel's backup daemon joins it)", s.Group)
		}
	}
	if s.Port < 0 || s.Port > 65535 {
		k.errf(p("port"), "port %d out of range 1-65535", s.Port)
	}
	if s.TTL < 0 || s.TTL > 255 {
		k.errf(p("ttl"), "ttl %d out of range 1-255", s.TTL)
	}
	if s.MaxLen < 0 || s.MaxLen > 65535-28 {
		k.errf(p("maxlen"), "maxlen %d out of range 1-65507", s.MaxLen)
	}
}

func (k *checker) defaults() {
	d := &k.c.Defaults
	k.oneOf(at("defaults", "scheduler"), "scheduler", &d.Scheduler, DefaultScheduler, Schedulers...)
	k.oneOf(at("defaults", "forward"), "forward", &d.Forward, DefaultForward, Forwards...)
	k.oneOf(at("defaults", "acl_action"), "acl_action", &d.ACLAction, "drop", "drop", "reject")
	if d.DrainPeriod == nil {
		dp := Duration(DefaultDrainPeriod)
		d.DrainPeriod = &dp
	}
	if d.StorageACL == nil {
		on := true
		d.StorageACL = &on
	}
	k.health(at("defaults", "health"), &d.Health)
}

// health validates h as written (fields may be unset: they inherit).
func (k *checker) health(path []any, h *Health) {
	p := func(f string) []any { return append(slices.Clone(path), f) }
	switch h.Type {
	case "", "tcp", "http", "memcached", "none":
	default:
		k.errf(p("type"), "unknown health check type %q (want tcp, http, memcached or none)", h.Type)
	}
	if h.ConnectTimeout != nil && *h.ConnectTimeout <= 0 {
		k.errf(p("connect_timeout"), "connect_timeout must be positive")
	}
	if h.DelayLoop != nil && *h.DelayLoop <= 0 {
		k.errf(p("delay_loop"), "delay_loop must be positive")
	}
	if h.Retry != nil && (*h.Retry < 0 || *h.Retry > 1000) {
		k.errf(p("retry"), "retry %d out of range 0-1000", *h.Retry)
	}
	if h.ConnectPort < 0 || h.ConnectPort > 65535 {
		k.errf(p("connect_port"), "connect_port %d out of range 1-65535", h.ConnectPort)
	}
	for i, code := range h.StatusCode {
		if code < 100 || code > 599 {
			k.errf(append(p("status_code"), i), "status_code %d out of range 100-599", code)
		}
	}
	if h.Digest != "" {
		if b, err := hex.DecodeString(h.Digest); err != nil || len(b) != 16 {
			k.errf(p("digest"), "digest %q: want 32 hex digits (MD5, as keepalived's genhash prints)", h.Digest)
		}
	}
	if h.Path != "" && h.Path[0] != '/' {
		k.errf(p("path"), "path %q must start with /", h.Path)
	}
}

// resolveHealth merges h over the defaults and keepalived's defaults.
func (k *checker) resolveHealth(path []any, h *Health) HealthSpec {
	d := k.c.Defaults.Health
	spec := HealthSpec{
		Type:             pick(h, d, func(x *Health) string { return x.Type }, "tcp"),
		ConnectTimeout:   pickPtr(h, d, func(x *Health) *Duration { return x.ConnectTimeout }, Duration(DefaultConnectTimeout)).D(),
		Retry:            pickPtr(h, d, func(x *Health) *int { return x.Retry }, DefaultRetry),
		DelayBeforeRetry: pickPtr(h, d, func(x *Health) *Duration { return x.DelayBeforeRetry }, Duration(DefaultDelayBeforeRetry)).D(),
		DelayLoop:        pickPtr(h, d, func(x *Health) *Duration { return x.DelayLoop }, Duration(DefaultDelayLoop)).D(),
		Alpha:            pickPtr(h, d, func(x *Health) *bool { return x.Alpha }, false),
		InhibitOnFailure: pickPtr(h, d, func(x *Health) *bool { return x.InhibitOnFailure }, false),
		ConnectPort:      pick(h, d, func(x *Health) int { return x.ConnectPort }, 0),
		Path:             pick(h, d, func(x *Health) string { return x.Path }, ""),
		Digest:           pick(h, d, func(x *Health) string { return x.Digest }, ""),
		Host:             pick(h, d, func(x *Health) string { return x.Host }, ""),
	}
	// keepalived's warmup defaults to delay_loop; an explicit 0 turns it off.
	spec.Warmup = pickPtr(h, d, func(x *Health) *Duration { return x.Warmup }, Duration(spec.DelayLoop)).D()
	for _, x := range []*Health{h, &d} {
		if x != nil && len(x.StatusCode) > 0 {
			spec.StatusCodes = x.StatusCode
			break
		}
	}
	if spec.Type == "http" && spec.Path == "" {
		k.errf(path, "http health check needs a path")
	}
	return spec
}

// pick returns the first non-zero of h's and d's field, else def.
func pick[T comparable](h *Health, d Health, f func(*Health) T, def T) T {
	var zero T
	for _, x := range []*Health{h, &d} {
		if x != nil {
			if v := f(x); v != zero {
				return v
			}
		}
	}
	return def
}

// pickPtr returns the first set pointer field of h and d, else def.
func pickPtr[T any](h *Health, d Health, f func(*Health) *T, def T) T {
	for _, x := range []*Health{h, &d} {
		if x != nil {
			if v := f(x); v != nil {
				return *v
			}
		}
	}
	return def
}

// service validates the fields common to tenants and virtual services and
// returns the resolved service without reals.
func (k *checker) service(path []any, s Service, seen map[string]int) ResolvedService {
	vip, port, proto, sched, fwd := s.VIP, s.Port, s.Protocol, s.Scheduler, s.Forward
	p := func(f string) []any { return append(slices.Clone(path), f) }
	rs := ResolvedService{Line: lineOf(k.c.root, path...), Persistence: s.PersistenceTimeout.D()}
	a, err := netip.ParseAddr(vip)
	if err != nil {
		k.errf(p("vip"), "invalid vip %q", vip)
	}
	rs.VIP = a
	if port < 1 || port > 65535 {
		k.errf(p("port"), "port %d out of range 1-65535", port)
	}
	rs.Port = uint16(port)
	k.oneOf(p("protocol"), "protocol", &proto, DefaultProtocol, "tcp", "udp")
	k.oneOf(p("scheduler"), "scheduler", &sched, k.c.Defaults.Scheduler, Schedulers...)
	k.oneOf(p("forward"), "forward", &fwd, k.c.Defaults.Forward, Forwards...)
	rs.Protocol, rs.Scheduler, rs.Forward = proto, sched, fwd
	for i, f := range s.SchedulerFlags {
		if err := schedulerFlagOK(f, sched); err != "" {
			k.errf(append(p("scheduler_flags"), i), "%s", err)
		} else if slices.Index(s.SchedulerFlags, f) < i {
			k.errf(append(p("scheduler_flags"), i), "scheduler flag %s listed twice", f)
		}
	}
	rs.SchedulerFlags = slices.Clone(s.SchedulerFlags)
	if err == nil && port >= 1 && port <= 65535 {
		key := proto + "/" + netip.AddrPortFrom(a, uint16(port)).String()
		rs.Name = key
		if first := seen[key]; first > 0 {
			k.errf(path, "duplicate service %s (first at line %d)", key, first)
		} else {
			seen[key] = rs.Line
		}
	}
	return rs
}

// reals validates and resolves the real servers of svc.
func (k *checker) reals(path []any, reals []Real, svc *ResolvedService) {
	seen := map[netip.AddrPort]int{}
	for i, r := range reals {
		p := func(f string) []any { return append(slices.Clone(path), i, f) }
		a, err := netip.ParseAddr(r.Address)
		if err != nil {
			k.errf(p("address"), "invalid real server address %q", r.Address)
			continue
		}
		if svc.VIP.IsValid() && a.Is4() != svc.VIP.Is4() {
			k.errf(p("address"), "real server %s and vip %s are of different families", a, svc.VIP)
		}
		port := r.Port
		if port == 0 {
			port = int(svc.Port)
		}
		if port < 1 || port > 65535 {
			k.errf(p("port"), "port %d out of range 1-65535", port)
			continue
		}
		if svc.Forward != "nat" && port != int(svc.Port) {
			k.errf(p("port"), "%s forwarding cannot change the port (%d -> %d); use nat", svc.Forward, svc.Port, port)
		}
		w := DefaultWeight
		if r.Weight != nil {
			w = *r.Weight
		}
		if w < 0 || w > 65535 {
			k.errf(p("weight"), "weight %d out of range 0-65535", w)
		}
		ap := netip.AddrPortFrom(a, uint16(port))
		if first := seen[ap]; first > 0 {
			k.errf(append(slices.Clone(path), i), "real server %s listed twice (first at line %d)", ap, first)
			continue
		}
		seen[ap] = lineOf(k.c.root, append(slices.Clone(path), i)...)
		svc.Reals = append(svc.Reals, ResolvedReal{Addr: a, Port: uint16(port), Weight: w, Node: k.nodeAt(a)})
	}
}

func (k *checker) nodeAt(a netip.Addr) string {
	for _, n := range k.c.Nodes {
		if na, err := netip.ParseAddr(n.Address); err == nil && na == a {
			return n.Name
		}
	}
	return ""
}

func (k *checker) tenant(i int, seen map[string]int, ports map[int]int, names map[string]int) {
	t := &k.c.Tenants[i]
	path := at("tenants", i)
	p := func(f string) []any { return at("tenants", i, f) }
	k.name("tenant", path, t.Name, names)
	s := t.Service
	svc := k.service(at("tenants", i, "service"), s, seen)
	svc.Name, svc.Tenant = t.Name, t.Name
	// A tenant is served by the KVS, over TCP: with udp its fences would
	// cover the wrong protocol and leave the store's TCP port open.
	if svc.Protocol == "udp" {
		k.errf(at("tenants", i, "service", "protocol"), "tenant %q: its store speaks memcached over TCP; protocol must be tcp", t.Name)
	}
	// Every tenant has its own port: the storage nodes serve it there, and a
	// shared port would mix two tenants' data (seed 001's warning).
	if first := ports[s.Port]; first > 0 && s.Port != 0 {
		k.errf(at("tenants", i, "service", "port"), "port %d already belongs to another tenant (line %d)", s.Port, first)
	} else {
		ports[s.Port] = lineOf(k.c.root, at("tenants", i, "service", "port")...)
	}
	allow := make([]netip.Prefix, 0, len(t.Allow))
	dup := map[netip.Prefix]bool{}
	for j, e := range t.Allow {
		pfx, err := parsePrefix(e)
		if err != nil {
			k.errf(at("tenants", i, "allow", j), "%v", err)
			continue
		}
		if dup[pfx] {
			k.errf(at("tenants", i, "allow", j), "allow %q listed twice", e)
			continue
		}
		if svc.VIP.IsValid() && pfx.Addr().Is4() != svc.VIP.Is4() {
			k.errf(at("tenants", i, "allow", j), "allow %q: the vip %s is of the other family, so it can never match", e, svc.VIP)
			continue
		}
		if AdmitsAnybody(pfx) {
			if !t.AllowAny {
				k.errf(at("tenants", i, "allow", j), "allow %q admits (nearly) everybody: set allow_any: true on tenant %q to mean it", e, t.Name)
				continue
			}
			k.warnf(at("tenants", i, "allow", j), "tenant %q: allow %q admits (nearly) everybody (allow_any: true)", t.Name, e)
		}
		dup[pfx] = true
		allow = append(allow, pfx)
	}
	svc.Allow = allow
	if len(t.Reals) > 0 {
		k.reals(at("tenants", i, "reals"), t.Reals, &svc)
	} else {
		for _, n := range k.c.StorageNodes() {
			if a, err := netip.ParseAddr(n.Address); err == nil && (!svc.VIP.IsValid() || a.Is4() == svc.VIP.Is4()) {
				svc.Reals = append(svc.Reals, ResolvedReal{Addr: a, Port: svc.Port, Weight: DefaultWeight, Node: n.Name})
			}
		}
		if len(svc.Reals) == 0 {
			k.errf(path, "tenant %q has no real servers: no storage node of the vip's family and no reals", t.Name)
		}
	}
	if t.Health != nil {
		k.health(p("health"), t.Health)
	}
	svc.Health = k.resolveHealth(path, t.Health)
	k.quorum(at("tenants", i, "service"), s, &svc)
	k.kvs(at("tenants", i, "kvs"), &t.KVS)
	k.c.services = append(k.c.services, svc)
	if t.REST != nil {
		k.rest(i, svc, seen, ports)
	}
}

// rest resolves tenant i's REST service: the memcached service's VIP,
// reals, health and allow-list on the REST port.
func (k *checker) rest(i int, mc ResolvedService, seen map[string]int, ports map[int]int) {
	t := &k.c.Tenants[i]
	p := func(f ...any) []any { return append(at("tenants", i, "rest"), f...) }
	port := t.REST.Port
	if port < 1 || port > 65535 {
		k.errf(p("port"), "rest port %d out of range 1-65535", port)
		return
	}
	if first := ports[port]; first > 0 {
		k.errf(p("port"), "port %d already belongs to another tenant (line %d)", port, first)
		return
	}
	ports[port] = lineOf(k.c.root, p("port")...)
	key := mc.Protocol + "/" + netip.AddrPortFrom(mc.VIP, uint16(port)).String()
	if first := seen[key]; first > 0 {
		k.errf(p("port"), "duplicate service %s (first at line %d)", key, first)
		return
	}
	seen[key] = lineOf(k.c.root, p("port")...)
	for j, o := range t.REST.CORSOrigins {
		if err := checkOrigin(o); err != nil {
			k.errf(p("cors_origins", j), "cors origin %q: %v", o, err)
		}
	}
	rs := mc
	rs.Name, rs.Part, rs.Port = t.Name+"/"+PartREST, PartREST, uint16(port)
	rs.Line = lineOf(k.c.root, p()...)
	rs.Reals = slices.Clone(mc.Reals)
	for j := range rs.Reals {
		rs.Reals[j].Port = uint16(port)
	}
	rs.Allow = slices.Clone(mc.Allow)
	// The REST port shares the tenant's quorum and sorry server (on the
	// REST port, unless NAT sends it elsewhere); its scripts run once, for
	// the memcached port.
	if mc.Sorry != nil {
		sorry := *mc.Sorry
		if sorry.Forward != "nat" || sorry.Port == mc.Port {
			sorry.Port = uint16(port)
		}
		rs.Sorry = &sorry
	}
	rs.QuorumUp, rs.QuorumDown = "", ""
	k.c.services = append(k.c.services, rs)
}

// checkOrigin accepts "*" and a browser's Origin: scheme://host[:port],
// nothing else.
func checkOrigin(o string) error {
	if o == "*" {
		return nil
	}
	u, err := url.Parse(o)
	switch {
	case err != nil:
		return err
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("want http:// or https://")
	case u.Host == "" || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		return fmt.Errorf("want scheme://host[:port] only, as a browser sends it")
	}
	return nil
}

func (k *checker) kvs(path []any, v *KVS) {
	for _, fp := range CheckKVS(v) {
		k.errf(append(slices.Clone(path), fp.Field), "%s", fp.Msg)
	}
}

// MaxKVSMemory is the largest memory a tenant may have on any machine;
// on a machine that tells its size, the bound is its physical memory.
const MaxKVSMemory = 16 << 40

// MaxKVSMemoryHere is the largest memory a tenant may have on this
// machine: its physical memory, at most MaxKVSMemory.
func MaxKVSMemoryHere() int64 {
	if total := sysmem.Total(); total > 0 && total < MaxKVSMemory {
		return total
	}
	return MaxKVSMemory
}

// approxSize formats n bytes with one decimal in the largest binary unit
// below it.
func approxSize(n int64) string {
	for _, u := range sizeUnits {
		if n >= u.mult {
			return strconv.FormatFloat(float64(n)/float64(u.mult), 'f', 1, 64) + u.name
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}

// FieldProblem is what is wrong with one field of a settings block, named
// by its key in the file (and in API bodies).
type FieldProblem struct {
	Field string
	Msg   string
}

// CheckKVS fills the defaults of a tenant's kvs settings and returns what
// is wrong with them: sizes beyond what this machine can hold, limits out
// of range. The file's validation and the API use it alike.
func CheckKVS(v *KVS) []FieldProblem {
	var probs []FieldProblem
	bad := func(field, format string, args ...any) {
		probs = append(probs, FieldProblem{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	if v.Memory == 0 {
		v.Memory = DefaultKVSMemory
	}
	maxMem := Size(MaxKVSMemoryHere())
	switch {
	case v.Memory < 1<<20:
		bad("memory", "memory %s: at least 1MiB", v.Memory)
	case v.Memory > maxMem:
		bad("memory", "memory %s: more than this machine's memory (%s)", v.Memory, approxSize(int64(maxMem)))
	}
	if v.MaxItemSize == 0 {
		v.MaxItemSize = DefaultKVSMaxItemSize
	}
	switch {
	case v.MaxItemSize < 1<<10 || v.MaxItemSize > 1<<30:
		bad("max_item_size", "max_item_size %s out of range 1KiB-1GiB (memcached -I)", v.MaxItemSize)
	case v.MaxItemSize > v.Memory:
		bad("max_item_size", "max_item_size %s is larger than the tenant's memory %s", v.MaxItemSize, v.Memory)
	}
	switch v.Storage {
	case "":
		v.Storage = "memory"
	case "memory", "durable":
	default:
		bad("storage", "unknown storage %q (want memory or durable)", v.Storage)
	}
	switch v.Sync {
	case "":
		v.Sync = DefaultKVSSync
	case "always", "group":
	default:
		bad("sync", "unknown sync %q (want always or group)", v.Sync)
	}
	if v.SyncInterval == 0 {
		v.SyncInterval = Duration(DefaultKVSSyncInterval)
	}
	if iv := v.SyncInterval.D(); iv < 100*time.Microsecond || iv > 10*time.Second {
		bad("sync_interval", "sync_interval %s out of range 100µs-10s", iv)
	}
	if v.MaxConnections == 0 {
		v.MaxConnections = DefaultKVSMaxConns
	}
	if v.MaxConnections < 1 || v.MaxConnections > 1<<20 {
		bad("max_connections", "max_connections %d out of range 1-1048576", v.MaxConnections)
	}
	if v.Replicas < 0 || v.Replicas > 2 {
		bad("replicas", "replicas %d: want 0, 1 or 2", v.Replicas)
	}
	switch v.Replication {
	case "":
		v.Replication = "sync"
	case "sync", "async":
	default:
		bad("replication", "unknown replication %q (want sync or async)", v.Replication)
	}
	return probs
}

func (k *checker) virtualService(i int, seen map[string]int) {
	v := &k.c.VirtualServices[i]
	path := at("virtual_services", i)
	svc := k.service(path, v.Service, seen)
	if len(v.Reals) == 0 {
		k.errf(path, "virtual service %s has no reals", svc.Name)
	}
	k.reals(at("virtual_services", i, "reals"), v.Reals, &svc)
	if v.Health != nil {
		k.health(at("virtual_services", i, "health"), v.Health)
	}
	svc.Health = k.resolveHealth(path, v.Health)
	k.quorum(path, v.Service, &svc)
	k.c.services = append(k.c.services, svc)
}

// quorum validates and resolves the sorry server and the quorum of a
// service whose reals are resolved.
func (k *checker) quorum(path []any, s Service, svc *ResolvedService) {
	p := func(f ...any) []any { return append(slices.Clone(path), f...) }
	svc.Quorum, svc.Hysteresis = 1, s.Hysteresis
	svc.QuorumUp, svc.QuorumDown, svc.SorryInhibit = s.QuorumUp, s.QuorumDown, s.SorryServerInhibit
	if s.Quorum != nil {
		svc.Quorum = *s.Quorum
	}
	if svc.Quorum < 1 || svc.Quorum > 1<<24 {
		k.errf(p("quorum"), "quorum %d out of range 1-16777216", svc.Quorum)
	}
	if s.Hysteresis < 0 || s.Hysteresis > 1<<24 {
		k.errf(p("hysteresis"), "hysteresis %d out of range 0-16777216", s.Hysteresis)
	}
	fwd := s.SorryServerLVSMethod
	k.oneOf(p("sorry_server_lvs_method"), "sorry_server_lvs_method", &fwd, svc.Forward, Forwards...)
	ss := s.SorryServer
	if ss == nil {
		if s.SorryServerInhibit || s.SorryServerLVSMethod != "" {
			k.errf(p("sorry_server_inhibit"), "sorry_server_inhibit and sorry_server_lvs_method need a sorry_server")
		}
		return
	}
	a, err := netip.ParseAddr(ss.Address)
	if err != nil {
		k.errf(p("sorry_server", "address"), "invalid sorry server address %q", ss.Address)
		return
	}
	if svc.VIP.IsValid() && a.Is4() != svc.VIP.Is4() {
		k.errf(p("sorry_server", "address"), "sorry server %s and vip %s are of different families", a, svc.VIP)
	}
	port := ss.Port
	if port == 0 {
		port = int(svc.Port)
	}
	if port < 1 || port > 65535 {
		k.errf(p("sorry_server", "port"), "port %d out of range 1-65535", port)
		return
	}
	if fwd != "nat" && port != int(svc.Port) {
		k.errf(p("sorry_server", "port"), "%s forwarding cannot change the port (%d -> %d); use sorry_server_lvs_method nat", fwd, svc.Port, port)
	}
	for _, r := range svc.Reals {
		if r.Addr == a && int(r.Port) == port {
			k.errf(p("sorry_server"), "the sorry server %s is also a real server", netip.AddrPortFrom(a, uint16(port)))
		}
	}
	svc.Sorry = &ResolvedReal{Addr: a, Port: uint16(port), Weight: 1, Forward: fwd, Node: k.nodeAt(a)}
}

// AdmitsAnybody reports whether an allow-list entry admits (nearly)
// everybody: a prefix shorter than /8, such as 0.0.0.0/0 or ::/0. Such an
// entry needs an explicit confirmation (allow_any, lbctl --allow-any).
func AdmitsAnybody(p netip.Prefix) bool { return p.Bits() < 8 }

// parsePrefix parses an address or CIDR allow-list entry.
func parsePrefix(entry string) (netip.Prefix, error) {
	s := strings.TrimSpace(entry)
	if a, err := netip.ParseAddr(s); err == nil {
		if a.Zone() != "" {
			return netip.Prefix{}, &allowError{entry: entry, msg: "zones are not allowed"}
		}
		a = a.Unmap() // ::ffff:192.0.2.1 is 192.0.2.1 to the kernel's sets
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, &allowError{entry: entry, msg: "not an address or CIDR"}
	}
	if p.Masked() != p {
		return netip.Prefix{}, &allowError{entry: entry, msg: "has host bits set; did you mean " + p.Masked().String() + "?"}
	}
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96) // ::ffff:192.0.2.0/120 is 192.0.2.0/24
	}
	return p, nil
}

func quote(s string) string { return strconv.Quote(s) }

// schedulerFlagOK checks a scheduler flag against the service's scheduler
// and says what is wrong ("" when nothing).
func schedulerFlagOK(flag, sched string) string {
	switch flag {
	case "flag-1", "flag-2", "flag-3":
		return ""
	case "sh-fallback", "sh-port", "mh-fallback", "mh-port":
		if want := flag[:2]; want != sched {
			return fmt.Sprintf("scheduler flag %s is for scheduler %s, not %s", flag, want, sched)
		}
		return ""
	}
	return fmt.Sprintf("unknown scheduler flag %q (want sh-fallback, sh-port, mh-fallback, mh-port or flag-1..3)", flag)
}
