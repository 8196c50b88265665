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
// A key below n says in which field, from n ("line N: unknown field "k" in items[2].limits"):
// through an alias, the line is the anchor's and would not say it. A key near enough to a
// field to be a typo of it is told so: "line N: unknown field "sorces" (did you mean
// "sources"?)". It
// follows aliases and merge keys (<<) as yaml's decoding does. Types that decode themselves
// (yaml.Unmarshaler) are left to look for their own. check, if not nil, may handle a node first.
func UnknownFields(n *yaml.Node, t reflect.Type, check Check) []string {
	w := walker{check: check, open: map[*yaml.Node]bool{}}
	return w.walk(n, t, "")
}

type walker struct {
	check Check
	open  map[*yaml.Node]bool // the aliased nodes being walked: an alias to one of them is a cycle
}

// walk checks n, of type t, which is at path from the walk's start.
func (w *walker) walk(n *yaml.Node, t reflect.Type, path string) []string {
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
		for i, e := range n.Content {
			out = append(out, w.walk(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i))...)
		}
	case n.Kind == yaml.MappingNode && t.Kind() == reflect.Map:
		for i := 1; i < len(n.Content); i += 2 {
			out = append(out, w.walk(n.Content[i], t.Elem(), join(path, n.Content[i-1].Value))...)
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
						out = append(out, w.walk(e, t, path)...)
					}
				} else {
					out = append(out, w.walk(v, t, path)...)
				}
				continue
			}
			ft, ok := fields[k.Value]
			if !ok {
				msg := fmt.Sprintf("line %d: unknown field %q", k.Line, k.Value)
				if path != "" {
					msg += " in " + path
				}
				if near := nearest(k.Value, fields); near != "" {
					msg += fmt.Sprintf(" (did you mean %q?)", near)
				}
				out = append(out, msg)
				continue
			}
			out = append(out, w.walk(v, ft, join(path, k.Value))...)
		}
	}
	return out
}

// join is the path of field name within path.
func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
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

// nearest is the name in fields closest to key by edit distance, if it is close enough to be a
// typo of it (at most a third of key's letters changed, and at least one left as it was), or a
// name that key is the start or the end of (max_age for age); "" otherwise. Ties go to the name
// first in alphabetical order, so that the suggestion does not change from run to run.
func nearest(key string, fields map[string]reflect.Type) string {
	key = strings.ToLower(key)
	best, bestD := "", -1
	for name := range fields {
		d := distance(key, name)
		if d > max(1, len([]rune(key))/3) || d >= len([]rune(name)) {
			if len(key) < 3 || !strings.HasPrefix(name, key) && !strings.HasSuffix(name, key) {
				continue
			}
			d = len([]rune(name)) - len([]rune(key)) // a part of the name: as far as what is missing
		}
		if bestD < 0 || d < bestD || d == bestD && name < best {
			best, bestD = name, d
		}
	}
	return best
}

// distance is the Damerau-Levenshtein distance (optimal string alignment) between a and b: the
// fewest insertions, deletions, substitutions and swaps of neighbours that turn a into b, so
// that "sorces" is 1 from "sources" and "lisetn" 1 from "listen".
func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	// d[i][j] is the distance between ra[:i] and rb[:j].
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}
