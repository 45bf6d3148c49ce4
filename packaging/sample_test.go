package packaging

import (
	"testing"

	"github.com/lbd-project/lbd/pkg/config"
)

// The sample /etc/lbd/lbd.yaml the package installs is valid, names the
// node /etc/default/lbd passes as --node, and hands the socket to the group
// the postinst creates.
func TestSampleConfig(t *testing.T) {
	c, err := config.Load("lbd.yaml")
	if err != nil {
		t.Fatal(err)
	}
	n, ok := c.NodeByName("sample")
	if !ok || !n.Role.IsStorage() || n.Role.IsDirector() {
		t.Fatalf("node sample: %+v %v (want a storage node)", n, ok)
	}
	if len(c.Services()) != 0 {
		t.Errorf("the sample has %d services; it must change nothing in the kernel", len(c.Services()))
	}
	if d := c.Daemon; d.SocketGroup != "lbd" || d.StateDir != "/var/lib/lbd" || d.Socket != "/run/lbd/lbd.sock" {
		t.Errorf("daemon section %+v", d)
	}
}
