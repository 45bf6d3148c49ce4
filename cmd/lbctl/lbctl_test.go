package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lbd-project/lbd/internal/api"
	"github.com/lbd-project/lbd/internal/api/apitest"
	"github.com/lbd-project/lbd/internal/testutil/apiserve"
	"github.com/prometheus/client_golang/prometheus"
)

// fixture is a fake lbd on a unix socket.
type fixture struct {
	fake *apitest.Fake
	sock string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := apitest.New()
	sock := filepath.Join(t.TempDir(), "lbd.sock")
	s := apiserve.Start(t, f, api.ServerOptions{Socket: sock, Registry: prometheus.NewRegistry()})
	t.Cleanup(func() { s.Stop() })
	return &fixture{fake: f, sock: sock}
}

// lbctl runs a command line against the fixture.
func (fx *fixture) lbctl(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	a := &app{
		stdin:  strings.NewReader(stdin),
		stdout: &out,
		stderr: &errb,
		getenv: func(k string) string {
			if k == "LBD_SOCKET" {
				return fx.sock
			}
			return ""
		},
		now: func() time.Time { return apitest.SampleTime },
	}
	code = a.run(context.Background(), args)
	return code, out.String(), errb.String()
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const goodYAML = "tenants:\n  - name: t1\n    service: {vip: 203.0.113.10, port: 13101}\n    reals: [{address: 10.0.0.1}]\n    allow: [198.51.100.7]\n"

const badYAML = "tenants:\n  - name: t1\n    service: {vip: 203.0.113.10, port: 99999}\n    reals: [{address: 10.0.0.1}]\n"

func TestCommands(t *testing.T) {
	good := writeFile(t, "good.yaml", goodYAML)
	bad := writeFile(t, "bad.yaml", badYAML)
	tests := []struct {
		name       string
		args       []string
		stdin      string
		wantCode   int
		wantOut    []string
		wantErr    string
		wantMutate string // backend mutations, comma-separated
	}{
		{"status", []string{"status"}, "", 0, []string{
			"Node lb1, role both", "VRRP 51 on eth0: MASTER since 30m0s ago, priority 150, 2 transitions, VIPs 203.0.113.10",
			"TCP  203.0.113.10:13101 (tenant user1)", "-> 192.168.12.233:13101", "Route", "up", "20m0s",
			"0 (of 1)", "connection refused", "TCP  203.0.113.20:80"}, "", ""},
		{"status rate", []string{"status", "--rate"}, "", 0, []string{"CPS", "InPPS", "OutBPS"}, "", ""},
		{"status global flag first", []string{"-o", "json", "status"}, "", 0, []string{`"node": "lb1"`}, "", ""},
		{"vs list", []string{"vs", "list"}, "", 0, []string{"NAME", "user1", "tcp/203.0.113.20:80", "wlc"}, "", ""},
		{"vs add", []string{"vs", "add", "--real", "10.0.0.1@2", "--real", "10.0.0.2", "-s", "rr", "203.0.113.30:443"}, "", 0,
			[]string{"added tcp/203.0.113.30:443"}, "", "AddService"},
		{"vs add no reals", []string{"vs", "add", "203.0.113.30:443"}, "", 2, nil, "at least one --real", ""},
		{"vs add bad vip", []string{"vs", "add", "--real", "10.0.0.1", "203.0.113.30"}, "", 2, nil, "bad VIP:PORT", ""},
		{"vs add bad scheduler", []string{"vs", "add", "--real", "10.0.0.1", "-s", "fast", "203.0.113.30:1"}, "", 1, nil, "unknown scheduler", ""},
		{"vs add exists", []string{"vs", "add", "--real", "10.0.0.1", "203.0.113.20:80"}, "", 1, nil, "already exists", "AddService"},
		{"vs del", []string{"vs", "del", "203.0.113.20:80"}, "", 0, []string{"deleted tcp/203.0.113.20:80"}, "", "DeleteService"},
		{"vs del unknown", []string{"vs", "del", "tcp/203.0.113.99:80"}, "", 1, nil, "not found", "DeleteService"},
		{"rs add", []string{"rs", "add", "-w", "3", "user1", "192.168.12.235"}, "", 0, []string{"weight 3"}, "", "AddReal"},
		{"rs add bad", []string{"rs", "add", "user1", "192.168.12"}, "", 2, nil, "bad real server", ""},
		{"rs del", []string{"rs", "del", "user1", "192.168.12.233"}, "", 0, []string{"removed"}, "", "DeleteReal"},
		{"rs weight", []string{"rs", "weight", "user1", "192.168.12.233:13101", "5"}, "", 0, []string{"now 5"}, "", "SetWeight"},
		{"rs weight bad", []string{"rs", "weight", "user1", "192.168.12.233", "five"}, "", 2, nil, "bad weight", ""},
		{"rs drain", []string{"rs", "drain", "user1", "192.168.12.233"}, "", 0, []string{"draining"}, "", "SetWeight"},
		{"rs drain too many", []string{"rs", "drain", "user1", "a", "b"}, "", 2, nil, "usage: lbctl rs drain", ""},
		{"diff", []string{"diff", "-f", good}, "", 0, []string{"+ tenant t1", "~ real 10.0.0.1:80: weight 1 -> 2"}, "", ""},
		{"diff bad", []string{"diff", "-f", bad}, "", 4, nil, "bad.yaml:3: port 99999 out of range", ""},
		{"apply dry run", []string{"apply", "--dry-run", "-f", good}, "", 0, []string{"+ tenant t1"}, "", ""},
		{"apply yes", []string{"apply", "--yes", "-f", good}, "", 0, []string{"+ tenant t1", "applied 2 change(s)"}, "", "Apply"},
		{"apply not a tty", []string{"apply", "-f", good}, "", 2, nil, "--yes", ""},
		{"apply stdin", []string{"apply", "--yes", "-f", "-"}, goodYAML, 0, []string{"applied"}, "", "Apply"},
		{"apply bad", []string{"apply", "--yes", "-f", bad}, "", 4, nil, "port 99999", ""},
		{"apply no file", []string{"apply", "--yes"}, "", 2, nil, "-f FILE is required", ""},
		{"validate local", []string{"validate", "-f", good}, "", 0, []string{"configuration OK (0 nodes, 1 tenants, 1 services)"}, "", ""},
		{"validate local bad", []string{"validate", "-f", bad}, "", 4, nil, "bad.yaml:3: port 99999 out of range 1-65535", ""},
		{"validate remote", []string{"validate", "--remote", "-f", good}, "", 0, []string{"configuration OK"}, "", ""},
		{"validate remote bad", []string{"validate", "--remote", "-f", bad}, "", 4, nil, "bad.yaml:3:", ""},
		{"validate missing", []string{"validate", "-f", "/nonexistent.yaml"}, "", 1, nil, "no such file", ""},
		{"validate stdin", []string{"validate", "-f", "-"}, goodYAML, 0, []string{"-: configuration OK (0 nodes, 1 tenants, 1 services)"}, "", ""},
		{"validate stdin bad", []string{"validate", "-f", "-"}, badYAML, 4, nil, "stdin:3: port 99999 out of range", ""},
		{"validate no file", []string{"validate"}, "", 2, nil, "-f FILE is required", ""},
		{"validate unknown node", []string{"validate", "--node", "lb9", "-f", good}, "", 4, nil, `node "lb9" is not defined`, ""},
		{"reload", []string{"reload"}, "", 0, []string{"reloaded"}, "", "Reload"},
		{"tenant list", []string{"tenant", "list"}, "", 0, []string{"user1", "203.0.113.10:13101", "256.0MiB", "198.51.100.7/32,198.51.100.0/28"}, "", ""},
		{"tenant show", []string{"tenant", "show", "user1"}, "", 0, []string{"Service:", "198.51.100.0/28"}, "", ""},
		{"tenant show unknown", []string{"tenant", "show", "nobody"}, "", 1, nil, "no tenant nobody", ""},
		{"tenant add", []string{"tenant", "add", "--vip", "203.0.113.10", "--port", "13102", "--allow", "10.0.0.0/8,10.1.1.1", "--memory", "1GiB", "t2"}, "", 0,
			[]string{"added tenant t2"}, "", "AddTenant"},
		{"tenant add no port", []string{"tenant", "add", "--vip", "203.0.113.10", "t2"}, "", 2, nil, "--port", ""},
		{"tenant add bad memory", []string{"tenant", "add", "--vip", "203.0.113.10", "--port", "1", "--memory", "lots", "t2"}, "", 2, nil, "--memory", ""},
		{"tenant del", []string{"tenant", "del", "user1"}, "", 0, []string{"deleted tenant user1"}, "", "DeleteTenant"},
		{"allow list", []string{"tenant", "allow", "list", "user1"}, "", 0, []string{"198.51.100.7/32\n198.51.100.0/28"}, "", ""},
		{"allow add", []string{"tenant", "allow", "add", "user1", "10.9.9.9", "10.8.0.0/16"}, "", 0, []string{"10.9.9.9/32", "10.8.0.0/16"}, "", "ChangeAllow"},
		{"allow other family", []string{"tenant", "allow", "add", "user1", "2001:db8::/32"}, "", 1, nil, "other address family", ""},
		{"allow del", []string{"tenant", "allow", "del", "user1", "198.51.100.7"}, "", 0, []string{"198.51.100.0/28"}, "", "ChangeAllow"},
		{"allow set nobody", []string{"tenant", "allow", "set", "user1"}, "", 0, []string{"nobody is allowed"}, "", "ChangeAllow"},
		{"allow bad entry", []string{"tenant", "allow", "add", "user1", "10.0.0.1/8"}, "", 2, nil, "host bits", ""},
		{"allow add nothing", []string{"tenant", "allow", "add", "user1"}, "", 2, nil, "usage:", ""},
		{"allow unknown tenant", []string{"tenant", "allow", "add", "nobody", "10.0.0.1"}, "", 1, nil, "no tenant nobody", ""},
		{"kvs stats", []string{"kvs", "stats"}, "", 0, []string{"NODE", "lb1", "user1", "durable", "1.2KiB", "256.0MiB"}, "", ""},
		{"kvs stats tenant", []string{"kvs", "stats", "nobody"}, "", 0, []string{"NODE"}, "", ""},
		{"completion bash", []string{"completion", "bash"}, "", 0, []string{"complete -F _lbctl lbctl", `"tenant allow") words="list add del set"`}, "", ""},
		{"completion zsh", []string{"completion", "zsh"}, "", 0, []string{"#compdef lbctl"}, "", ""},
		{"completion fish", []string{"completion", "fish"}, "", 2, nil, "unknown shell", ""},
		{"help", []string{"help"}, "", 0, []string{"tenant allow set", "exit codes"}, "", ""},
		{"help cmd", []string{"help", "rs", "weight"}, "", 0, []string{"usage: lbctl rs weight SERVICE ADDR[:PORT] WEIGHT"}, "", ""},
		{"no command", nil, "", 2, nil, "no command", ""},
		{"unknown command", []string{"frobnicate"}, "", 2, nil, `unknown command "frobnicate"`, ""},
		{"unknown sub", []string{"vs", "frob"}, "", 2, nil, `vs: unknown command "frob"`, ""},
		{"bad flag", []string{"status", "--frob"}, "", 2, nil, "flag provided but not defined", ""},
		{"bad output", []string{"status", "-o", "xml"}, "", 2, nil, "want table, json or yaml", ""},
		{"server without token", []string{"--server", "http://127.0.0.1:1", "status"}, "", 2, nil, "--token", ""},
		{"unreachable server", []string{"--server", "http://127.0.0.1:1", "--token", "x", "status"}, "", 3, nil, "cannot reach lbd", ""},
		{"unreachable socket", []string{"--socket", "/nonexistent/lbd.sock", "status"}, "", 3, nil, "cannot reach lbd", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newFixture(t)
			fx.fake.DiffResult = api.Diff{Changes: []api.Change{
				{Op: "add", Kind: "tenant", Name: "t1"},
				{Op: "change", Kind: "real", Name: "10.0.0.1:80", Detail: "weight 1 -> 2"},
			}}
			code, out, errs := fx.lbctl(t, tt.stdin, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.wantCode, out, errs)
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(out, w) {
					t.Errorf("stdout does not contain %q:\n%s", w, out)
				}
			}
			if !strings.Contains(errs, tt.wantErr) {
				t.Errorf("stderr does not contain %q:\n%s", tt.wantErr, errs)
			}
			var got []string
			for _, c := range fx.fake.Mutations() {
				got = append(got, c.Method)
			}
			if strings.Join(got, ",") != tt.wantMutate {
				t.Errorf("backend mutations %v, want %q", got, tt.wantMutate)
			}
		})
	}
}

