package config

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/streamux/streamux/internal/source/amqp"
	"github.com/streamux/streamux/internal/source/demo"
	"github.com/streamux/streamux/internal/source/ingest"
	"github.com/streamux/streamux/internal/source/wsdial"
)

// Source is one configured source: the fields every type has, and Spec, the type's own settings.
type Source struct {
	Name string `yaml:"name"`
	Type string `yaml:"type"`
	// Required makes /readyz fail while the source is not up.
	Required bool    `yaml:"required"`
	Backoff  Backoff `yaml:"backoff"`
	// Spec is the type's configuration: *demo.Config, *ingest.Config, *amqp.Config or *wsdial.Config (see Types).
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

type (
	demoConfig   = demo.Config
	ingestConfig = ingest.Config
)

// decoders decode a source's YAML, strictly, into the type's configuration.
var decoders = map[string]func([]byte) (common, any, error){
	"demo":      decodeAs[demo.Config],
	"http":      decodeAs[ingest.Config],
	"amqp":      decodeAs[amqp.Config],
	"websocket": decodeAs[wsdial.Config],
}

// Types lists the source types this build knows.
func Types() []string {
	t := make([]string, 0, len(decoders))
	for k := range decoders {
		t = append(t, k)
	}
	sort.Strings(t)
	return t
}

func decodeAs[T any](raw []byte) (common, any, error) {
	var v struct {
		common `yaml:",inline"`
		Spec   T `yaml:",inline"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&v); err != nil {
		return common{}, nil, err
	}
	return v.common, &v.Spec, nil
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
		// n's lines are the file's, so yaml's messages are right as they are.
		var te *yaml.TypeError
		msgs := []string{fmt.Sprintf("line %d: %s", n.Line, strings.TrimPrefix(err.Error(), "yaml: "))}
		if errors.As(err, &te) {
			msgs = te.Errors
		}
		*s = Source{Name: scalar(n, "name"), Type: scalar(n, "type"), problems: msgs}
		return nil
	}
	*s = Source{Name: head.Name, Type: head.Type}
	dec, ok := decoders[head.Type]
	if !ok {
		if head.Type == "" {
			s.problems = []string{fmt.Sprintf("line %d: type is required (one of %s)", n.Line, strings.Join(Types(), ", "))}
		} else {
			s.problems = []string{fmt.Sprintf("line %d: unknown type %q (one of %s)", n.Line, head.Type, strings.Join(Types(), ", "))}
		}
		return nil
	}
	// A node's Decode is never strict, so decode the node's own text with a strict decoder.
	raw, err := yaml.Marshal(n)
	if err != nil {
		return err
	}
	c, spec, err := dec(raw)
	if err != nil {
		s.problems = readable(n, err)
		return nil
	}
	*s = Source{Name: c.Name, Type: c.Type, Required: c.Required, Backoff: c.Backoff, Spec: spec}
	return nil
}

// readable turns a decoding error of source n into messages that name fields, not Go types, at
// the file's lines: the strict decoder read n's re-encoded text, whose lines start at 1.
func readable(n *yaml.Node, err error) []string {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return []string{fmt.Sprintf("line %d: %s", n.Line, strings.TrimPrefix(err.Error(), "yaml: "))}
	}
	out := make([]string, 0, len(te.Errors))
	for _, m := range te.Errors {
		m = relLine.ReplaceAllString(m, "")
		if f := unknownField.FindStringSubmatch(m); f != nil {
			line := n.Line
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == f[2] {
					line = n.Content[i].Line
					break
				}
			}
			out = append(out, fmt.Sprintf("line %d: unknown field %q", line, f[2]))
			continue
		}
		out = append(out, fmt.Sprintf("line %d: %s", n.Line, m))
	}
	return out
}

// scalar is the value of mapping n's key, when it is a scalar.
func scalar(n *yaml.Node, key string) string {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key && n.Content[i+1].Kind == yaml.ScalarNode {
			return n.Content[i+1].Value
		}
	}
	return ""
}

var relLine = regexp.MustCompile(`^line \d+: `)
