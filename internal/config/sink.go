package config

import (
	"fmt"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/streamux/streamux/internal/sink"
)

// Sink is one configured sink (API.md, "Sinks"): the fields every type has, and Spec, the
// type's own settings.
type Sink struct {
	Name string `yaml:"name"`
	Type string `yaml:"type"`
	// Where is the sink's predicate; empty delivers every message.
	Where string `yaml:"where"`
	// Sources are the sources it reads; empty: every source.
	Sources Names     `yaml:"source"`
	Batch   SinkBatch `yaml:"batch"`
	Retry   SinkRetry `yaml:"retry"`
	// Spec is the type's own configuration: a pointer to the struct its type registered
	// (sink.Type.Config), or nil for its zero value.
	Spec any `yaml:"-"`
	// problems are what decoding found, reported by Validate under the sink's index.
	problems []string
}

// SinkBatch is how many events one delivery carries.
type SinkBatch struct {
	// Max is the most events a delivery carries. Defaults to 1: one message per delivery.
	Max int `yaml:"max"`
	// Wait is how long a delivery that is not full waits for more. Defaults to 0.
	Wait time.Duration `yaml:"wait"`
}

// SinkRetry is how long a delivery is tried again.
type SinkRetry struct {
	// MaxAge is how long a batch is tried again before it is given up as a gap. Defaults to
	// 24h.
	MaxAge time.Duration `yaml:"max_age"`
}

// Names is a list of names written as a list or as one string.
type Names []string

// UnmarshalYAML takes a string or a list of strings.
func (n *Names) UnmarshalYAML(v *yaml.Node) error {
	if v.Kind == yaml.ScalarNode {
		*n = Names{v.Value}
		return nil
	}
	var list []string
	if err := v.Decode(&list); err != nil {
		return err
	}
	*n = list
	return nil
}

// sinkHead are the fields every sink type has; each type's struct is decoded beside it.
type sinkHead struct {
	Name    string    `yaml:"name"`
	Type    string    `yaml:"type"`
	Where   string    `yaml:"where"`
	Sources Names     `yaml:"source"`
	Batch   SinkBatch `yaml:"batch"`
	Retry   SinkRetry `yaml:"retry"`
}

// UnmarshalYAML decodes a sink by its type, strictly; a problem is kept for Validate, as a
// source's is.
func (s *Sink) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		*s = Sink{problems: []string{fmt.Sprintf("line %d: a sink is a mapping with a name and a type", n.Line)}}
		return nil
	}
	name, typ := scalar(n, "name"), scalar(n, "type")
	t, ok := sink.Lookup(typ)
	if !ok {
		*s = Sink{Name: name, Type: typ}
		if typ == "" {
			s.problems = []string{fmt.Sprintf("line %d: type is required (one of %s)", n.Line, strings.Join(sink.Types(), ", "))}
		} else {
			s.problems = []string{fmt.Sprintf("line %d: unknown type %q (one of %s)", line(n, "type"), typ, strings.Join(sink.Types(), ", "))}
		}
		return nil
	}
	var h sinkHead
	spec, problems := decodeInline(n, &h, t.Config())
	if problems != nil {
		*s = Sink{Name: name, Type: typ, problems: problems}
		return nil
	}
	*s = Sink{Name: h.Name, Type: h.Type, Where: h.Where, Sources: h.Sources, Batch: h.Batch, Retry: h.Retry, Spec: spec}
	return nil
}

// validateSinks adds every problem of the sinks; sources says which source names exist.
func (c *Config) validateSinks(add func(string, ...any), sources map[string]bool) {
	seen := map[string]bool{}
	for i, s := range c.Sinks {
		where := fmt.Sprintf("sinks[%d]", i)
		if s.Name != "" {
			where += " (" + s.Name + ")"
		}
		if seen[s.Name] && s.Name != "" {
			add("%s: name %q is used twice", where, s.Name)
		}
		seen[s.Name] = true
		for _, err := range s.check(sources) {
			add("%s: %v", where, err)
		}
	}
}

// CheckSink returns every problem of s, a sink to add to a server of this configuration (POST
// /v1/sinks), as validation would report it in the file.
func (c *Config) CheckSink(s Sink) []error {
	sources := map[string]bool{}
	for _, src := range c.Sources {
		sources[src.Name] = true
	}
	return s.check(sources)
}

// check returns s's own problems; sources says which source names exist.
func (s *Sink) check(sources map[string]bool) []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	switch {
	case s.Name == "":
		add("name is required")
	case !validSinkName.MatchString(s.Name):
		add("name must be 1-64 letters, digits, '_' or '-'")
	}
	for _, p := range s.problems {
		add("%s", p)
	}
	for _, src := range s.Sources {
		if !sources[src] {
			add("source %q is not configured", src)
		}
	}
	for _, f := range negativeFields(&s.Batch) {
		add("batch.%s", f)
	}
	for _, f := range negativeFields(&s.Retry) {
		add("retry.%s", f)
	}
	if v, ok := s.Spec.(interface{ Validate() []error }); ok {
		errs = append(errs, v.Validate()...)
	}
	return errs
}
