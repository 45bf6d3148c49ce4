//go:build integration

// Package packaging holds what `make deb` puts in the Debian package (the
// systemd unit, the sample configuration, the maintainer scripts) and the
// test that builds the package and installs it.
package packaging

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cmd runs a command and returns its combined output and error.
func cmd(env []string, name string, args ...string) (string, error) {
	c := exec.Command(name, args...)
	c.Env = append(os.Environ(), env...)
	out, err := c.CombinedOutput()
	return string(out), err
}

// must runs a command that must succeed.
func must(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := cmd(nil, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

func requireTools(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: dpkg --root, chroot-less maintainer scripts, namespaces")
	}
	for _, tool := range []string{"dpkg-deb", "dpkg", "dpkg-query", "man", "systemd-analyze", "groupadd", "unshare", "setpriv", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("needs %s (scripts/deps.sh installs it): %v", tool, err)
		}
	}
}

// newRoot makes a throwaway root that looks like a fresh Debian machine to
// dpkg: a copy of this machine's dpkg database (so the package's
// dependencies are checked against real installed packages), its user and
// group files, and its systemd units (for systemd-analyze). Trigger
// interests are dropped: other packages' triggers would run on the host.
func newRoot(t *testing.T, dir string) string {
	t.Helper()
	r := filepath.Join(dir, "root")
	for _, d := range []string{"var/lib", "etc", "usr/lib/systemd"} {
		if err := os.MkdirAll(filepath.Join(r, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	must(t, "cp", "-a", "/var/lib/dpkg", filepath.Join(r, "var/lib/dpkg"))
	trig := filepath.Join(r, "var/lib/dpkg/triggers")
	ents, _ := os.ReadDir(trig)
	for _, e := range ents {
		if e.Name() != "Lock" {
			os.Remove(filepath.Join(trig, e.Name()))
		}
	}
	os.WriteFile(filepath.Join(trig, "File"), nil, 0o644)
	os.WriteFile(filepath.Join(trig, "Unincorp"), nil, 0o644)
	for _, f := range []string{"lock", "lock-frontend"} {
		os.Remove(filepath.Join(r, "var/lib/dpkg", f))
	}
	for _, f := range []string{"group", "gshadow", "passwd", "shadow", "login.defs"} {
		if _, err := os.Stat("/etc/" + f); err == nil {
			must(t, "cp", "-a", "/etc/"+f, filepath.Join(r, "etc", f))
		}
	}
	must(t, "cp", "-a", "/usr/lib/systemd/system", filepath.Join(r, "usr/lib/systemd/system"))
	return r
}

// dpkg runs dpkg on the throwaway root, maintainer scripts unchrooted with
// DPKG_ROOT set (which the scripts honour).
func dpkg(t *testing.T, root string, args ...string) string {
	t.Helper()
	return must(t, "dpkg", append([]string{"--root=" + root, "--force-script-chrootless"}, args...)...)
}

// groupLine returns root's /etc/group lines for lbd.
func groupLines(t *testing.T, root string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "etc/group"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "lbd:") {
			out = append(out, l)
		}
	}
	return out
}

func exists(p string) bool { _, err := os.Lstat(p); return err == nil }

func TestDebPackage(t *testing.T) {
	requireTools(t)
	dir := t.TempDir()
	// nobody (the lbctl user below) must reach the root's files.
	os.Chmod(filepath.Dir(dir), 0o755)
	os.Chmod(dir, 0o755)

	// Build.
	out, err := cmd(nil, "../scripts/build-deb.sh", filepath.Join(dir, "out"))
	if err != nil {
		t.Fatalf("build-deb.sh: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	deb := lines[len(lines)-1]

	// What is in it.
	contents := must(t, "dpkg-deb", "-c", deb)
	for _, p := range []string{
		"./usr/sbin/lbd", "./usr/sbin/lbctl", "./usr/lib/systemd/system/lbd.service",
		"./etc/lbd/lbd.yaml", "./etc/default/lbd", "./var/lib/lbd/",
		"./usr/share/man/man8/lbd.8.gz", "./usr/share/man/man8/lbctl.8.gz",
		"./usr/share/bash-completion/completions/lbctl", "./usr/share/zsh/vendor-completions/_lbctl",
		"./usr/share/doc/lbd/README.md",
	} {
		if !strings.Contains(contents, " "+p+"\n") {
			t.Errorf("package lacks %s; contents:\n%s", p, contents)
		}
	}
	if got := must(t, "dpkg-deb", "-I", deb, "conffiles"); got != "/etc/lbd/lbd.yaml\n/etc/default/lbd\n" {
		t.Errorf("conffiles = %q", got)
	}

	// Install into a throwaway root with this machine's package database.
	root := newRoot(t, dir)
	if out := dpkg(t, root, "-i", deb); !strings.Contains(out, "systemctl enable --now lbd") {
		t.Errorf("postinst did not say how to start lbd:\n%s", out)
	}
	st := must(t, "dpkg-query", "--admindir="+filepath.Join(root, "var/lib/dpkg"), "-W", "-f", "${Status}|${Conffiles}", "lbd")
	if !strings.HasPrefix(st, "install ok installed|") || !strings.Contains(st, "/etc/lbd/lbd.yaml") || !strings.Contains(st, "/etc/default/lbd") {
		t.Fatalf("dpkg-query: %q", st)
	}
	grp := groupLines(t, root)
	if len(grp) != 1 {
		t.Fatalf("lbd group lines after install: %q", grp)
	}
	var gid int
	if _, err := fmt.Sscanf(strings.Split(grp[0], ":")[2], "%d", &gid); err != nil || gid <= 0 {
		t.Fatalf("lbd group %q", grp[0])
	}
	if fi, err := os.Stat(filepath.Join(root, "var/lib/lbd")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("/var/lib/lbd: %v %v", fi, err)
	}

	// The unit as systemd sees it on that machine: no error, no warning,
	// and its Documentation= man pages are there (man searches the root's).
	if out, err := cmd([]string{"MANPATH=" + filepath.Join(root, "usr/share/man")}, "systemd-analyze", "verify", "--root="+root, "lbd.service"); err != nil || out != "" {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}

	// The man pages render without a warning.
	manEnv := []string{"LC_ALL=C", "MANWIDTH=100", "MANPAGER=cat", "PAGER=cat"}
	for page, want := range map[string][]string{
		"lbd.8.gz":   {"SYNOPSIS", "-state-dir directory", "OPTIONS OF LBD KVS", "SIGHUP"},
		"lbctl.8.gz": {"SYNOPSIS", "tenant allow add", "-o FORMAT", "LBD_SOCKET"},
	} {
		c := exec.Command("man", "--warnings", "-l", filepath.Join(root, "usr/share/man/man8", page))
		c.Env = append(os.Environ(), manEnv...)
		var stdout, stderr bytes.Buffer
		c.Stdout, c.Stderr = &stdout, &stderr
		if err := c.Run(); err != nil || stderr.Len() > 0 {
			t.Errorf("man -l %s: %v\n%s", page, err, stderr.String())
		}
		for _, w := range want {
			if !strings.Contains(stdout.String(), w) {
				t.Errorf("man %s lacks %q:\n%s", page, w, stdout.String())
			}
		}
	}

	// bash completion completes lbctl's verbs.
	compl := filepath.Join(root, "usr/share/bash-completion/completions/lbctl")
	if got := strings.TrimSpace(must(t, "bash", "-c", ". "+compl+"; COMP_WORDS=(lbctl tenant al); COMP_CWORD=2; _lbctl; echo ${COMPREPLY[@]}")); got != "allow" {
		t.Errorf("bash completion of 'lbctl tenant al' = %q, want allow", got)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "usr/share/zsh/vendor-completions/_lbctl")); !bytes.HasPrefix(b, []byte("#compdef lbctl\n")) {
		t.Errorf("zsh completion starts %q", b[:min(len(b), 20)])
	}

	// lbd -t on the installed sample, with the unit's options.
	opts := strings.Fields(strings.TrimSpace(must(t, "sh", "-c", ". "+filepath.Join(root, "etc/default/lbd")+`; echo "$LBD_OPTS"`)))
	lbd := filepath.Join(root, "usr/sbin/lbd")
	conf := filepath.Join(root, "etc/lbd/lbd.yaml")
	if out := must(t, lbd, append([]string{"-t", "-f", conf}, opts...)...); !strings.Contains(out, "configuration OK") {
		t.Errorf("lbd -t: %s", out)
	}

	runNode(t, dir, root, gid, opts)

	// Upgrade (the same version again runs the upgrade paths of the
	// scripts): still one group, the local change to a conffile kept.
	f, err := os.OpenFile(conf, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(f, "# local change")
	f.Close()
	dpkg(t, root, "--force-confold", "-i", deb)
	if g := groupLines(t, root); len(g) != 1 || g[0] != grp[0] {
		t.Errorf("lbd group after upgrade: %q, was %q", g, grp[0])
	}
	if b, _ := os.ReadFile(conf); !bytes.Contains(b, []byte("# local change")) {
		t.Error("upgrade lost the local change to /etc/lbd/lbd.yaml")
	}

	// A tenant's durable store, then remove: binaries go, configuration and
	// state stay.
	store := filepath.Join(root, "var/lib/lbd/kvs/user1")
	if err := os.MkdirAll(store, 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(store, "000001.log"), []byte("data"), 0o600)
	dpkg(t, root, "-r", "lbd")
	if exists(lbd) || !exists(conf) || !exists(filepath.Join(store, "000001.log")) {
		t.Errorf("after remove: lbd %v, conffile %v, store %v", exists(lbd), exists(conf), exists(store))
	}
	// Purge: the configuration goes, the durable store stays (with a
	// word), and so does the group.
	out = dpkg(t, root, "--purge", "lbd")
	if exists(conf) || exists(filepath.Join(root, "etc/default/lbd")) || exists(filepath.Join(root, "etc/lbd")) {
		t.Error("purge left the configuration")
	}
	if !exists(filepath.Join(store, "000001.log")) || !strings.Contains(out, "kept /var/lib/lbd") {
		t.Errorf("purge did not keep the durable store, or said nothing:\n%s", out)
	}
	if len(groupLines(t, root)) != 1 {
		t.Error("purge removed the lbd group")
	}
	// The scripts are idempotent: a second purge, a second configure.
	for _, run := range [][]string{{"postrm", "purge"}, {"postinst", "configure"}, {"postinst", "configure"}} {
		if run[0] == "postinst" {
			os.MkdirAll(filepath.Join(root, "var/lib/lbd"), 0o755)
		}
		if out, err := cmd([]string{"DPKG_ROOT=" + root}, "sh", append([]string{"deb/" + run[0]}, run[1:]...)...); err != nil {
			t.Errorf("%s %s again: %v\n%s", run[0], run[1], err, out)
		}
	}
	if g := groupLines(t, root); len(g) != 1 {
		t.Errorf("lbd group after configuring twice more: %q", g)
	}
	if st, _ := cmd(nil, "dpkg-query", "--admindir="+filepath.Join(root, "var/lib/dpkg"), "-W", "-f", "${Status}", "lbd"); strings.Contains(st, "installed") {
		t.Errorf("after purge: %q", st)
	}
}

// runNode starts the installed lbd as the unit's ExecStart does, in its own
// network and mount namespaces where /etc/group is the root's (with the
// package's lbd group), /run is a fresh directory (systemd's
// RuntimeDirectory) and /var/lib is the root's. Then lbctl, run as nobody
// with only the lbd group, asks it for its status over the default socket,
// and nobody without the group is refused.
func runNode(t *testing.T, dir, root string, gid int, opts []string) {
	t.Helper()
	unit, err := os.ReadFile(filepath.Join(root, "usr/lib/systemd/system/lbd.service"))
	if err != nil {
		t.Fatal(err)
	}
	var argv []string
	sc := bufio.NewScanner(bytes.NewReader(unit))
	for sc.Scan() {
		if l, ok := strings.CutPrefix(sc.Text(), "ExecStart="); ok {
			for _, f := range strings.Fields(l) {
				switch {
				case f == "$LBD_OPTS":
					argv = append(argv, opts...)
				case strings.HasPrefix(f, "/"):
					argv = append(argv, filepath.Join(root, f)) // the installed file
				default:
					argv = append(argv, f)
				}
			}
		}
	}
	if len(argv) == 0 {
		t.Fatal("no ExecStart in the unit")
	}
	run := filepath.Join(dir, "run")
	if err := os.MkdirAll(run, 0o755); err != nil {
		t.Fatal(err)
	}
	script := `set -e
mount --make-rprivate /
mount --bind "$RUN" /run
mkdir -p -m 0755 /run/lbd
mount --bind "$ROOT/etc/group" /etc/group
mount --bind "$ROOT/var/lib" /var/lib
exec "$@"`
	c := exec.Command("unshare", append([]string{"--mount", "--net", "sh", "-c", script, "sh"}, argv...)...)
	c.Env = append(os.Environ(), "RUN="+run, "ROOT="+root)
	var log bytes.Buffer
	c.Stdout, c.Stderr = &log, &log
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	stopped := false
	defer func() {
		if !stopped {
			c.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("lbd's log:\n%s", log.String())
		}
	}()

	sock := filepath.Join(run, "lbd/lbd.sock")
	lbctl := filepath.Join(root, "usr/sbin/lbctl")
	asNobody := func(groups ...string) (string, error) {
		args := []string{"--reuid=65534", "--regid=65534"}
		if len(groups) == 0 {
			args = append(args, "--clear-groups")
		} else {
			args = append(args, "--groups="+strings.Join(groups, ","))
		}
		return cmd(nil, "setpriv", append(args, lbctl, "--socket", sock, "status")...)
	}
	deadline := time.Now().Add(60 * time.Second)
	var status string
	for {
		status, err = asNobody(fmt.Sprint(gid))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lbctl status as a member of lbd never answered: %v\n%s", err, status)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(status, "storage") {
		t.Errorf("lbctl status: %s", status)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(sock, &st); err != nil || int(st.Gid) != gid || st.Mode&0o777 != 0o660 {
		t.Errorf("socket gid %d mode %o, want gid %d mode 660 (%v)", st.Gid, st.Mode&0o777, gid, err)
	}
	out, err := asNobody()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Errorf("lbctl as nobody outside the lbd group: %v (want exit 3)\n%s", err, out)
	}

	c.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		stopped = true
		if err != nil {
			t.Errorf("lbd exited with %v after SIGTERM", err)
		}
	case <-time.After(60 * time.Second):
		t.Error("lbd did not stop on SIGTERM")
	}
}
