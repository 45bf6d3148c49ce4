package main

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
)

const vip = "10.98.0.100"

// lan is a bridge namespace plus hosts a (Master), b (Backup) and obs
// (observer), each with eth0 into the bridge.
type lan struct {
	prefix string
	made   []string
}

func newLAN(prefix string) (*lan, error) {
	l := &lan{prefix: prefix}
	fail := func(err error) (*lan, error) { l.close(); return nil, err }
	br := l.ns("br")
	for _, cmd := range [][]string{
		{"ip", "netns", "add", br},
		{"ip", "-n", br, "link", "add", "br0", "type", "bridge"},
		{"ip", "-n", br, "link", "set", "br0", "up"},
	} {
		if _, err := runCmd(cmd...); err != nil {
			return fail(err)
		}
		if cmd[1] == "netns" {
			l.made = append(l.made, br)
		}
	}
	for n, h := range []string{"a", "b", "obs"} {
		ns := l.ns(h)
		if _, err := runCmd("ip", "netns", "add", ns); err != nil {
			return fail(err)
		}
		l.made = append(l.made, ns)
		for _, cmd := range [][]string{
			{"ip", "-n", br, "link", "add", "p" + h, "type", "veth", "peer", "name", "eth0", "netns", ns},
			{"ip", "-n", br, "link", "set", "p" + h, "master", "br0", "up"},
			{"ip", "-n", ns, "link", "set", "lo", "up"},
			{"ip", "-n", ns, "link", "set", "eth0", "up"},
			{"ip", "-n", ns, "addr", "add", fmt.Sprintf("10.98.0.%d/24", n+1), "dev", "eth0"},
		} {
			if _, err := runCmd(cmd...); err != nil {
				return fail(err)
			}
		}
	}
	return l, nil
}

func (l *lan) ns(h string) string { return l.prefix + "-" + h }

func (l *lan) addr(h string) string {
	return map[string]string{"a": "10.98.0.1", "b": "10.98.0.2"}[h]
}

func (l *lan) close() {
	for _, ns := range l.made {
		exec.Command("ip", "netns", "del", ns).Run()
	}
}

func (l *lan) hasVIP(h string) bool {
	out, err := exec.Command("ip", "-n", l.ns(h), "-4", "-o", "addr", "show", "dev", "eth0").CombinedOutput()
	return err == nil && bytes.Contains(out, []byte(" "+vip+"/"))
}

// clearVIP removes a VIP a killed router left behind.
func (l *lan) clearVIP() {
	for _, h := range []string{"a", "b"} {
		exec.Command("ip", "-n", l.ns(h), "addr", "del", vip+"/32", "dev", "eth0").Run()
	}
}

func (l *lan) mac(h string) string {
	out, _ := exec.Command("ip", "-n", l.ns(h), "-br", "link", "show", "dev", "eth0").CombinedOutput()
	f := strings.Fields(string(out))
	if len(f) < 3 {
		return ""
	}
	return f[2]
}
