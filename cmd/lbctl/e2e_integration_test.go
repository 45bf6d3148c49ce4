//go:build integration || vm

// End-to-end tests of lbctl against a real lbd. They need root: lbd runs in
// a network namespace the test creates (removed afterwards), and the
// allow-lists lbctl changes are checked in that namespace's ipset and
// iptables. IPVS is not asserted here (this host's kernel has none); the
// TestVM* tests in e2e_vm_test.go do that inside the VM.
//
// The binaries are $LBD_BIN and $LBCTL_BIN when set; otherwise they are
// built from this tree (tag integration) or taken from bin/ (tag vm: make
// build, as building inside the VM is slow).
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lbd-project/lbd/internal/api"
	"github.com/lbd-project/lbd/internal/testutil/netnstest"
)

// e2e is one lbd in its own network namespace, driven through lbctl.
type e2e struct {
	t        *testing.T
	dir      string
	ns       string
	lbd      string
	lbctl    string
	cfg      string
	sock     string
	state    string
	proc     *exec.Cmd
	exited   chan struct{}
	logFile  string
	tokenArg []string
}

// e2eBins are the lbd and lbctl binaries, built once by TestMain.
var e2eBins struct {
	lbd, lbctl string
	err        error
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "lbctl-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Chmod(dir, 0o755) // lbctl also runs as nobody
	e2eBins.lbd, e2eBins.err = e2eBinary(dir, "lbd", "LBD_BIN", "../lbd")
	if e2eBins.err == nil {
		e2eBins.lbctl, e2eBins.err = e2eBinary(dir, "lbctl", "LBCTL_BIN", ".")
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const e2eConfig = `nodes:
  - {name: box, role: both, address: 10.0.0.5, interface: eth0}
defaults:
  health: {type: none}
tenants:
  - name: shop
    service: {vip: 10.0.0.100, port: 11211, scheduler: rr}
    allow: [10.0.1.0/24]
    kvs: {memory: 16MiB}
daemon:
  listen: 127.0.0.1:7480
  token_file: %s
  insecure: true   # no TLS on the test's loopback listener
`

func newE2E(t *testing.T) *e2e {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: lbd programs ipset and iptables in a network namespace")
	}
	for _, tool := range []string{"ip", "ipset", "iptables", "setpriv"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s: %v", tool, err)
		}
	}
	dir := t.TempDir()
	// The socket's own mode must be what keeps others out, so the
	// directories above it are open.
	for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	e := &e2e{t: t, dir: dir,
		sock: filepath.Join(dir, "run", "lbd.sock"), state: filepath.Join(dir, "state"),
		cfg: filepath.Join(dir, "lbd.yaml"), logFile: filepath.Join(dir, "lbd.log")}
	e.lbd, e.lbctl = e2eBins.lbd, e2eBins.lbctl
	if e2eBins.err != nil {
		t.Fatal(e2eBins.err)
	}
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("e2e-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.write(e.cfg, fmt.Sprintf(e2eConfig, token))
	e.ns = netnstest.New(t, "lbdctl") // deleted in its own cleanup, after e.stop below
	t.Cleanup(func() { e.stop() })
	e.inNS("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth1")
	e.inNS("ip", "addr", "add", "10.0.0.5/24", "dev", "eth0")
	e.inNS("ip", "link", "set", "eth0", "up")
	e.start()
	return e
}

// e2eBinary finds or builds one binary.
func e2eBinary(dir, name, env, pkg string) (string, error) {
	if p := os.Getenv(env); p != "" {
		return p, nil
	}
	if e2ePrebuilt {
		p, err := filepath.Abs(filepath.Join("..", "..", "bin", name))
		if err != nil {
			return "", err
		}
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s: %w (run make build, or set $%s)", name, err, env)
		}
		return p, nil
	}
	bin := filepath.Join(dir, name)
	if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin, nil
}

