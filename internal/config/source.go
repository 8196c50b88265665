package config

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/streamux/streamux/internal/source/demo"
	"github.com/streamux/streamux/internal/source/ingest"
)

// Source is one configured source: the fields every type has, and Spec, the type's own settings.
type Source struct {
	Name string `yaml:"name"`
	Type string `yaml:"type"`
	// Required makes /readyz fail while the source is not up.
	Required bool    `yaml:"required"`
	Backoff  Backoff `yaml:"backoff"`
	// Spec is the type's configuration: *demo.Config, *ingest.Config, … (see Types).
	Spec any `yaml:"-"`
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
	"demo": decodeAs[demo.Config],
	"http": decodeAs[ingest.Config],
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
func (s *Source) UnmarshalYAML(n *yaml.Node) error {
	var head struct {
		Name string `yaml:"name"`
		Type string `yaml:"type"`
	}
	if err := n.Decode(&head); err != nil {
		return err
	}
	where := fmt.Sprintf("line %d: source", n.Line)
	if head.Name != "" {
		where += fmt.Sprintf(" %q", head.Name)
	}
	dec, ok := decoders[head.Type]
	if !ok {
		if head.Type == "" {
			return fmt.Errorf("%s: type is required (one of %s)", where, strings.Join(Types(), ", "))
		}
		return fmt.Errorf("%s: unknown type %q (one of %s)", where, head.Type, strings.Join(Types(), ", "))
	}
	// A node's Decode is never strict, so decode the node's own text with a strict decoder.
	raw, err := yaml.Marshal(n)
	if err != nil {
		return err
	}
	c, spec, err := dec(raw)
	if err != nil {
		return fmt.Errorf("%s: %s", where, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	*s = Source{Name: c.Name, Type: c.Type, Required: c.Required, Backoff: c.Backoff, Spec: spec}
	return nil
}
