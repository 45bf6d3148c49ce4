package config

import (
	"fmt"
	"maps"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxStrictNodes bounds the nodes the unknown-key check visits: a file
// within MaxFileSize has far fewer, unless aliases multiply them.
const maxStrictNodes = 1 << 22

// strictCheck finds the mapping keys a type has no field for. It builds
// each struct type's field map once, and checks an aliased node once per
// type (an alias repeats the problems of its anchor, found where the
// anchor is), so that aliases cannot multiply its work; a budget of nodes
// stops it in any case.
type strictCheck struct {
	file    string
	fields  map[reflect.Type]map[string]reflect.Type
	aliased map[aliasUse]bool
	visits  int
	probs   []Problem
}

// aliasUse is an anchored node checked as one type (where it is defined
// or through an alias: whichever comes first).
type aliasUse struct {
	n *yaml.Node
	t reflect.Type
}

// unknownKeys reports every mapping key of n that the type t has no field
// for, recursing into nested structs, pointers and slices. It lets Parse
// read the text once (into nodes, kept for line numbers) and still refuse
// unknown keys, which yaml's Node.Decode does not do.
func unknownKeys(file string, n *yaml.Node, t reflect.Type) []Problem {
	c := &strictCheck{file: file, fields: map[reflect.Type]map[string]reflect.Type{}, aliased: map[aliasUse]bool{}}
	if !c.walk(n, t) {
		c.probs = append(c.probs, Problem{File: file, Line: n.Line, Msg: fmt.Sprintf("document too large or too deeply aliased (more than %d nodes to check)", maxStrictNodes)})
	}
	return c.probs
}

// walk checks n as t; false means the budget ran out.
func (c *strictCheck) walk(n *yaml.Node, t reflect.Type) bool {
	if c.visits++; c.visits > maxStrictNodes {
		return false
	}
	for n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Anchor != "" {
		use := aliasUse{n, t}
		if c.aliased[use] {
			return true
		}
		c.aliased[use] = true
	}
	switch {
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		for _, e := range n.Content {
			if !c.walk(e, t.Elem()) {
				return false
			}
		}
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode && !isScalarType(t):
		fields := c.fieldsOf(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			ft, ok := fields[k.Value]
			if !ok {
				c.probs = append(c.probs, Problem{File: c.file, Line: k.Line, Msg: fmt.Sprintf("unknown key %q in %s", k.Value, t.Name())})
				continue
			}
			if !c.walk(n.Content[i+1], ft) {
				return false
			}
		}
	}
	return true
}

// fieldsOf is yamlFields(t), built once per check.
func (c *strictCheck) fieldsOf(t reflect.Type) map[string]reflect.Type {
	f, ok := c.fields[t]
	if !ok {
		f = yamlFields(t)
		c.fields[t] = f
	}
	return f
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
