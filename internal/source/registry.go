package source

import (
	"fmt"
	"reflect"
	"sort"
)

// Type is one kind of source as the configuration names it (type: amqp): the settings its
// YAML decodes into, and how to make its adapter from them. Each adapter package registers its
// own type once, in its init function; internal/source/all imports every adapter package, and so
// registers every type, in one list. Nothing else names an adapter: the configuration decodes by
// the registered type, the server makes adapters through it, and what only some adapters do is
// asked of them through optional interfaces (Counted, Publisher).
type Type struct {
	name   string
	config reflect.Type // a struct: its zero value is the type's defaults
	new    func(config any) (Source, error)
}

// types holds every registered type. Register writes it from init functions only, which run
// one after the other before main, so every later read sees it complete and unchanging.
var types = map[string]Type{}

// Register makes the source type name known. A source configured with that type decodes its own
// settings, strictly, into a C (a struct whose zero value is the defaults; its Validate() []error
// method, if *C has one, reports every problem), and new makes the adapter from them. Call it
// from the adapter package's init; it panics if name is empty or taken, or C is not a struct.
func Register[C any, S Source](name string, new func(C) (S, error)) {
	c := reflect.TypeFor[C]()
	switch {
	case name == "":
		panic("source: Register with an empty type name")
	case c.Kind() != reflect.Struct:
		panic(fmt.Sprintf("source: type %q: its configuration %v is not a struct", name, c))
	}
	if _, dup := types[name]; dup {
		panic(fmt.Sprintf("source: type %q registered twice", name))
	}
	types[name] = Type{name: name, config: c, new: func(config any) (Source, error) {
		var spec C
		switch p := config.(type) {
		case nil:
		case *C:
			spec = *p
		default:
			return nil, fmt.Errorf("source type %q: a configuration of type %T, want *%v", name, config, c)
		}
		s, err := new(spec)
		if err != nil {
			return nil, err // not s: a nil *Adapter in a Source is not nil
		}
		return s, nil
	}}
}

// Lookup returns the registered type name.
func Lookup(name string) (Type, bool) {
	t, ok := types[name]
	return t, ok
}

// Types lists the registered type names, sorted.
func Types() []string {
	out := make([]string, 0, len(types))
	for n := range types {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Name is the type's name in the configuration and in GET /v1/sources.
func (t Type) Name() string { return t.name }

// Config is the struct type that a source's settings decode into.
func (t Type) Config() reflect.Type { return t.config }

// NewConfig returns a pointer to a new zero Config: the type's defaults, or a value to decode
// settings into.
func (t Type) NewConfig() any { return reflect.New(t.config).Interface() }

// New makes an adapter from settings: a pointer to the type's Config struct, or nil for its
// zero value, the defaults.
func (t Type) New(config any) (Source, error) { return t.new(config) }
