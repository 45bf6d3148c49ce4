//go:build integration

package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lbd-project/lbd/internal/api"
)

// A node without a cluster section keeps its desired state in a Local
// store: an old runtime.json is imported once (and kept, renamed); a
// restart reconciles from the last applied state even if the file was
// put back to an older content (which lbd replaces, keeping it as .prev);
// every change reports where it is applied; reads say how fresh they are.
func TestE2ELocalStoreUpgradeAndRestart(t *testing.T) {
	e := newE2E(t)
	e.stop()
	// What an earlier lbd left: runtime.json with an allow-list change,
	// and no store yet.
	os.Remove(filepath.Join(e.state, "local-state.json"))
	os.Remove(filepath.Join(e.state, "applied-state.json"))
	e.write(filepath.Join(e.state, "runtime.json"), `{"allow": {"shop": ["198.51.100.9/32"]}}`)
	e.start()
	var al api.AllowList
	e.jsonOut(&al, "tenant", "allow", "list", "shop")
	if len(al.Allow) != 1 || al.Allow[0].String() != "198.51.100.9/32" {
		t.Fatalf("after the upgrade the allow-list is %v, want runtime.json's", al.Allow)
	}
	if _, err := os.Stat(filepath.Join(e.state, "runtime.json.imported")); err != nil {
		t.Errorf("runtime.json was not kept as runtime.json.imported: %v", err)
	}
	if _, err := os.Stat(filepath.Join(e.state, "runtime.json")); err == nil {
		t.Error("runtime.json is still read")
	}

	// A change reports the node that applied it, and status says the mode.
	code, _, errs := e.run("tenant", "allow", "add", "shop", "198.51.100.10", "--wait", "10s")
	if code != 0 || !strings.Contains(errs, "applied on every node (1/1)") {
		t.Fatalf("allow add: exit %d, report %q", code, errs)
	}
	var cs api.ClusterStatus
	e.jsonOut(&cs, "cluster", "status")
	if cs.Mode != "local" || cs.Leader != "box" || cs.ReconciledIndex == 0 || cs.ReconciledIndex != cs.AppliedIndex {
		t.Errorf("cluster status %+v", cs)
	}
	if out := e.ok("tenant", "list"); !strings.Contains(out, "State as of index") {
		t.Errorf("tenant list does not say how fresh it is:\n%s", out)
	}

	// apply -f a new file (allow-list in the file), then put the old file
	// back while lbd is stopped: the restart keeps the applied state.
	old, _ := os.ReadFile(e.cfg)
	next := strings.Replace(string(old), "allow: [10.0.1.0/24]", "allow: [192.0.2.0/24]", 1)
	newFile := filepath.Join(e.dir, "next.yaml")
	e.write(newFile, next)
	e.ok("apply", "-f", newFile, "--yes")
	if b, _ := os.ReadFile(e.cfg); string(b) != next {
		t.Errorf("apply did not write the node's file")
	}
	e.stop()
	e.write(e.cfg, string(old))
	e.start()
	if m := e.setMembers("shop"); !sameSet(m, []string{"192.0.2.0/24"}) {
		t.Fatalf("after a restart with an older file the kernel enforces %v, want the applied 192.0.2.0/24", m)
	}
	if b, _ := os.ReadFile(e.cfg); string(b) != next {
		t.Errorf("the older file was not replaced by the applied configuration")
	}
	if b, _ := os.ReadFile(e.cfg + ".prev"); string(b) != string(old) {
		t.Errorf("the older file was not kept as .prev")
	}
	var st api.Status
	e.jsonOut(&st, "status")
	if st.Cluster == nil || st.Cluster.Mode != "local" {
		b, _ := json.Marshal(st.Cluster)
		t.Errorf("status has no cluster part: %s", b)
	}
}
