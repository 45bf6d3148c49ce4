//go:build integration

package ipvs

import (
	"os"
	"os/exec"
	"testing"
)

// On a kernel without IPVS, moby/ipvs's handle "succeeds" at everything
// while doing nothing; NewNetlink must say that IPVS is missing instead.
func TestNetlinkWithoutIPVS(t *testing.T) {
	exec.Command("modprobe", "ip_vs").Run()
	if _, err := os.Stat("/proc/net/ip_vs"); err == nil {
		t.Skip("this kernel has IPVS; the VM tests cover it")
	}
	if n, err := NewNetlink(""); err == nil {
		n.Close()
		t.Fatal("NewNetlink succeeded on a kernel without IPVS")
	}
}
