package config

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// A Problem is one thing wrong with a configuration file: its line, the field, and what is
// wrong with it.
type Problem struct {
	// Line is the file's line, from 1; 0 for a problem at no one line (a variable missing
	// from the environment, a default that does not fit the rest).
	Line int
	// Path names the field: "limits.queue_events", "sources[0] (ticks).backoff.max" (an
	// element of a list by its index, and by its name when it has one); "" for the file.
	Path string
	// Msg says what is wrong.
	Msg string
}

// Error is the problem as "line N: path: message", without what is missing.
func (p Problem) Error() string {
	var b strings.Builder
	if p.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", p.Line)
	}
	if p.Path != "" {
		b.WriteString(p.Path + ": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Problems are every problem of one file, in the order of its lines (those at no line first).
// Parse's error, and Load's under its wrapping, is one: errors.As finds it.
type Problems []Problem

// Error is one problem a line.
func (ps Problems) Error() string {
	msgs := make([]string, len(ps))
	for i, p := range ps {
		msgs[i] = p.Error()
	}
	return strings.Join(msgs, "\n")
}

// problems turns the messages that decoding and Validate produce ("line N: ..." from yaml and
// the strict decoder, "path: ..." from Validate, the two joined for a source's own problems)
// into Problems, each with its line and its field, found in root, the document's top node (nil
// without one). Validate's messages name no line because a Config holds none; the decoder's name
// no field because yaml does not know it.
func problems(root *yaml.Node, msgs []string) Problems {
	idx := newIndex(root)
	ps := make(Problems, 0, len(msgs))
	for _, m := range msgs {
		ps = append(ps, idx.locate(m))
	}
	slices.SortStableFunc(ps, func(a, b Problem) int { return cmp.Compare(a.Line, b.Line) })
	return ps
}

// syntaxProblem is the problem of a file that is not YAML: yaml names the line in its message.
func syntaxProblem(err error) Problems {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	p := Problem{Msg: msg}
	if m := syntaxLine.FindStringSubmatch(msg); m != nil {
		p.Line, _ = strconv.Atoi(m[1])
		p.Msg = msg[len(m[0]):]
	}
	return Problems{p}
}

var syntaxLine = regexp.MustCompile(`^line (\d+): `)

var (
	// pathPrefix is a field path at the start of a message: "limits.queue_events: ",
	// "sources[0] (ticks): ", "auth.api_keys[1] (ci).sources: ". Field names are lower case,
	// which keeps "ERROR: <input>:1:5" (a predicate's error) out.
	pathPrefix = regexp.MustCompile(`^([a-z_][a-z0-9_]*(?:\[\d+\])?(?: \([^)]*\))?(?:\.[a-z_][a-z0-9_]*(?:\[\d+\])?(?: \([^)]*\))?)*): `)
	// lineN is the line that yaml and the strict decoder put first.
	lineN = regexp.MustCompile(`^line (\d+): `)
	// label is a list element's name in a path: " (ticks)".
	label = regexp.MustCompile(` \([^)]*\)`)
	// unknownField is the strict decoder's message, with the path it was walking from its start
	// (the file's top, a source, auth:).
	unknownField = regexp.MustCompile(`^(unknown field "((?:[^"\\]|\\.)*)")(?: in ([^ ]+))?`)
	// cannot is yaml's message for a value of the wrong kind; auth names its types already.
	cannot = regexp.MustCompile("^cannot unmarshal !!(\\w+)(?: `([^`]*)`)? into (.*)$")
	// quoted is the first value quoted in another message ("x" is not a time).
	quoted = regexp.MustCompile("\"((?:[^\"\\\\]|\\\\.)*)\"|`([^`]*)`")
)

// index finds a field's node by its path and a node's path by its line.
type index struct {
	root  *yaml.Node
	nodes []indexed // every key and value, in the file's order
}

// indexed is a key or a value of the document and the path of the field it is or holds.
type indexed struct {
	n    *yaml.Node
	path string
	key  bool
}

func newIndex(root *yaml.Node) *index {
	x := &index{root: root}
	if root != nil {
		x.walk(root, "", map[*yaml.Node]bool{})
	}
	return x
}

// walk files n, its keys and its values under their paths. What an alias brings is filed under
// the alias's path too, at the anchor's lines, which are those yaml reports; open are the
// anchors being walked, through which an alias is a cycle.
func (x *index) walk(n *yaml.Node, path string, open map[*yaml.Node]bool) {
	switch n.Kind {
	case yaml.AliasNode:
		if n.Alias != nil && !open[n.Alias] {
			open[n.Alias] = true
			x.walk(n.Alias, path, open)
			delete(open, n.Alias)
		}
	case yaml.ScalarNode:
		x.nodes = append(x.nodes, indexed{n: n, path: path})
	case yaml.SequenceNode:
		x.nodes = append(x.nodes, indexed{n: n, path: path})
		for i, e := range n.Content {
			x.walk(e, fmt.Sprintf("%s[%d]", path, i), open)
		}
	case yaml.MappingNode:
		x.nodes = append(x.nodes, indexed{n: n, path: path})
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			if k.ShortTag() == "!!merge" {
				p = path // the merged keys are this mapping's own
			}
			x.nodes = append(x.nodes, indexed{n: k, path: p, key: true})
			x.walk(n.Content[i+1], p, open)
		}
	}
}

// find is the node of path (labels left out) and the line of its key, or of the nearest
// field above it that the file has; nil and that line when the file does not have the field.
func (x *index) find(path string) (*yaml.Node, int) {
	n, line := x.root, 0
	if n == nil {
		return nil, 0
	}
	for seg := range strings.SplitSeq(path, ".") {
		name, rest, _ := strings.Cut(seg, "[")
		v, l := mapValue(n, name)
		if v == nil {
			return nil, line
		}
		n, line = v, l
		for rest != "" {
			var i int
			var ok bool
			i, rest, ok = indexOf(rest)
			if !ok || n.Kind != yaml.SequenceNode || i >= len(n.Content) {
				return nil, line
			}
			n, line = n.Content[i], n.Content[i].Line
		}
	}
	return n, line
}

// mapValue is the value of key in mapping n, taken through aliases and merges, and its key's line.
func mapValue(n *yaml.Node, key string) (*yaml.Node, int) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind != yaml.MappingNode {
		return nil, 0
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1], n.Content[i].Line
		}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].ShortTag() == "!!merge" {
			for _, m := range append([]*yaml.Node{n.Content[i+1]}, n.Content[i+1].Content...) {
				if v, l := mapValue(m, key); v != nil {
					return v, l
				}
			}
		}
	}
	return nil, 0
}

