package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// maxJSONDepth bounds the nesting dupKeys follows: API bodies are shallow.
const maxJSONDepth = 64

// errNotJSON stops dupKeys on what the decoder will refuse anyway.
var errNotJSON = errors.New("not JSON")

// dupKeys reports the first object key that appears twice in one object
// of data, with its field path ("op", "kvs.memory", "reals[2].address"):
// encoding/json would keep the last one silently, and what the client
// meant is unknown. Whether data is otherwise valid JSON is the decoder's
// to say: nil means no key repeats (or data is not JSON).
func dupKeys(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := walkJSON(dec, "", 0); err != nil && !errors.Is(err, errNotJSON) {
		return err
	}
	return nil
}

// walkJSON reads one value from dec, named path, checking its objects'
// keys.
func walkJSON(dec *json.Decoder, path string, depth int) error {
	tok, err := dec.Token()
	if err != nil {
		return errNotJSON
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	if depth >= maxJSONDepth {
		return fmt.Errorf("nested deeper than %d at %s", maxJSONDepth, path)
	}
	switch d {
	case '{':
		seen := map[string]bool{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return errNotJSON
			}
			k, _ := kt.(string)
			kp := k
			if path != "" {
				kp = path + "." + k
			}
			if seen[k] {
				return fmt.Errorf("duplicate key %q at %s", k, kp)
			}
			seen[k] = true
			if err := walkJSON(dec, kp, depth+1); err != nil {
				return err
			}
		}
	case '[':
		for i := 0; dec.More(); i++ {
			if err := walkJSON(dec, path+"["+strconv.Itoa(i)+"]", depth+1); err != nil {
				return err
			}
		}
	default:
		return errNotJSON
	}
	if _, err := dec.Token(); err != nil { // the closing delimiter
		return errNotJSON
	}
	return nil
}
