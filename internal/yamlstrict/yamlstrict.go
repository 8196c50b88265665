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
// mappings within it, that type t has no field for (by yaml tag, else the lowercased name).
// Types that decode themselves (yaml.Unmarshaler) are left to look for their own. check, if not
// nil, may handle a node first.
func UnknownFields(n *yaml.Node, t reflect.Type, check Check) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if check != nil {
		if msgs, handled := check(n, t); handled {
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
			out = append(out, UnknownFields(e, t.Elem(), check)...)
		}
	case n.Kind == yaml.MappingNode && t.Kind() == reflect.Struct:
		fields := map[string]reflect.Type{}
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "-" || !f.IsExported() {
				continue
			}
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			fields[name] = f.Type
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			ft, ok := fields[k.Value]
			if !ok {
				out = append(out, fmt.Sprintf("line %d: unknown field %q", k.Line, k.Value))
				continue
			}
			out = append(out, UnknownFields(n.Content[i+1], ft, check)...)
		}
	}
	return out
}
