package config

import (
	"fmt"
	"maps"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// unknownKeys reports every mapping key of n that the type t has no field
// for, recursing into nested structs, pointers and slices. It lets Parse
// read the text once (into nodes, kept for line numbers) and still refuse
// unknown keys, which yaml's Node.Decode does not do.
func unknownKeys(file string, n *yaml.Node, t reflect.Type) []Problem {
	for n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var probs []Problem
	switch {
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		for _, c := range n.Content {
			probs = append(probs, unknownKeys(file, c, t.Elem())...)
		}
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode && !isScalarType(t):
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			ft, ok := fields[k.Value]
			if !ok {
				probs = append(probs, Problem{File: file, Line: k.Line, Msg: fmt.Sprintf("unknown key %q in %s", k.Value, t.Name())})
				continue
			}
			probs = append(probs, unknownKeys(file, n.Content[i+1], ft)...)
		}
	}
	return probs
}

// isScalarType reports whether t decodes itself from a scalar.
func isScalarType(t reflect.Type) bool {
	return reflect.PointerTo(t).Implements(reflect.TypeFor[yaml.Unmarshaler]())
}

// yamlFields maps a struct's yaml keys to their field types, with the
// keys of inlined structs (`yaml:",inline"`) as the struct's own.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := make(map[string]reflect.Type, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		if !f.IsExported() || tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" && opts == "inline" && f.Type.Kind() == reflect.Struct {
			maps.Copy(out, yamlFields(f.Type))
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
	return out
}
