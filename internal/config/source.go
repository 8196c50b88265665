package config

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/streamux/streamux/internal/source"
	"github.com/streamux/streamux/internal/yamlstrict"
)

// Source is one configured source: the fields every type has, and Spec, the type's own settings.
type Source struct {
	Name string `yaml:"name"`
	Type string `yaml:"type"`
	// Required makes /readyz fail while the source is not up.
	Required bool    `yaml:"required"`
	Backoff  Backoff `yaml:"backoff"`
	// Spec is the type's own configuration: a pointer to the struct its type registered
	// (source.Type.Config), or nil for that struct's zero value, the type's defaults.
	Spec any `yaml:"-"`
	// problems are what decoding found; Validate reports them under the source's index, so that
	// one bad source does not hide the problems of the others.
	problems []string
}

// Backoff is the reconnect delay: exponential with jitter.
type Backoff struct {
	// Initial is the first delay. Defaults to 100ms.
	Initial time.Duration `yaml:"initial"`
	// Max caps the delay. Defaults to 30s.
	Max time.Duration `yaml:"max"`
}

// common are the fields every source type has; each type's struct inlines it.
type common struct {
	Name     string  `yaml:"name"`
	Type     string  `yaml:"type"`
	Required bool    `yaml:"required"`
	Backoff  Backoff `yaml:"backoff"`
}

// decode decodes n, strictly, as the common fields and t's configuration. It decodes the node
// itself, not its text again, so that aliases and merge keys that reach outside the source still
// resolve and the messages carry the file's lines; a node's Decode is not strict, so unknown keys
// are looked for first. Both parts are decoded as one struct, built for t, with the common fields
// and t's configuration inline, so that a key of either is known and each problem is reported once.
func decode(t source.Type, n *yaml.Node) (common, any, []string) {
	var c common
	spec, problems := decodeInline(n, &c, t.Config())
	return c, spec, problems
}

// decodeInline decodes n, strictly, as the fields of *head (a pointer to a struct) and those
// of the struct type spec, inline in one struct, and returns a pointer to the spec it decoded.
// What sources and sinks share: their common fields beside their type's own.
func decodeInline[H any](n *yaml.Node, head *H, spec reflect.Type) (any, []string) {
	v := reflect.New(reflect.StructOf([]reflect.StructField{
		{Name: "Common", Type: reflect.TypeFor[H](), Tag: `yaml:",inline"`},
		{Name: "Spec", Type: spec, Tag: `yaml:",inline"`},
	}))
	problems := yamlstrict.UnknownFields(n, v.Type().Elem(), nil)
	if err := n.Decode(v.Interface()); err != nil {
		problems = append(problems, decodeErrors(n, err)...)
	}
	if len(problems) > 0 {
		return nil, problems
	}
	*head = v.Elem().Field(0).Interface().(H)
	return v.Elem().Field(1).Addr().Interface(), nil
}

// decodeErrors are the messages of yaml's error in decoding n: a type error names each problem
// at the file's line; any other is put at n's.
func decodeErrors(n *yaml.Node, err error) []string {
	if te, ok := errors.AsType[*yaml.TypeError](err); ok {
		return te.Errors
	}
	return []string{fmt.Sprintf("line %d: %s", n.Line, strings.TrimPrefix(err.Error(), "yaml: "))}
}

// UnmarshalYAML decodes a source by its type, strictly.
// A problem is kept in the Source for Validate rather than returned, because yaml stops at the
// first error an unmarshaler returns and drops the element, which would shift the indexes.
func (s *Source) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		*s = Source{problems: []string{fmt.Sprintf("line %d: a source is a mapping with a name and a type", n.Line)}}
		return nil
	}
	var head struct {
		Name string `yaml:"name"`
		Type string `yaml:"type"`
	}
	if err := n.Decode(&head); err != nil {
		*s = Source{Name: scalar(n, "name"), Type: scalar(n, "type"), problems: decodeErrors(n, err)}
		return nil
	}
	*s = Source{Name: head.Name, Type: head.Type}
	t, ok := source.Lookup(head.Type)
	if !ok {
		if head.Type == "" {
			s.problems = []string{fmt.Sprintf("line %d: type is required (one of %s)", n.Line, strings.Join(source.Types(), ", "))}
		} else {
			s.problems = []string{fmt.Sprintf("line %d: unknown type %q (one of %s)", line(n, "type"), head.Type, strings.Join(source.Types(), ", "))}
		}
		return nil
	}
	c, spec, problems := decode(t, n)
	if problems != nil {
		s.problems = problems
		return nil
	}
	*s = Source{Name: c.Name, Type: c.Type, Required: c.Required, Backoff: c.Backoff, Spec: spec}
	return nil
}

// scalar is the value of mapping n's key, when it is a scalar.
// line is the line of key's value in the mapping n, or n's own line without one.
func line(n *yaml.Node, key string) int {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1].Line
		}
	}
	return n.Line
}

func scalar(n *yaml.Node, key string) string {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key && n.Content[i+1].Kind == yaml.ScalarNode {
			return n.Content[i+1].Value
		}
	}
	return ""
}
