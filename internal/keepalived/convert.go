package keepalived

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/lbd-project/lbd/pkg/config"
)

// Defaults of a conversion.
const (
	// DefaultNodeName names the director node keepalived.conf does not name.
	DefaultNodeName = "lb1"
	// PlaceholderAddress is the director's address when neither the caller
	// nor the vrrp_instance (unicast_src_ip, mcast_src_ip) gives one. It is
	// in TEST-NET-1 (RFC 5737), so it validates but never routes.
	PlaceholderAddress = "192.0.2.1"
)

// Options tune a conversion. The zero value is usable.
type Options struct {
	// NodeName names the director node (default DefaultNodeName).
	NodeName string
	// NodeAddress is the director's own address. By default the
	// vrrp_instance's unicast_src_ip or mcast_src_ip, else
	// PlaceholderAddress with a warning.
	NodeAddress string
	// FS resolves include statements (default OSFS).
	FS FS
}

// Result is a converted configuration.
type Result struct {
	// YAML is the lbd configuration file.
	YAML []byte
	// Config is YAML as lbd parsed it back: validated, with its services
	// resolved (Config.Services).
	Config *config.Config
	// Warnings say, with file:line, what was not converted and what the
	// operator should check.
	Warnings []Warning
}

// ConvertFile reads the keepalived.conf at path and converts it.
func ConvertFile(path string, opts Options) (*Result, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("keepalived: %w", err)
	}
	defer f.Close()
	src, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("keepalived: read %s: %w", path, err)
	}
	return Convert(src, path, opts)
}

// Convert converts the keepalived.conf src, read from file (used in
// positions and as the base of relative includes), into lbd's YAML.
//
// A syntax error is returned as a *SyntaxError with file:line. Everything
// that parses but has no lbd equivalent becomes a Warning. The YAML is
// checked with config.Parse before it is returned; should lbd still refuse
// it (e.g. two real servers of a DR service on different ports, which
// keepalived accepts), the error lists lbd's problems.
func Convert(src []byte, file string, opts Options) (*Result, error) {
	if opts.NodeName == "" {
		opts.NodeName = DefaultNodeName
	}
	if opts.FS == nil {
		opts.FS = OSFS{}
	}
	root, warns, err := Parse(src, file, opts.FS)
	if err != nil {
		return nil, err
	}
	c := &converter{opts: opts, file: file, warns: warns}
	cfg := c.convert(root)
	out, err := config.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("keepalived: %s: %w", file, err)
	}
	name := file + " (converted)"
	parsed, err := config.Parse(out, name)
	if err != nil {
		var ce *config.Error
		if errors.As(err, &ce) {
			return nil, fmt.Errorf("keepalived: %s: the converted configuration is not valid for lbd:\n%w", file, err)
		}
		return nil, fmt.Errorf("keepalived: %s: %w", file, err)
	}
	return &Result{YAML: out, Config: parsed, Warnings: sortWarnings(c.warns)}, nil
}

// sortWarnings orders warnings by file (in the order the files first
// appear) and line, so they read like the keepalived.conf.
func sortWarnings(ws []Warning) []Warning {
	rank := map[string]int{}
	for _, w := range ws {
		if _, ok := rank[w.Pos.File]; !ok {
			rank[w.Pos.File] = len(rank)
		}
	}
	slices.SortStableFunc(ws, func(a, b Warning) int {
		if r := rank[a.Pos.File] - rank[b.Pos.File]; r != 0 {
			return r
		}
		return a.Pos.Line - b.Pos.Line
	})
	return ws
}

// converter walks the statement tree and builds an lbd configuration.
type converter struct {
	opts   Options
	file   string
	warns  []Warning
	groups map[string]*Node // virtual_server_group by name
	vrrp   *vrrpResult
	syncd  *syncdResult   // lvs_sync_daemon, from global_defs or the vrrp_instance
	svcs   []service      // converted virtual servers, in file order
	seenVS map[string]Pos // proto/vip:port -> where it was defined
	said   map[string]bool
}

// once reports whether a message keyed by key is said for the first time,
// for notes that would otherwise repeat for every real server.
func (c *converter) once(key string) bool {
	if c.said == nil {
		c.said = map[string]bool{}
	}
	first := !c.said[key]
	c.said[key] = true
	return first
}

// cannot records that statement n could not be converted, and why.
func (c *converter) cannot(n *Node, format string, args ...any) {
	c.warns = append(c.warns, Warning{Pos: n.Pos, Msg: "could not convert " + n.String() + ": " + fmt.Sprintf(format, args...)})
}

// note records something the operator should know about statement n.
func (c *converter) note(pos Pos, format string, args ...any) {
	c.warns = append(c.warns, Warning{Pos: pos, Msg: "note: " + fmt.Sprintf(format, args...)})
}

