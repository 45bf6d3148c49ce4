package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// router is one VRRP process (vrrpd or keepalived) in a namespace.
type router struct {
	cmd     *exec.Cmd
	done    chan struct{}
	logf    string
	killPid func() int // the process that speaks VRRP
}

func startProc(ctx context.Context, ns, logf string, args ...string) (*router, error) {
	f, err := os.Create(logf)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns}, args...)...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", args[0], err)
	}
	r := &router{cmd: cmd, done: make(chan struct{}), logf: logf}
	r.killPid = func() int { return cmd.Process.Pid }
	go func() { cmd.Wait(); f.Close(); close(r.done) }()
	return r, nil
}

func startVrrpd(ctx context.Context, o options, l *lan, dir, host string, prio int, peer string) (*router, error) {
	args := []string{o.vrrpd, "-name", host, "-iface", "eth0", "-vrid", "51", "-prio", strconv.Itoa(prio),
		"-int", o.interval.String(), "-vip", vip, "-garp-delay", "-1s"}
	if peer != "" {
		args = append(args, "-peers", peer)
	}
	return startProc(ctx, l.ns(host), filepath.Join(dir, host+".log"), args...)
}

func startKeepalived(ctx context.Context, o options, l *lan, dir, host string, prio int, peer string) (*router, error) {
	uni := ""
	if peer != "" {
		uni = fmt.Sprintf("unicast_src_ip %s\n  unicast_peer {\n    %s\n  }", l.addr(host), peer)
	}
	conf := fmt.Sprintf(`global_defs {
  router_id %s
  vrrp_version 3
}
vrrp_instance VI {
  state BACKUP
  interface eth0
  virtual_router_id 51
  priority %d
  advert_int %g
  garp_master_delay 0
  %s
  virtual_ipaddress {
    %s/32
  }
}
`, host, prio, o.interval.Seconds(), uni, vip)
	cf := filepath.Join(dir, host+".conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	vrrpPid := filepath.Join(dir, host+".vrrp.pid")
	r, err := startProc(ctx, l.ns(host), filepath.Join(dir, host+".log"), o.keepalived, "-f", cf,
		"-p", filepath.Join(dir, host+".pid"), "-r", vrrpPid, "-c", filepath.Join(dir, host+".chk.pid"),
		"--dont-fork", "--log-console", "--vrrp", "--dont-respawn")
	if err != nil {
		return nil, err
	}
	child := func() int {
		b, err := os.ReadFile(vrrpPid)
		if err != nil {
			return 0
		}
		n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		return n
	}
	if err := waitFor(10*time.Second, func() bool { return child() > 0 }); err != nil {
		r.kill()
		return nil, fmt.Errorf("keepalived VRRP child did not start: %w", err)
	}
	r.killPid = child
	return r, nil
}

// kill9 SIGKILLs the VRRP process and returns the time just before.
func (r *router) kill9() (time.Time, error) {
	pid := r.killPid()
	t0 := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return t0, fmt.Errorf("kill -9 %d: %w", pid, err)
	}
	return t0, nil
}

// term asks for a clean stop (SIGTERM to the top process, as an init
// system would) and returns the time just before.
func (r *router) term() (time.Time, error) {
	t0 := time.Now()
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return t0, fmt.Errorf("SIGTERM: %w", err)
	}
	return t0, nil
}

// kill ends everything and waits.
func (r *router) kill() {
	if pid := r.killPid(); pid > 0 {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	select {
	case <-r.done:
		return
	case <-time.After(3 * time.Second):
	}
	r.cmd.Process.Kill()
	<-r.done
}

func (r *router) logText() string {
	b, _ := os.ReadFile(r.logf)
	return string(b)
}
