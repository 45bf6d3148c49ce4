package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// aliasBomb is the file of issue 17: one anchored tenant with n reals,
// then n-1 aliases of it (373 KB for n = 10,000). Unchecked, following
// every alias costs O(n²).
func aliasBomb(n int) string {
	var b strings.Builder
	b.WriteString("nodes:\n  - {name: st1, role: storage, address: 10.0.0.1}\ntenants:\n  - &T\n    name: t\n    service: {vip: 10.0.0.100, port: 11211}\n    reals:\n")
	for i := range n {
		fmt.Fprintf(&b, "      - {address: 10.%d.%d.%d}\n", i>>16&255, i>>8&255, i&255)
	}
	for range n - 1 {
		b.WriteString("  - *T\n")
	}
	return b.String()
}

// The alias file is refused (yaml's alias guard, once the unknown-key
// check has stopped following every alias); how fast is a benchmark's
// business, not this test's: it would take minutes before the fix.
func TestAliasAmplificationRefused(t *testing.T) {
	_, err := Parse([]byte(aliasBomb(10000)), "bomb.yaml")
	if err == nil || !strings.Contains(err.Error(), "alias") {
		t.Fatalf("alias bomb: err = %v, want an aliasing error", err)
	}
}

// An alias repeats its anchor's problems once, at the anchor's line.
func TestAliasProblemsOnce(t *testing.T) {
	y := "defaults:\n  health: &H {type: tcp, bogus: 1}\nvirtual_services:\n  - {vip: 10.0.0.1, port: 80, reals: [{address: 10.0.0.2}], health: *H}\n  - {vip: 10.0.0.1, port: 81, reals: [{address: 10.0.0.2}], health: *H}\n"
	_, err := Parse([]byte(y), "a.yaml")
	if err == nil || strings.Count(err.Error(), `unknown key "bogus"`) != 1 {
		t.Fatalf("err = %v, want the unknown key once", err)
	}
}

// Load refuses what is not a regular file at once, with a clear error,
// instead of waiting for a FIFO's writer or reading a device forever.
func TestLoadRefusesNonRegular(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{fifo, "/dev/zero", t.TempDir()} {
		_, err := Load(path)
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("Load(%s): err = %v, want not a regular file", path, err)
		}
	}
	// A symbolic link to a regular file is fine.
	dir := t.TempDir()
	real := filepath.Join(dir, "lbd.yaml")
	os.WriteFile(real, []byte("nodes: []\n"), 0o600)
	link := filepath.Join(dir, "link.yaml")
	os.Symlink(real, link)
	if _, err := Load(link); err != nil {
		t.Errorf("Load(symlink): %v", err)
	}
}

// Sizes beyond what the machine holds are refused with file:line, so that
// `lbd -t` calls out what the daemon could not run.
func TestKVSBounds(t *testing.T) {
	const head = "nodes:\n  - {name: st1, role: storage, address: 10.0.0.1}\ntenants:\n  - name: t\n    service: {vip: 10.0.0.100, port: 11211}\n"
	tests := []struct{ kvs, want string }{
		{`{memory: 1000000TiB, storage: durable}`, "t.yaml:6: memory 1000000TiB: more than this machine's memory"},
		{`{memory: 9223372036854775807}`, "t.yaml:6: memory 9223372036854775807: more than this machine's memory"},
		{`{memory: 2MiB, max_item_size: 4MiB}`, "t.yaml:6: max_item_size 4MiB is larger than the tenant's memory 2MiB"},
		{`{sync_interval: 1h}`, "t.yaml:6: sync_interval 1h0m0s out of range"},
		{`{memory: 512KiB}`, "t.yaml:6: memory 512KiB: at least 1MiB"},
	}
	for _, tt := range tests {
		_, err := Parse([]byte(head+"    kvs: "+tt.kvs+"\n"), "t.yaml")
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("kvs %s: err = %v, want %q", tt.kvs, err, tt.want)
		}
	}
	if _, err := Parse([]byte(head+"    kvs: {memory: 16MiB, storage: durable}\n"), "t.yaml"); err != nil {
		t.Errorf("a small durable tenant: %v", err)
	}
}

// An allow-list entry that admits everybody needs allow_any: true, and is
// then accepted with a warning; so does a TCP API without TLS need
// insecure: true.
func TestDoorsLeftOpen(t *testing.T) {
	const head = "nodes:\n  - {name: st1, role: storage, address: 10.0.0.1}\ntenants:\n  - name: t\n    service: {vip: 10.0.0.100, port: 11211}\n"
	tests := []struct {
		body, err, warn string
	}{
		{"    allow: [0.0.0.0/0]\n", `t.yaml:6: allow "0.0.0.0/0" admits (nearly) everybody: set allow_any: true on tenant "t" to mean it`, ""},
		{"    allow: [10.0.0.0/8, 0.0.0.0/7]\n", `t.yaml:6: allow "0.0.0.0/7" admits`, ""},
		{"    allow: [0.0.0.0/0]\n    allow_any: true\n", "", `t.yaml:6: tenant "t": allow "0.0.0.0/0" admits (nearly) everybody (allow_any: true)`},
		{"    allow: [10.0.0.0/8]\n", "", ""},
		{"    allow: [10.0.0.0/8]\ndaemon: {listen: '127.0.0.1:8443', token_file: /etc/lbd/token}\n", "t.yaml:7: a TCP listener without TLS sends the token in clear", ""},
		{"    allow: [10.0.0.0/8]\ndaemon: {listen: '127.0.0.1:8443', token_file: /etc/lbd/token, insecure: true}\n", "", "has no TLS (insecure: true)"},
		{"    allow: [10.0.0.0/8]\ndaemon: {listen: '127.0.0.1:8443', token_file: /etc/lbd/token, tls_cert: c, tls_key: k}\n", "", ""},
	}
	for _, tt := range tests {
		c, err := Parse([]byte(head+tt.body), "t.yaml")
		switch {
		case tt.err != "":
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: err = %v, want %q", tt.body, err, tt.err)
			}
			continue
		case err != nil:
			t.Errorf("%s: %v", tt.body, err)
			continue
		}
		var warns []string
		for _, w := range c.Warnings() {
			warns = append(warns, w.String())
		}
		if got := strings.Join(warns, "\n"); tt.warn == "" && got != "" || !strings.Contains(got, tt.warn) {
			t.Errorf("%s: warnings %q, want %q", tt.body, got, tt.warn)
		}
	}
}
