//go:build integration || vm

// The cluster lab: real lbd processes in the lab's namespaces, each with
// its own state dir, configuration file and cluster certificate, one
// replicated state, changed through the API of any node.
package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lbd-project/lbd/internal/api"
	"github.com/lbd-project/lbd/pkg/cluster/certs"
)

// clusterYAML is a cluster lab's file: the nodes (a name starting with lb
// is a director with VRRP priority 150 for lb1, 100 for lb2; any other a
// storage node; each on eth0), then body (the test's own sections: vrrp,
// defaults, tenants), then the cluster section with the lab's certificates
// (CERTS, see newClusterLab) and the extra lines of cluster, each
// "key: value".
func clusterYAML(nodes [][2]string, body string, cluster ...string) string {
	var b strings.Builder
	b.WriteString("nodes:\n")
	for _, n := range nodes {
		if strings.HasPrefix(n[0], "lb") {
			i, _ := strconv.Atoi(strings.TrimPrefix(n[0], "lb"))
			fmt.Fprintf(&b, "  - {name: %s, role: director, address: %s, interface: eth0, priority: %d}\n", n[0], n[1], 200-50*i)
		} else {
			fmt.Fprintf(&b, "  - {name: %s, role: storage, address: %s, interface: eth0}\n", n[0], n[1])
		}
	}
	b.WriteString(strings.TrimLeft(body, "\n"))
	b.WriteString("cluster:\n  tls:\n    ca: CERTS/ca.pem\n    cert: CERTS/{node}.pem\n    key: CERTS/{node}-key.pem\n")
	for _, line := range cluster {
		b.WriteString("  " + line + "\n")
	}
	return b.String()
}

// clusterNode is one node of a cluster lab.
type clusterNode struct {
	name, addr string
	cfg        string // its own copy of the file: lbd rewrites it
	d          *lbd
}

// clusterLab is a lab whose nodes run one cluster.
type clusterLab struct {
	*lab
	certDir string
	nodes   map[string]*clusterNode
	order   []string
}

// newClusterLab makes the namespaces, a cluster CA and a certificate per
// node; yaml is the file, with CERTS standing for the certificates' dir.
func newClusterLab(t *testing.T, yaml string, nodes [][2]string) *clusterLab {
	l := &clusterLab{lab: newLab(t), nodes: map[string]*clusterNode{}}
	l.certDir = filepath.Join(l.dir, "certs")
	if err := certs.InitDir(l.certDir, "lbd test CA"); err != nil {
		t.Fatal(err)
	}
	yaml = strings.ReplaceAll(yaml, "CERTS", l.certDir)
	for _, n := range nodes {
		name, addr := n[0], n[1]
		l.host(name, addr)
		if _, _, err := certs.IssueDir(l.certDir, name, []string{addr}); err != nil {
			t.Fatal(err)
		}
		cfg := filepath.Join(l.dir, name+".yaml")
		if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		l.nodes[name] = &clusterNode{name: name, addr: addr, cfg: cfg}
		l.order = append(l.order, name)
	}
	return l
}

func (l *clusterLab) startNode(name string) {
	n := l.nodes[name]
	n.d = l.start(name, n.cfg)
}

func (l *clusterLab) kill(name string) { l.nodes[name].d.stop(syscall.SIGKILL) }

func (l *clusterLab) client(name string) *api.Client {
	c, err := api.NewClient(l.nodes[name].d.sock, "")
	if err != nil {
		l.t.Fatal(err)
	}
	return c
}

// leader waits for the nodes in alive to agree on a leader among them,
// each with a configuration applied.
func (l *clusterLab) leader(alive ...string) string {
	l.t.Helper()
	var leader string
	eventually(l.t, 180*time.Second, fmt.Sprintf("a leader among %v", alive), func() bool {
		leader = ""
		for _, name := range alive {
			f := l.client(name)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			st, err := f.ClusterStatus(ctx)
			cancel()
			// A leader, the same for all, and a configuration applied
			// (the first start seeds it once a node caught up).
			if err != nil || st.Leader == "" || (leader != "" && st.Leader != leader) || st.ReconciledIndex == 0 {
				return false
			}
			leader = st.Leader
		}
		return slices.Contains(alive, leader)
	})
	return leader
}

// change runs fn (a write) on node through its API, then waits until the
// nodes in all have applied it, and returns the write's index.
func (l *clusterLab) change(node string, all []string, fn func(ctx context.Context, c *api.Client) error) uint64 {
	l.t.Helper()
	c := l.client(node)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := fn(ctx, c); err != nil {
		l.t.Fatalf("write on %s: %v", node, err)
	}
	idx := c.LastMeta().Index
	if idx == 0 {
		l.t.Fatalf("write on %s: the answer has no index", node)
	}
	l.waitApplied(node, idx, all)
	return idx
}

// waitApplied waits until every node of all reports index reconciled.
func (l *clusterLab) waitApplied(via string, idx uint64, all []string) {
	l.t.Helper()
	eventually(l.t, 60*time.Second, fmt.Sprintf("index %d applied on %v", idx, all), func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		rep, err := l.client(via).WaitApplied(ctx, idx, 0)
		if err != nil {
			return false
		}
		applied := 0
		for _, n := range rep.Nodes {
			if slices.Contains(all, n.Name) {
				if !n.Applied {
					return false
				}
				applied++
			}
		}
		return applied == len(all) // every one of all is a member, and has it
	})
}

func allowOp(tenant string, op api.AllowOp, entries ...string) func(context.Context, *api.Client) error {
	return func(ctx context.Context, c *api.Client) error {
		_, err := c.ChangeAllow(ctx, tenant, op, entries)
		return err
	}
}

// listen runs the test binary as a TCP server in namespace ns: it answers
// every line with "hello" (a stand-in for the service behind the VIP).
func (l *clusterLab) listen(ns, addr string) {
	c := exec.Command("ip", "netns", "exec", l.full(ns), os.Args[0])
	c.Env = append(os.Environ(), "LBD_E2E_LISTEN="+addr)
	if err := c.Start(); err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() { c.Process.Kill(); c.Wait() })
}

// reaches reports whether a real TCP connection from ns to addr gets
// through to the service (a refused or dropped one does not).
func (l *clusterLab) reaches(ns, addr string) bool {
	out, err := l.nc(ns, addr, "hi")
	return err == nil && strings.HasPrefix(out, "hello")
}

// directorsSet reads a tenant's allow-list from the kernel of a node: the
// entries of every lbd ipset that names the tenant.
func (l *clusterLab) kernelAllows(ns, tenant, entry string) bool {
	out := l.sh(ns, "ipset list -o save 2>/dev/null || true")
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == "add" && strings.Contains(strings.ToLower(f[1]), strings.ToLower(tenant)) &&
			(f[2] == entry || f[2] == entry+"/32") {
			return true
		}
	}
	return false
}
