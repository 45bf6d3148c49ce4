package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lbd-project/lbd/pkg/cluster/certs"
)

// lbctl cluster certs init|issue make files a certs.Loader accepts.
func TestClusterCerts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	run := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		a := &app{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
		code := a.run(context.Background(), args)
		return code, out.String() + errb.String()
	}
	if code, out := run("cluster", "certs", "init", "--dir", dir); code != 0 {
		t.Fatalf("init: %d %s", code, out)
	}
	if code, out := run("cluster", "certs", "init", "--dir", dir); code == 0 || !strings.Contains(out, "exists") {
		t.Fatalf("second init: %d %s", code, out)
	}
	if code, out := run("cluster", "certs", "issue", "--dir", dir, "dir1", "10.0.0.1"); code != 0 {
		t.Fatalf("issue: %d %s", code, out)
	}
	if code, _ := run("cluster", "certs", "issue", "--dir", dir); code == 0 {
		t.Fatal("issue without a node name succeeded")
	}
	fi, err := os.Stat(filepath.Join(dir, "dir1-key.pem"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key: %v %v", fi, err)
	}
	if _, err := certs.NewLoader(filepath.Join(dir, "dir1.pem"), filepath.Join(dir, "dir1-key.pem"), filepath.Join(dir, "ca.pem")); err != nil {
		t.Fatal(err)
	}
}
