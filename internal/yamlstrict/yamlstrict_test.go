package yamlstrict

import (
	"reflect"
	"slices"
	"testing"

	"go.yaml.in/yaml/v3"
)

type self struct{}

func (*self) UnmarshalYAML(*yaml.Node) error { return nil }

type inner struct {
	Size int `yaml:"size"`
}

type common struct {
	ID string `yaml:"id"`
}

type outer struct {
	common `yaml:",inline"`
	ByName map[string]inner `yaml:"by_name"`
	Name   string           `yaml:"name"`
	Items  []inner          `yaml:"items"`
	Nested *inner           `yaml:"nested"`
	Own    self             `yaml:"own"`
	Plain  int
	Skip   int `yaml:"-"`
}

func TestUnknownFields(t *testing.T) {
	src := `id: 1
by_name: {a: {size: 1, szie: 0}}
name: x
nmae: y
items:
  - size: 1
  - szie: 2
nested: {size: 3, big: true}
own: {anything: 1}
plain: 4
skip: 5
`
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatal(err)
	}
	got := UnknownFields(doc.Content[0], reflect.TypeFor[outer](), nil)
	want := []string{`line 2: unknown field "szie"`, `line 4: unknown field "nmae"`, `line 7: unknown field "szie"`, `line 8: unknown field "big"`, `line 11: unknown field "skip"`}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}

	// A check handles the nodes it wants, and the walk goes no deeper there.
	check := func(n *yaml.Node, t reflect.Type) ([]string, bool) {
		if t == reflect.TypeFor[inner]() {
			return []string{"inner"}, true
		}
		return nil, false
	}
	got = UnknownFields(doc.Content[0], reflect.TypeFor[outer](), check)
	want = []string{"inner", `line 4: unknown field "nmae"`, "inner", "inner", "inner", `line 11: unknown field "skip"`}
	if !slices.Equal(got, want) {
		t.Errorf("with a check: got %q, want %q", got, want)
	}
}

// Keys reached through an alias or a merge key are checked as yaml's decoding would read them.
func TestAliasesAndMerges(t *testing.T) {
	src := `base: &b {size: 1, sise: 2}
nested: *b
items:
  - <<: *b
    size: 3
  - <<: [{size: 4}, {bad: 5}]
loop: &l [*l]
`
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatal(err)
	}
	type loopy struct {
		Base   map[string]int `yaml:"base"`
		Nested inner          `yaml:"nested"`
		Items  []inner        `yaml:"items"`
		Loop   [][]int        `yaml:"loop"`
	}
	got := UnknownFields(doc.Content[0], reflect.TypeFor[loopy](), nil)
	want := []string{`line 1: unknown field "sise"`, `line 1: unknown field "sise"`, `line 6: unknown field "bad"`}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}