// indexOf reads "3]" from the start of s, returning 3 and what follows.
func indexOf(s string) (int, string, bool) {
	num, rest, ok := strings.Cut(s, "]")
	i, err := strconv.Atoi(num)
	return i, strings.TrimPrefix(rest, "["), ok && err == nil
}

// locate reads a message's path and line, completes whichever of the two it lacks from the
// document, and says what yaml says in the words of the file.
func (x *index) locate(msg string) Problem {
	var p Problem
	for {
		if m := lineN.FindStringSubmatch(msg); m != nil && p.Line == 0 {
			p.Line, _ = strconv.Atoi(m[1])
			msg = msg[len(m[0]):]
			continue
		}
		m := pathPrefix.FindStringSubmatch(msg)
		if m == nil {
			break
		}
		inner := m[1]
		switch bare, outer := strip(inner), strip(p.Path); {
		case p.Path == "":
			p.Path = inner
		case bare == outer || strings.HasPrefix(bare, outer+".") || strings.HasPrefix(bare, outer+"["):
			p.Path = inner // the message names its field in full: auth: auth.api_keys[0]
		default:
			// A field within: only if the file has it, for "amqp: dial: ..." is no field.
			if n, _ := x.find(outer + "." + bare); n == nil {
				return x.finish(p, msg)
			}
			p.Path += "." + inner
		}
		msg = msg[len(m[0]):]
	}
	return x.finish(p, msg)
}

