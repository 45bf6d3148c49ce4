package manpage

import (
	"strings"
	"testing"
)

func TestHelp(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"usage block", "usage: lbd [flags]          run the daemon\n       lbd -t -f FILE     check\n\nflags:\n",
			".PP\n.nf\nusage: lbd [flags]          run the daemon\n       lbd \\-t \\-f FILE     check\n.fi\n.PP\n.PP\n\\fBflags:\\fR\n"},
		{"flag with value", "  -f file\n    \tconfiguration file (default \"/etc/lbd/lbd.yaml\")\n",
			".TP\n\\fB\\-f\\fR \\fIfile\\fR\nconfiguration file (default \"/etc/lbd/lbd.yaml\")\n"},
		{"bool flag on one line", "  -t\tcheck the configuration file and exit\n",
			".TP\n\\fB\\-t\\fR\ncheck the configuration file and exit\n"},
		{"list entry", "  tenant allow add   allow more sources\n",
			".TP\n\\fBtenant allow add\\fR\nallow more sources\n"},
		{"text escaped, lines kept", ".hidden request\n'another\nback\\slash\n",
			"\\&.hidden request\n.br\n\\&'another\n.br\nback\\eslash\n"},
		{"two-column global flag", "  -o FORMAT      table (default), json or yaml\n",
			".TP\n\\fB\\-o FORMAT\\fR\ntable (default), json or yaml\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Help(tt.in); got != tt.want {
				t.Fatalf("Help(%q)\n got %q\nwant %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestRoff(t *testing.T) {
	p := Page{Name: "lbd", Section: "8", Summary: "load-balancer daemon", Date: "2026-12-05", Source: "lbd 1.0", Manual: "System Administration",
		Sections: []Section{{Title: "Synopsis", Help: "usage: lbd"}, {Title: "Options", Help: "x", Subsections: []Section{{Title: "kvs", Help: "y"}}}}}
	got := p.Roff()
	for _, want := range []string{
		`.TH "LBD" "8" "2026\-12\-05" "lbd 1.0" "System Administration"` + "\n",
		".SH NAME\nlbd \\- load\\-balancer daemon\n",
		".SH \"SYNOPSIS\"\n.PP\n.nf\nusage: lbd\n.fi\n",
		".SS \"kvs\"\ny\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("page lacks %q:\n%s", want, got)
		}
	}
}

// macros are the only requests Help may emit.
var macros = map[string]bool{".PP": true, ".nf": true, ".fi": true, ".TP": true, ".br": true}

func FuzzHelp(f *testing.F) {
	f.Add("usage: lbd [flags]\n       lbd -t\n\nflags:\n  -f file\n    \tconfiguration\n  -t\tcheck\n")
	f.Add("commands:\n  status             show\n  vs add  add\n.x\n'y\n\\z")
	f.Fuzz(func(t *testing.T, s string) {
		for _, l := range strings.Split(Help(s), "\n") {
			if l == "" {
				continue
			}
			if l[0] == '.' || l[0] == '\'' {
				name, _, _ := strings.Cut(l, " ")
				if !macros[name] {
					t.Fatalf("help text injected request %q from %q", l, s)
				}
			}
		}
	})
}
