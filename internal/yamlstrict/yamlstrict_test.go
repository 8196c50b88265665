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
	want := []string{`line 2: unknown field "szie" in by_name.a (did you mean "size"?)`, `line 4: unknown field "nmae" (did you mean "name"?)`,
		`line 7: unknown field "szie" in items[1] (did you mean "size"?)`, `line 8: unknown field "big" in nested`, `line 11: unknown field "skip"`}
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
	want = []string{"inner", `line 4: unknown field "nmae" (did you mean "name"?)`, "inner", "inner", "inner", `line 11: unknown field "skip"`}
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
	want := []string{`line 1: unknown field "sise" in nested (did you mean "size"?)`, `line 1: unknown field "sise" in items[0] (did you mean "size"?)`,
		`line 6: unknown field "bad" in items[1]`}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// An unknown key names the known field it is likely a typo of, and only one that is near.
func TestSuggestion(t *testing.T) {
	type config struct {
		Listen  string `yaml:"listen"`
		Sources []int  `yaml:"sources"`
		Sinks   []int  `yaml:"sinks"`
		MaxAge  int    `yaml:"max_age"`
		History int    `yaml:"history"`
		TLS     int    `yaml:"tls"`
	}
	for _, tc := range []struct{ key, want string }{
		{"sorces", "sources"},   // a letter left out
		{"sourcess", "sources"}, // one too many
		{"lisetn", "listen"},    // two swapped
		{"Listen", "listen"},    // the case
		{"sink", "sinks"},       // the singular
		{"age", "max_age"},      // the end of a name
		{"histroy", "history"},
		{"tsl", "tls"},
		{"ls", "tls"},         // one letter left out of three
		{"nothing", ""},       // near none
		{"sauces", "sources"}, // a third of the letters changed
		{"sorted", ""},        // more than a third
		{"xyz", ""},
	} {
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(tc.key+": 1\n"), &doc); err != nil {
			t.Fatal(err)
		}
		got := UnknownFields(doc.Content[0], reflect.TypeFor[config](), nil)
		want := `line 1: unknown field "` + tc.key + `"`
		if tc.want != "" {
			want += ` (did you mean "` + tc.want + `"?)`
		}
		if len(got) != 1 || got[0] != want {
			t.Errorf("%s: got %q, want %q", tc.key, got, want)
		}
	}
}
