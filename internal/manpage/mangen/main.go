// Command mangen writes lbd(8) and lbctl(8) from the help the two binaries
// print, so that the manual pages cannot drift from the commands. It runs
// them (-lbd, -lbctl), so build them first; scripts/build-deb.sh does.
//
//	go run ./internal/manpage/mangen -lbd bin/lbd -lbctl bin/lbctl -out DIR
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/lbd-project/lbd/internal/manpage"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "mangen:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		lbd     = flag.String("lbd", "bin/lbd", "lbd `binary` to read the help of")
		lbctl   = flag.String("lbctl", "bin/lbctl", "lbctl `binary` to read the help of")
		out     = flag.String("out", ".", "`directory` to write lbd.8 and lbctl.8 to")
		date    = flag.String("date", "", "date on the pages (YYYY-MM-DD)")
		version = flag.String("version", "", "version on the pages")
	)
	flag.Parse()
	source := strings.TrimSpace("lbd " + *version)
	pages := map[string]func() (manpage.Page, error){
		"lbd.8":   func() (manpage.Page, error) { return lbdPage(*lbd) },
		"lbctl.8": func() (manpage.Page, error) { return lbctlPage(*lbctl) },
	}
	for file, build := range pages {
		p, err := build()
		if err != nil {
			return err
		}
		p.Date, p.Source, p.Manual = *date, source, "System Administration"
		if err := os.WriteFile(filepath.Join(*out, file), []byte(p.Roff()), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// help runs bin with args and returns what it printed (help goes to
// stderr); exit status 0 or 2 is expected from a help request.
func help(bin string, args ...string) (string, error) {
	var b bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &b, &b
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 2 {
		err = nil
	}
	if err != nil {
		return "", fmt.Errorf("%s %s: %w\n%s", bin, strings.Join(args, " "), err, b.String())
	}
	return b.String(), nil
}

// cut splits help text at its first line equal to marker.
func cut(text, marker string) (before, after string) {
	i := strings.Index(text, "\n"+marker+"\n")
	if i < 0 {
		return text, ""
	}
	return text[:i+1], text[i+len(marker)+2:]
}

func lbdPage(bin string) (manpage.Page, error) {
	main, err := help(bin, "-h")
	if err != nil {
		return manpage.Page{}, err
	}
	kvs, err := help(bin, "kvs", "-h")
	if err != nil {
		return manpage.Page{}, err
	}
	synopsis, options := cut(main, "flags:")
	kvs = strings.TrimPrefix(kvs, "Usage of lbd kvs:\n")
	return manpage.Page{
		Name: "lbd", Section: "8",
		Summary: "load-balancer control plane: IPVS, VRRP failover, tenant allow-lists and a memcached-compatible store",
		Sections: []manpage.Section{
			{Title: "Synopsis", Help: synopsis},
			{Title: "Description", Help: `lbd turns one YAML file, the same on every host of a cluster, into kernel IPVS services, health checks, VRRPv3 failover of the VIPs, tenant allow-lists and the bundled memcached-compatible store, according to this node's role (director, storage or both).
It only touches the kernel objects it created, and a reload applies only the difference.

lbd kvs runs one standalone store instance.`},
			{Title: "Options", Help: options},
			{Title: "Options of lbd kvs", Help: kvs},
			{Title: "Signals", Help: `  SIGHUP    re-read the file and apply only the difference; an invalid file is refused and nothing changes
  SIGTERM   stop: IPVS, the allow-lists and the VIPs on lo stay (a restart adopts them); a director hands its VRRP VIPs over at once`},
			{Title: "Files", Help: `  /etc/lbd/lbd.yaml      the cluster file
  /etc/default/lbd       LBD_OPTS, extra options of the systemd unit
  /var/lib/lbd           state: what lbd created, runtime changes, durable stores
  /run/lbd/lbd.sock      the control API (daemon.socket_group may use it)`},
			{Title: "See also", Help: "lbctl(8), keepalived(8), ipvsadm(8), /usr/share/doc/lbd/README.md"},
		},
	}, nil
}

// global flags every lbctl command repeats in its own help; the page lists
// them once.
var globalFlags = regexp.MustCompile(`^  -(cacert|o|server|socket|token) `)

// commandRe is a line of the "commands:" list of lbctl help.
var commandRe = regexp.MustCompile(`^  (\S(?:.*?\S)?) {2,}(\S.*)$`)

func lbctlPage(bin string) (manpage.Page, error) {
	main, err := help(bin, "help")
	if err != nil {
		return manpage.Page{}, err
	}
	intro, rest := cut(main, "commands:")
	list, globals := cut(rest, "")
	p := manpage.Page{Name: "lbctl", Section: "8", Summary: "control lbd, the load-balancer daemon"}
	p.Sections = append(p.Sections,
		manpage.Section{Title: "Synopsis", Help: intro},
		manpage.Section{Title: "Global flags and exit codes", Help: globals},
	)
	cmds := manpage.Section{Title: "Commands"}
	for _, l := range strings.Split(list, "\n") {
		m := commandRe.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		name, what := m[1], m[2]
		if name == "help" {
			continue
		}
		h, err := help(bin, append(strings.Fields(name), "-h")...)
		if err != nil {
			return manpage.Page{}, err
		}
		var kept []string
		skip := false
		for _, hl := range strings.Split(h, "\n") {
			switch {
			case globalFlags.MatchString(hl):
				skip = true
				continue
			case skip && strings.HasPrefix(hl, "    \t"):
				continue
			}
			skip = false
			kept = append(kept, hl)
		}
		body := strings.Join(kept, "\n")
		if strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(body[strings.LastIndex(body, "\n\n")+1:]), "flags:")) == "" {
			body = strings.TrimSuffix(strings.TrimRight(body, "\n"), "flags:")
		}
		cmds.Subsections = append(cmds.Subsections, manpage.Section{Title: name, Help: what + "\n\n" + body})
	}
	p.Sections = append(p.Sections, cmds,
		manpage.Section{Title: "Environment", Help: `  LBD_SOCKET   lbd's unix socket, as --socket
  LBD_SERVER   lbd's TCP API, as --server
  LBD_TOKEN    bearer token, as --token`},
		manpage.Section{Title: "Files", Help: `  /run/lbd/lbd.sock   lbd's control API: root, or members of daemon.socket_group (the package's lbd group)`},
		manpage.Section{Title: "See also", Help: "lbd(8), /usr/share/doc/lbd/README.md"},
	)
	return p, nil
}