// finish completes p, whose message is msg.
func (x *index) finish(p Problem, msg string) Problem {
	p.Msg = msg
	if p.Line == 0 {
		// Validate's message: the field's line, or its parent's if the file leaves it out;
		// a message that starts with a field of it ("sha256 is 3 bytes") is at that field.
		var n *yaml.Node
		n, p.Line = x.find(strip(p.Path))
		if f := firstWord.FindString(msg); n != nil && f != "" {
			if _, l := mapValue(n, f); l > 0 {
				p.Line = l
			}
		}
		return p
	}
	// The decoder's message: the field is the node at that line that the message is about.
	var at indexed
	switch m := unknownField.FindStringSubmatch(msg); {
	case m != nil:
		// The field is the mapping that has no such key, which the message names: the one
		// whose path ends as the decoder's does, who may have started below the file's top.
		key, _ := strconv.Unquote(`"` + m[2] + `"`)
		at = x.at(p.Line, func(e indexed) bool {
			if !e.key || e.n.Value != key {
				return false
			}
			parent := e.path[:max(0, strings.LastIndex(e.path, "."))]
			return m[3] == "" || parent == m[3] || strings.HasSuffix(parent, "."+m[3])
		})
		at.path = at.path[:max(0, strings.LastIndex(at.path, "."))]
		p.Msg = m[1] + msg[len(m[0]):]
	default:
		if c := cannot.FindStringSubmatch(msg); c != nil {
			p.Msg = cannotMsg(c[1], c[2], c[3])
			at = x.at(p.Line, func(e indexed) bool {
				if c[2] == "" { // a list or a mapping: yaml gives no value
					return !e.key && e.n.Kind != yaml.ScalarNode
				}
				return !e.key && e.n.Kind == yaml.ScalarNode && yamlShort(e.n.Value) == c[2]
			})
		} else if q := quoted.FindStringSubmatch(msg); q != nil {
			v := q[2]
			if q[1] != "" {
				v, _ = strconv.Unquote(`"` + q[1] + `"`)
			}
			at = x.at(p.Line, func(e indexed) bool { return !e.key && e.n.Value == v })
		}
	}
	if at.n != nil {
		p.Path = merge(p.Path, at.path)
	}
	return p
}

var firstWord = regexp.MustCompile(`^[a-z_][a-z0-9_]*\b`)

// at is the first key or scalar at line that ok accepts.
func (x *index) at(line int, ok func(indexed) bool) indexed {
	for _, e := range x.nodes {
		if e.n.Line == line && ok(e) {
			return e
		}
	}
	return indexed{}
}

// merge is found (a path from the document, without labels) written with the labels of path,
// when it is path or a field within it; path otherwise.
func merge(path, found string) string {
	bare := strip(path)
	switch {
	case path == "":
		return found
	case found == bare:
		return path
	case strings.HasPrefix(found, bare+".") || strings.HasPrefix(found, bare+"["):
		return path + found[len(bare):]
	}
	return path
}

// strip leaves the labels out of path.
func strip(path string) string { return label.ReplaceAllString(path, "") }

// yamlShort is v as yaml quotes it in its messages: cut after 7 characters when over 10.
func yamlShort(v string) string {
	if len(v) > 10 {
		return v[:7] + "..."
	}
	return v
}

// cannotMsg says, in the words of the file, that value (of YAML tag tag; "" for a list or
// a mapping) is not what into is (a Go type, or auth's words for one).
func cannotMsg(tag, value, into string) string {
	want := intoWord(into)
	switch {
	case want == "a duration" && (tag == "int" || tag == "float"):
		return fmt.Sprintf("%s is a number, not a duration: write %ss (or %sms, %sm, %sh)", value, value, value, value, value)
	case want == "a duration":
		return fmt.Sprintf("%q is not a duration: write it as 15s, 1m30s or 250ms", value)
	case value != "" && !strings.HasSuffix(value, "..."):
		return fmt.Sprintf("%q is not %s", value, want)
	}
	return fmt.Sprintf("a %s where %s belongs", kindOf(tag), want)
}

// intoWord names a Go type of yaml's message as a user editing the file knows it.
func intoWord(into string) string {
	switch {
	case into == "time.Duration" || strings.HasPrefix(into, "a duration"):
		return "a duration"
	case strings.HasPrefix(into, "int") || strings.HasPrefix(into, "uint"):
		return "a whole number"
	case strings.HasPrefix(into, "float"):
		return "a number"
	case into == "bool" || into == "true or false":
		return "true or false"
	case into == "string":
		return "a string"
	case strings.HasPrefix(into, "[]"):
		return "a list"
	case strings.HasPrefix(into, "a ") || strings.HasPrefix(into, "an "):
		return into // auth's words already
	}
	return "a mapping" // a struct or a map
}

// kindOf names a YAML tag as a user writes it.
func kindOf(tag string) string {
	switch tag {
	case "map":
		return "mapping"
	case "seq":
		return "list"
	case "str":
		return "string"
	case "int", "float":
		return "number"
	case "bool":
		return "true or false"
	}
	return tag
}

// splitErr is err's messages: those it joins, one each, or its own.
func splitErr(err error) []string {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []string
		for _, e := range j.Unwrap() {
			out = append(out, splitErr(e)...)
		}
		return out
	}
	return []string{err.Error()}
}
