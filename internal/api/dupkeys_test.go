package api

import (
	"bytes"
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

// FuzzDupKeys: dupKeys never panics, and a valid JSON document it
// accepts has as many object keys in its text (counted from the tokens)
// as in what encoding/json decodes (where a repeated key would collapse).
func FuzzDupKeys(f *testing.F) {
	for _, s := range []string{`{"op": "set"}`, `{"a": 1, "a": 2}`, `[{"x": [1, {"y": 2, "y": 3}]}]`, `{"a": {"b": {}}}`, `"x"`, `{`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		err := dupKeys(data)
		if err != nil || !json.Valid(data) {
			return
		}
		var v any
		if json.Unmarshal(data, &v) != nil {
			return
		}
		if text, decoded := tokenKeys(t, data), decodedKeys(v); text != decoded {
			t.Fatalf("%q: %d keys in the text, %d decoded: a repeated key was missed", data, text, decoded)
		}
	})
}

// tokenKeys counts the object keys in a valid JSON text.
func tokenKeys(t *testing.T, data []byte) int {
	dec := json.NewDecoder(bytes.NewReader(data))
	var inObj []bool // per open container: an object?
	wantKey := false // the next string in an object is a key
	n := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return n
		}
		switch v := tok.(type) {
		case json.Delim:
			if v == '{' || v == '[' {
				inObj = append(inObj, v == '{')
				wantKey = v == '{'
				continue
			}
			inObj = inObj[:len(inObj)-1]
		case string:
			if wantKey {
				n++
				wantKey = false
				continue
			}
		}
		// A value ended: in an object, a key comes next.
		wantKey = len(inObj) > 0 && inObj[len(inObj)-1]
	}
}

// decodedKeys counts the object keys in a decoded JSON value.
func decodedKeys(v any) int {
	switch x := v.(type) {
	case map[string]any:
		n := len(x)
		for _, e := range x {
			n += decodedKeys(e)
		}
		return n
	case []any:
		n := 0
		for _, e := range x {
			n += decodedKeys(e)
		}
		return n
	}
	return 0
}