func (e *e2e) write(path, content string) {
	e.t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// inNS runs a command in the namespace and returns its output.
func (e *e2e) inNS(args ...string) string {
	e.t.Helper()
	return netnstest.Exec(e.t, append([]string{"ip", "netns", "exec", e.ns}, args...)...)
}

// start runs lbd in the namespace and waits until lbctl reaches it and
// the first reconcile is done.
func (e *e2e) start() {
	e.t.Helper()
	log, err := os.OpenFile(e.logFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		e.t.Fatal(err)
	}
	e.proc = exec.Command("ip", "netns", "exec", e.ns, e.lbd, "-f", e.cfg, "--node", "box",
		"--socket", e.sock, "--state-dir", e.state)
	e.proc.Stdout, e.proc.Stderr = log, log
	if err := e.proc.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.exited = make(chan struct{})
	go func() {
		e.proc.Wait()
		log.Close()
		close(e.exited)
	}()
	// Readiness, not a timing assertion: poll until lbd answers or dies.
	for {
		select {
		case <-e.exited:
			e.t.Fatalf("lbd exited before serving its API:\n%s", e.log())
		default:
		}
		// Ready once the API answers and the first reconcile is done.
		if code, out, _ := e.run("-o", "json", "status"); code == exitOK {
			var st api.Status
			if json.Unmarshal([]byte(out), &st) == nil && st.Reconcile.Count > 0 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop ends lbd with SIGTERM and waits for it.
func (e *e2e) stop() {
	if e.proc == nil {
		return
	}
	e.proc.Process.Signal(syscall.SIGTERM)
	<-e.exited
	e.proc = nil
}

func (e *e2e) log() string {
	b, _ := os.ReadFile(e.logFile)
	return string(b)
}

// run runs lbctl against the socket and returns its exit code and output.
func (e *e2e) run(args ...string) (int, string, string) {
	return e.runCmd(exec.Command(e.lbctl, append([]string{"--socket", e.sock}, args...)...))
}

func (e *e2e) runCmd(cmd *exec.Cmd) (int, string, string) {
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			e.t.Fatalf("%v: %v", cmd.Args, err)
		}
		code = ee.ExitCode()
	}
	return code, out.String(), errb.String()
}

// ok runs lbctl, requires success and returns stdout.
func (e *e2e) ok(args ...string) string {
	e.t.Helper()
	code, out, errs := e.run(args...)
	if code != 0 {
		e.t.Fatalf("lbctl %v: exit %d\n%s%s\nlbd log:\n%s", args, code, out, errs, e.log())
	}
	return out
}

// jsonOut runs lbctl -o json and decodes its output.
func (e *e2e) jsonOut(v any, args ...string) {
	e.t.Helper()
	out := e.ok(append([]string{"-o", "json"}, args...)...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		e.t.Fatalf("lbctl %v: not JSON: %v\n%s", args, err, out)
	}
}

// kernel is the namespace's ipset and iptables state.
func (e *e2e) kernel() string {
	e.t.Helper()
	return e.inNS("ipset", "list") + e.inNS("iptables", "-S")
}

// setMembers returns the members of the ipset of tenant's allow-list.
func (e *e2e) setMembers(tenant string) []string {
	e.t.Helper()
	var set string
	for _, name := range strings.Fields(e.inNS("ipset", "list", "-n")) {
		if strings.Contains(name, "-"+tenant+"-") && strings.HasPrefix(name, "LBD4") {
			set = name
		}
	}
	if set == "" {
		e.t.Fatalf("no ipset for tenant %s:\n%s", tenant, e.inNS("ipset", "list", "-n"))
	}
	out := e.inNS("ipset", "list", set)
	_, members, _ := strings.Cut(out, "Members:\n")
	return strings.Fields(members)
}

func sameSet(got, want []string) bool {
	if len(got) != len(want) {
		return false
	}
	seen := map[string]bool{}
	for _, g := range got {
		seen[strings.TrimSuffix(g, "/32")] = true
	}
	for _, w := range want {
		if !seen[strings.TrimSuffix(w, "/32")] {
			return false
		}
	}
	return true
}

func TestE2EStatusAndTenants(t *testing.T) {
	e := newE2E(t)
	var st api.Status
	e.jsonOut(&st, "status")
	if st.Node != "box" || st.Role != "both" || len(st.Services) != 1 || st.Services[0].Tenant != "shop" {
		t.Fatalf("status = %+v", st)
	}
	var ts []api.Tenant
	e.jsonOut(&ts, "tenant", "list")
	if len(ts) != 1 || ts[0].Name != "shop" || ts[0].Port != 11211 || len(ts[0].Allow) != 1 || ts[0].Allow[0].String() != "10.0.1.0/24" {
		t.Fatalf("tenants = %+v", ts)
	}
	if m := e.setMembers("shop"); !sameSet(m, []string{"10.0.1.0/24"}) {
		t.Fatalf("ipset members = %v", m)
	}
	if rules := e.inNS("iptables", "-S"); !strings.Contains(rules, "--dport 11211") {
		t.Fatalf("no rule for the tenant's port:\n%s", rules)
	}
	var ks []api.KVSStats
	e.jsonOut(&ks, "kvs", "stats", "shop")
	if len(ks) != 1 || ks[0].Tenant != "shop" || ks[0].Node != "box" {
		t.Fatalf("kvs stats = %+v", ks)
	}
	if out := e.ok("status"); !strings.Contains(out, "10.0.0.100:11211 (tenant shop)") {
		t.Errorf("status table:\n%s", out)
	}
}

func TestE2EAllowChangesSurviveRestart(t *testing.T) {
	e := newE2E(t)
	steps := []struct {
		args []string
		want []string
	}{
		{[]string{"tenant", "allow", "add", "shop", "198.51.100.7"}, []string{"10.0.1.0/24", "198.51.100.7"}},
		{[]string{"tenant", "allow", "del", "shop", "10.0.1.0/24"}, []string{"198.51.100.7"}},
		{[]string{"tenant", "allow", "set", "shop", "192.0.2.0/24", "198.51.100.7"}, []string{"192.0.2.0/24", "198.51.100.7"}},
	}
	for _, s := range steps {
		var al api.AllowList
		e.jsonOut(&al, s.args...)
		if m := e.setMembers("shop"); !sameSet(m, s.want) {
			t.Fatalf("after %v: ipset members %v, want %v (lbctl said %v)", s.args, m, s.want, al.Allow)
		}
	}
	before := e.kernel()
	e.stop()
	e.start()
	var al api.AllowList
	e.jsonOut(&al, "tenant", "allow", "list", "shop")
	if len(al.Allow) != 2 {
		t.Fatalf("after restart lbctl shows %v", al.Allow)
	}
	if m := e.setMembers("shop"); !sameSet(m, []string{"192.0.2.0/24", "198.51.100.7"}) {
		t.Fatalf("after restart ipset members %v", m)
	}
	if after := e.kernel(); after != before {
		t.Errorf("kernel state changed across the restart:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

func TestE2EBadRequestsChangeNothing(t *testing.T) {
	e := newE2E(t)
	bad := filepath.Join(e.dir, "bad.yaml")
	e.write(bad, "tenants:\n  - name: shop\n    service: {vip: 10.0.0.100, port: 99999}\n")
	before := e.kernel()
	var tsBefore []api.Tenant
	e.jsonOut(&tsBefore, "tenant", "list")
	tests := []struct {
		args     []string
		wantCode int
		wantErr  string
	}{
		{[]string{"apply", "--yes", "-f", bad}, exitInvalid, "bad.yaml:3:"},
		{[]string{"diff", "-f", bad}, exitInvalid, "port 99999"},
		{[]string{"tenant", "allow", "add", "nobody", "10.0.0.1"}, exitFailed, "nobody"},
		{[]string{"tenant", "del", "nobody"}, exitFailed, "nobody"},
		{[]string{"tenant", "add", "--vip", "10.0.0.100", "--port", "11211", "shop"}, exitFailed, "shop"},
		{[]string{"vs", "add", "--real", "10.0.0.9", "-s", "fast", "10.0.0.100:80"}, exitFailed, "unknown scheduler"},
		{[]string{"rs", "weight", "tcp/10.0.0.100:1", "10.0.0.9", "3"}, exitFailed, "no service"},
		{[]string{"tenant", "allow", "set", "shop", "10.0.0.1/8"}, exitUsage, "host bits"},
		{[]string{"tenant", "allow", "add", "shop", "2001:db8::/32"}, exitFailed, "other address family"},
	}
	for _, tt := range tests {
		code, out, errs := e.run(tt.args...)
		if code != tt.wantCode || !strings.Contains(errs, tt.wantErr) {
			t.Errorf("lbctl %v: exit %d (want %d), stderr %q (want %q), stdout %q", tt.args, code, tt.wantCode, errs, tt.wantErr, out)
		}
	}
	var tsAfter []api.Tenant
	e.jsonOut(&tsAfter, "tenant", "list")
	if fmt.Sprint(tsAfter) != fmt.Sprint(tsBefore) {
		t.Errorf("tenants changed: %v -> %v", tsBefore, tsAfter)
	}
	if after := e.kernel(); after != before {
		t.Errorf("kernel state changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

func TestE2EApplyDiffValidate(t *testing.T) {
	e := newE2E(t)
	cfg, err := os.ReadFile(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	next := filepath.Join(e.dir, "next.yaml")
	e.write(next, strings.Replace(string(cfg), "daemon:", `  - name: cafe
    service: {vip: 10.0.0.100, port: 11212}
    allow: [203.0.113.0/24]
    kvs: {memory: 16MiB}
daemon:`, 1))
	e.ok("validate", "-f", next)
	e.ok("validate", "--remote", "-f", next)
	var d api.Diff
	e.jsonOut(&d, "diff", "-f", next)
	if len(d.Changes) == 0 || !strings.Contains(fmt.Sprint(d.Changes), "cafe") {
		t.Fatalf("diff = %+v", d)
	}
	if out := e.ok("apply", "--dry-run", "-f", next); !strings.Contains(out, "cafe") {
		t.Errorf("dry run output:\n%s", out)
	}
	if rules := e.inNS("iptables", "-S"); strings.Contains(rules, "11212") {
		t.Fatalf("dry run changed iptables:\n%s", rules)
	}
	if code, _, errs := e.run("apply", "-f", next); code != exitUsage || !strings.Contains(errs, "--yes") {
		t.Fatalf("apply without a terminal: exit %d, %s", code, errs)
	}
	e.ok("apply", "--yes", "-f", next)
	if m := e.setMembers("cafe"); !sameSet(m, []string{"203.0.113.0/24"}) {
		t.Fatalf("cafe's ipset = %v", m)
	}
	if rules := e.inNS("iptables", "-S"); !strings.Contains(rules, "--dport 11212") {
		t.Fatalf("no rule for cafe's port:\n%s", rules)
	}
	e.jsonOut(&d, "diff", "-f", next)
	if len(d.Changes) != 0 {
		t.Errorf("diff after apply = %+v", d)
	}
	e.ok("tenant", "del", "cafe")
	if rules := e.inNS("iptables", "-S"); strings.Contains(rules, "--dport 11212") {
		t.Errorf("cafe's rule left behind:\n%s", rules)
	}
}

func TestE2EAccessControl(t *testing.T) {
	e := newE2E(t)
	fi, err := os.Lstat(e.sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want 0600", fi.Mode().Perm())
	}
	// Somebody else than root cannot connect.
	code, _, errs := e.runCmd(exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
		e.lbctl, "--socket", e.sock, "tenant", "allow", "set", "shop"))
	if code != exitUnreachable || !strings.Contains(errs, "permission denied") {
		t.Errorf("unprivileged lbctl: exit %d, %s", code, errs)
	}
	// TCP needs the token.
	tcp := func(token string, args ...string) (int, string, string) {
		full := append([]string{"netns", "exec", e.ns, e.lbctl, "--server", "http://127.0.0.1:7480", "--token", token}, args...)
		return e.runCmd(exec.Command("ip", full...))
	}
	if code, _, errs := tcp("guess", "tenant", "allow", "set", "shop"); code != exitFailed || !strings.Contains(errs, "invalid bearer token") {
		t.Errorf("wrong token: exit %d, %s", code, errs)
	}
	if m := e.setMembers("shop"); !sameSet(m, []string{"10.0.1.0/24"}) {
		t.Errorf("refused callers changed the allow-list: %v", m)
	}
	if code, out, errs := tcp("e2e-secret", "-o", "json", "tenant", "list"); code != 0 || !strings.Contains(out, `"shop"`) {
		t.Errorf("right token: exit %d, %s%s", code, out, errs)
	}
}

func TestE2EEvents(t *testing.T) {
	e := newE2E(t)
	cmd := exec.Command(e.lbctl, "--socket", e.sock, "-o", "json", "events", "--recent")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() {
		t.Fatalf("no event: %v", sc.Err())
	}
	var ev struct {
		Kind, Message string
	}
	if err := json.Unmarshal(sc.Bytes(), &ev); err != nil || ev.Kind == "" {
		t.Fatalf("event %q: %v", sc.Text(), err)
	}
	// A change made now shows up in the live stream.
	e.ok("tenant", "allow", "add", "shop", "198.51.100.9")
	for sc.Scan() {
		if strings.Contains(sc.Text(), "runtime change") {
			return
		}
	}
	t.Fatalf("the allow change was not streamed: %v", sc.Err())
}

func TestE2EImportSeed(t *testing.T) {
	e := newE2E(t)
	src := filepath.Join("..", "..", "internal", "keepalived", "testdata", "seed000.conf")
	out := filepath.Join(e.dir, "seed.yaml")
	e.ok("import", "keepalived", "-o", out, src)
	e.ok("validate", "-f", out)
}