// topLevelReasons explains the top-level blocks lbd has no use for.
var topLevelReasons = map[string]string{
	"vrrp_script":         "lbd has no VRRP tracking scripts",
	"track_file":          "lbd has no tracked files",
	"track_process":       "lbd has no tracked processes",
	"static_ipaddress":    "lbd manages only VIPs; configure static addresses on the host",
	"static_routes":       "lbd does not manage routes",
	"static_route":        "lbd does not manage routes",
	"static_rules":        "lbd does not manage routing rules",
	"static_rule":         "lbd does not manage routing rules",
	"linkbeat_interfaces": "lbd watches links through netlink",
	"bfd_instance":        "lbd has no BFD",
	"SSL":                 "lbd has no SSL_GET checker, so no SSL context",
}

func (c *converter) convert(root *Node) *config.Config {
	c.groups, c.seenVS = map[string]*Node{}, map[string]Pos{}
	for _, n := range root.Find("virtual_server_group") {
		if _, dup := c.groups[n.Arg(0)]; dup {
			c.cannot(n, "a group of this name is already defined")
			continue
		}
		c.groups[n.Arg(0)] = n
	}
	for _, n := range root.Children {
		switch n.Keyword {
		case "global_defs":
			c.note(n.Pos, "global_defs ignored but for lvs_sync_daemon: mail alerts, router_id and global daemon settings have no lbd equivalent")
			for _, ch := range n.Children {
				if ch.Keyword == "lvs_sync_daemon" {
					c.syncDaemon(ch)
				}
			}
		case "virtual_server_group":
			// Read with the virtual_server that uses it.
		case "virtual_server":
			c.virtualServer(n)
		case "vrrp_instance":
			c.vrrpInstance(n)
		case "vrrp_sync_group":
			c.note(n.Pos, "vrrp_sync_group %s: lbd runs one VRRP instance that moves all VIPs together, which is what a sync group is for; its notify scripts and tracking are not converted", n.Arg(0))
		default:
			if why, ok := topLevelReasons[n.Keyword]; ok {
				c.cannot(n, "%s", why)
			} else {
				c.cannot(n, "unknown or unsupported top-level keyword")
			}
		}
	}
	cfg := &config.Config{}
	cfg.Nodes = c.nodes()
	if c.vrrp != nil {
		cfg.VRRP = &c.vrrp.cfg
		if c.syncd != nil {
			cfg.VRRP.LVSSyncDaemon = &c.syncd.cfg
			if last := 255 - len(c.vrrp.peers); cfg.VRRP.SyncID() > last {
				c.note(c.syncd.pos, "lvs_sync_daemon: sync id %d leaves no room for the other directors' ids; using %d", cfg.VRRP.SyncID(), last)
				cfg.VRRP.LVSSyncDaemon.SyncID = &last
			}
			c.note(c.syncd.pos, "lvs_sync_daemon: lbd runs a master and a backup sync daemon on every director (sync id %d for the first director, %d for the second), not one that follows the VRRP state", cfg.VRRP.SyncID(), cfg.VRRP.SyncID()+1)
		}
	} else if c.syncd != nil {
		c.warns = append(c.warns, Warning{Pos: c.syncd.pos, Msg: "could not convert lvs_sync_daemon: lbd runs the sync daemons between the directors of its vrrp_instance, and there is none"})
	}
	c.services(cfg)
	return cfg
}

// nodes creates the director (keepalived.conf describes only the host it
// runs on) and, for unicast VRRP, its peers.
func (c *converter) nodes() []config.Node {
	n := config.Node{Name: c.opts.NodeName, Role: config.RoleDirector, Address: c.opts.NodeAddress}
	filePos := Pos{File: c.file}
	if v := c.vrrp; v != nil {
		n.Interface, n.Priority = v.iface, v.priority
		if n.Address == "" {
			n.Address = v.srcIP
		} else if v.srcIP != "" && v.srcIP != n.Address {
			c.note(v.srcPos, "the node address given (%s) replaces %s from the file", n.Address, v.srcIP)
		}
	}
	if n.Address == "" {
		n.Address = PlaceholderAddress
		c.note(filePos, "keepalived.conf does not say the director's own address: node %q gets the placeholder %s; replace it with the host's address", n.Name, PlaceholderAddress)
	}
	nodes := []config.Node{n}
	if v := c.vrrp; v != nil {
		for i, p := range v.peers {
			name := fmt.Sprintf("peer%d", i+1)
			nodes = append(nodes, config.Node{Name: name, Role: config.RoleDirector, Address: p.addr, Interface: v.iface})
			c.note(p.pos, "unicast_peer %s became director node %q with interface %s and the default priority: check both against that host's keepalived.conf", p.addr, name, v.iface)
		}
	}
	if len(c.svcs) > 0 {
		c.note(filePos, "keepalived.conf has no tenants: its virtual servers become plain virtual_services open to every source; per-port allow-lists kept in iptables are not read by this import")
	}
	return nodes
}
