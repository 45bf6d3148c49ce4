package keepalived

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// flatten renders a tree as one line per statement, indented by depth,
// with "{" marking blocks and the line number first.
func flatten(n *Node, depth int, out *[]string) {
	for _, c := range n.Children {
		s := strings.Repeat("  ", depth) + c.String()
		if c.Block {
			s += " {"
		}
		*out = append(*out, fmt.Sprintf("%02d: %s", c.Pos.Line, s))
		flatten(c, depth+1, out)
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{
			name: "blocks comments and args",
			src:  "! comment\nvirtual_server 10.0.0.1 80 { # trailing\n  lb_algo rr ! also a comment\n  real_server 10.0.1.1 80 {\n    weight 2\n  }\n}\n",
			want: []string{"02: virtual_server 10.0.0.1 80 {", "03:   lb_algo rr", "04:   real_server 10.0.1.1 80 {", "05:     weight 2"},
		},
		{
			name: "quoted strings keep spaces and join text",
			src:  `notify_master "/bin/notify.sh master" x` + "\n" + `misc_path ab"c d"e 'f # g'` + "\n",
			want: []string{"01: notify_master /bin/notify.sh master x", "02: misc_path abc de f # g"},
		},
		{
			name: "escapes in quotes",
			src:  `path "a\"b\\c"` + "\n",
			want: []string{`01: path a"b\c`},
		},
		{
			name: "brace on the next line",
			src:  "vrrp_instance VI_1\n{\n  interface eth0\n}\n",
			want: []string{"01: vrrp_instance VI_1 {", "03:   interface eth0"},
		},
		{
			name: "one-line block",
			src:  "virtual_ipaddress { 10.0.0.1 10.0.0.2 }\nurl { path / }\n",
			want: []string{"01: virtual_ipaddress {", "01:   10.0.0.1 10.0.0.2", "02: url {", "02:   path /"},
		},
		{
			name: "line continuation",
			src:  "notify_master /bin/x \\\n  arg\nweight 1\n",
			want: []string{"01: notify_master /bin/x arg", "03: weight 1"},
		},
		{
			name: "crlf line ends",
			src:  "delay_loop 10\r\nlb_algo rr\r\n",
			want: []string{"01: delay_loop 10", "02: lb_algo rr"},
		},
		{
			name: "conditional and parameter lines are dropped",
			src:  "@main router_id a\n$X=1\nweight 1\n",
			want: []string{"03: weight 1"},
		},
		{
			name: "empty",
			src:  "",
			want: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root, _, err := Parse([]byte(tt.src), "k.conf", nil)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			flatten(root, 0, &got)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"unclosed brace", "virtual_server 10.0.0.1 80 {\n  real_server 10.0.1.1 80 {\n  }\n", `keepalived: k.conf:1: unclosed '{' of "virtual_server"`},
		{"stray close", "weight 1\n}\n", "keepalived: k.conf:2: unexpected '}'"},
		{"brace without keyword", "{\n}\n", "keepalived: k.conf:1: '{' without a keyword"},
		{"unterminated quote", "weight 1\nnotify_master \"/bin/x\n", "keepalived: k.conf:2: unterminated quoted string"},
		{"too deep", strings.Repeat("a {\n", MaxNesting+2), "blocks nested more than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := Parse([]byte(tt.src), "k.conf", nil)
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("err = %v, want a *SyntaxError", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

// TestUnclosedFile checks the testdata file with a missing brace: the
// error names the file and the line of the block left open.
func TestUnclosedFile(t *testing.T) {
	_, err := ConvertFile("testdata/unclosed.conf", Options{})
	var se *SyntaxError
	if !errors.As(err, &se) || se.Pos != (Pos{"testdata/unclosed.conf", 1}) {
		t.Fatalf("err = %v, want a *SyntaxError at testdata/unclosed.conf:1", err)
	}
}

func TestExpandBraces(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"a.conf", []string{"a.conf"}},
		{"conf.d/{a,b}.conf", []string{"conf.d/a.conf", "conf.d/b.conf"}},
		{"{x,y{1,2}}z", []string{"xz", "y1z", "y2z"}},
		{"open{a,b", []string{"open{a,b"}},
	}
	for _, tt := range tests {
		if got := expandBraces(tt.in, 64); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("expandBraces(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestIncludes(t *testing.T) {
	res, err := ConvertFile("testdata/include/main.conf", Options{})
	if err != nil {
		t.Fatal(err)
	}
	svcs := res.Config.Services()
	if len(svcs) != 1 || len(svcs[0].Reals) != 2 || svcs[0].Health.ConnectTimeout.Seconds() != 2 {
		t.Fatalf("services = %+v", svcs)
	}
	if v := res.Config.VRRP; v == nil || v.VirtualRouterID != 7 {
		t.Errorf("vrrp = %+v, want the included vrrp_instance", v)
	}
	wantWarnings(t, res.Warnings,
		"testdata/include/conf.d/loop.conf:1: include testdata/include/main.conf: include loop, not followed",
		"testdata/include/main.conf:3: include testdata/include/missing/none.conf: no file matches",
	)
}

// wantWarnings checks that every want is a prefix of some warning.
func wantWarnings(t *testing.T, got []Warning, want ...string) {
	t.Helper()
	for _, w := range want {
		found := false
		for _, g := range got {
			found = found || strings.HasPrefix(g.String(), w)
		}
		if !found {
			t.Errorf("no warning %q in:\n%s", w, joinWarnings(got))
		}
	}
}

func joinWarnings(ws []Warning) string {
	var b strings.Builder
	for _, w := range ws {
		b.WriteString("  " + w.String() + "\n")
	}
	return b.String()
}
