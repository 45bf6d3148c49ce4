package keepalived

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// mapFS serves includes from memory, so fuzzing can follow them without
// touching the disk.
type mapFS map[string][]byte

func (m mapFS) ReadFile(name string) ([]byte, error) {
	if b, ok := m[name]; ok {
		return b, nil
	}
	return nil, os.ErrNotExist
}

func (m mapFS) Glob(pattern string) ([]string, error) {
	var out []string
	for name := range m {
		if ok, err := filepath.Match(pattern, name); err != nil {
			return nil, err
		} else if ok {
			out = append(out, name)
		}
	}
	return out, nil
}

// FuzzParse feeds arbitrary bytes to the parser and the converter: neither
// may panic, an error must be a *SyntaxError or say the result is not valid
// for lbd, and a converted file must be one lbd accepts.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.conf")
	for _, s := range seeds {
		if b, err := os.ReadFile(s); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("include a.conf\n"))
	f.Add([]byte("virtual_server_group G {\n 10.0.0.1-200 80\n}\nvirtual_server group G {\n real_server 10.0.0.9 80 {\n }\n}\n"))
	f.Add([]byte("vrrp_instance V {\n interface e\n virtual_router_id 1\n virtual_ipaddress { 10.0.0.1/8 dev x }\n unicast_peer { 10.0.0.2 }\n}\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		// The input includes itself and another copy of itself: loops and
		// depth limits must hold.
		fsys := mapFS{"a.conf": src, "b.conf": src}
		root, _, err := Parse(src, "f.conf", fsys)
		var se *SyntaxError
		if err != nil {
			if !errors.As(err, &se) {
				t.Fatalf("Parse error %v is not a *SyntaxError", err)
			}
			return
		}
		if root == nil {
			t.Fatal("Parse returned neither a tree nor an error")
		}
		res, err := Convert(src, "f.conf", Options{FS: fsys})
		if err != nil {
			return
		}
		if len(res.YAML) == 0 || res.Config == nil {
			t.Fatalf("Convert returned an empty result")
		}
	})
}
