// Package yamlstrict finds the keys of a parsed YAML document that a Go type has no field for.
// yaml's Decoder can refuse unknown fields, but a yaml.Node's Decode cannot, and neither can a
// custom unmarshaler, which is handed a node; this walks the node instead, and names each
// unknown key at the file's line.
package yamlstrict

import (
	"fmt"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Check is asked first about each node and the type it decodes into; when handled is true the
// walk takes its messages and goes no deeper there.
type Check func(n *yaml.Node, t reflect.Type) (msgs []string, handled bool)

// UnknownFields lists, as "line N: unknown field "k"", the keys of mapping n, and of the
// mappings within it, that type t has no field for (by yaml tag, else the lowercased name). It
// follows aliases and merge keys (<<) as yaml's decoding does. Types that decode themselves
// (yaml.Unmarshaler) are left to look for their own. check, if not nil, may handle a node first.
func UnknownFields(n *yaml.Node, t reflect.Type, check Check) []string {
	w := walker{check: check, open: map[*yaml.Node]bool{}}
	return w.walk(n, t)
}

type walker struct {
	check Check
	open  map[*yaml.Node]bool // the aliased nodes being walked: an alias to one of them is a cycle
}

func (w *walker) walk(n *yaml.Node, t reflect.Type) []string {
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil || w.open[n.Alias] {
			return nil // a cycle, which yaml's decoding reports
		}
		w.open[n.Alias] = true
		defer delete(w.open, n.Alias)
		n = n.Alias
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if w.check != nil {
		if msgs, handled := w.check(n, t); handled {
			return msgs
		}
	}
	if reflect.PointerTo(t).Implements(reflect.TypeFor[yaml.Unmarshaler]()) {
		return nil
	}
	var out []string
	switch {
	case n.Kind == yaml.SequenceNode && t.Kind() == reflect.Slice:
		for _, e := range n.Content {
			out = append(out, w.walk(e, t.Elem())...)
		}
	case n.Kind == yaml.MappingNode && t.Kind() == reflect.Map:
		for i := 1; i < len(n.Content); i += 2 {
			out = append(out, w.walk(n.Content[i], t.Elem())...)
		}
	case n.Kind == yaml.MappingNode && t.Kind() == reflect.Struct:
		fields := map[string]reflect.Type{}
		addFields(fields, t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
				// <<: a mapping, or a list of them, whose keys this mapping takes.
				if v.Kind == yaml.SequenceNode {
					for _, e := range v.Content {
						out = append(out, w.walk(e, t)...)
					}
				} else {
					out = append(out, w.walk(v, t)...)
				}
				continue
			}
			ft, ok := fields[k.Value]
			if !ok {
				out = append(out, fmt.Sprintf("line %d: unknown field %q", k.Line, k.Value))
				continue
			}
			out = append(out, w.walk(v, ft)...)
		}
	}
	return out
}

// addFields files the fields of struct type t under their yaml names, those of an ",inline"
// struct as its own.
func addFields(fields map[string]reflect.Type, t reflect.Type) {
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		switch {
		case name == "-":
		case opts == "inline" && f.Type.Kind() == reflect.Struct: // exported or not, as yaml has it
			addFields(fields, f.Type)
		case !f.IsExported():
		case name == "":
			fields[strings.ToLower(f.Name)] = f.Type
		default:
			fields[name] = f.Type
		}
	}
}