func TestJSONOutput(t *testing.T) {
	tests := []struct {
		args  []string
		check func(t *testing.T, out []byte)
	}{
		{[]string{"status", "-o", "json"}, func(t *testing.T, out []byte) {
			var st api.Status
			mustJSON(t, out, &st)
			if st.Node != "lb1" || len(st.Services) != 2 || st.Services[0].Reals[1].Health != "down" {
				t.Errorf("status = %+v", st)
			}
		}},
		{[]string{"vs", "list", "-o", "json"}, func(t *testing.T, out []byte) {
			var svcs []api.ServiceStatus
			mustJSON(t, out, &svcs)
			if len(svcs) != 2 || svcs[1].Name != "tcp/203.0.113.20:80" {
				t.Errorf("services = %+v", svcs)
			}
		}},
		{[]string{"tenant", "allow", "add", "-o", "json", "user1", "10.9.9.9"}, func(t *testing.T, out []byte) {
			var al api.AllowList
			mustJSON(t, out, &al)
			if al.Tenant != "user1" || len(al.Allow) != 3 || al.Allow[2].String() != "10.9.9.9/32" {
				t.Errorf("allow = %+v", al)
			}
		}},
		{[]string{"tenant", "list", "-o", "json"}, func(t *testing.T, out []byte) {
			var ts []api.Tenant
			mustJSON(t, out, &ts)
			if len(ts) != 1 || ts[0].Port != 13101 {
				t.Errorf("tenants = %+v", ts)
			}
		}},
		{[]string{"kvs", "stats", "user1", "-o", "json"}, func(t *testing.T, out []byte) {
			var ks []api.KVSStats
			mustJSON(t, out, &ks)
			if len(ks) != 1 || ks[0].Items != 5 || ks[0].Hits != 9 || ks[0].TotalConns != 11 {
				t.Errorf("kvs = %+v", ks)
			}
		}},
		{[]string{"rs", "drain", "-o", "json", "user1", "192.168.12.233"}, func(t *testing.T, out []byte) {
			var ok struct {
				OK      bool   `json:"ok"`
				Message string `json:"message"`
			}
			mustJSON(t, out, &ok)
			if !ok.OK {
				t.Errorf("result = %+v", ok)
			}
		}},
		{[]string{"status", "-o", "yaml"}, func(t *testing.T, out []byte) {
			for _, w := range []string{"node: lb1\n", "vrrp:\n  - vrid: 51\n", "port: 13101\n"} {
				if !bytes.Contains(out, []byte(w)) {
					t.Errorf("yaml lacks %q:\n%s", w, out)
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			fx := newFixture(t)
			code, out, errs := fx.lbctl(t, "", tt.args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			tt.check(t, []byte(out))
		})
	}
}

func mustJSON(t *testing.T, data []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, data)
	}
}

func TestRealSpec(t *testing.T) {
	tests := []struct {
		in         string
		addr       string
		port, w    int
		wantWeight bool
		bad        bool
	}{
		{in: "10.0.0.1", addr: "10.0.0.1"},
		{in: "10.0.0.1:80", addr: "10.0.0.1", port: 80},
		{in: "10.0.0.1:80@3", addr: "10.0.0.1", port: 80, w: 3, wantWeight: true},
		{in: "[2001:db8::1]:80@0", addr: "2001:db8::1", port: 80, w: 0, wantWeight: true},
		{in: "2001:db8::1", addr: "2001:db8::1"},
		{in: "10.0.0.1@x", bad: true},
		{in: "host.example", bad: true},
	}
	for _, tt := range tests {
		r, err := parseRealSpec(tt.in)
		if tt.bad {
			if err == nil {
				t.Errorf("%q: no error", tt.in)
			}
			continue
		}
		if err != nil || r.Address != tt.addr || r.Port != tt.port || (r.Weight != nil) != tt.wantWeight || (r.Weight != nil && *r.Weight != tt.w) {
			t.Errorf("%q = %+v, %v", tt.in, r, err)
		}
	}
}
