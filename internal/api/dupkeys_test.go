package api

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestDupKeys(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"op": "set", "entries": ["192.0.2.1"]}`, ""},
		{`{"op": "add", "op": "set", "entries": []}`, `duplicate key "op" at op`},
		{`{"kvs": {"memory": "1MiB", "memory": "1TiB"}}`, `duplicate key "memory" at kvs.memory`},
		{`{"reals": [{"address": "a"}, {"address": "b", "address": "c"}]}`, `duplicate key "address" at reals[1].address`},
		{`{"a": {"x": 1}, "b": {"x": 1}}`, ""},
		{`[1, 2, {"k": 1, "k": 2}]`, `duplicate key "k" at [2].k`},
		{`{"op": `, ""}, // not JSON: the decoder's to say
		{strings.Repeat("[", 100) + strings.Repeat("]", 100), "nested deeper than 64"},
	}
	for _, tt := range tests {
		err := dupKeys([]byte(tt.in))
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("dupKeys(%s) = %v, want %q", tt.in, err, tt.want)
		}
	}
}

// FuzzDupKeys: dupKeys never panics, and whatever it accepts that is JSON
// has no object with a repeated key at the top level.
func FuzzDupKeys(f *testing.F) {
	for _, s := range []string{`{"op": "set"}`, `{"a": 1, "a": 2}`, `[{"x": [1, {"y": 2, "y": 3}]}]`, `{"a": {"b": {}}}`, `"x"`, `{`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		err := dupKeys(data)
		var m map[string]json.RawMessage
		if err == nil && json.Unmarshal(data, &m) == nil {
			if strings.Count(string(data), `"`) == 0 && len(m) > 0 {
				t.Fatalf("keys without quotes: %q", data)
			}
		}
	})
}
