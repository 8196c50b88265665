package sink

import (
	"fmt"
	"io"
	"reflect"
	"sort"
)

// Env is what a destination takes from the server rather than from its sink's configuration.
type Env struct {
	// AllowPrivate lets a webhook reach loopback, private and link-local addresses
	// (limits.webhook_allow_private).
	AllowPrivate bool
	// Batch says that the sink delivers batches of more than one event (batch.max > 1), which
	// a destination may carry differently (a webhook's JSON array).
	Batch bool
	// Stdout is the console's output.
	Stdout io.Writer
}

// Type is one kind of sink as the configuration names it (type: webhook): the settings its
// YAML decodes into, and how to make its destination from them. Each destination package
// registers its type once, from init, as source types are registered (source.Register).
type Type struct {
	name   string
	config reflect.Type // a struct: its zero value is the type's defaults
	new    func(config any, env Env) (Destination, error)
}

// types holds every registered type, written from init functions only.
var types = map[string]Type{}

// Register makes the sink type name known: its settings decode, strictly, into a C (a struct;
// its Validate() []error method, if *C has one, reports every problem), and new makes the
// destination. It panics if name is empty or taken, or C is not a struct.
func Register[C any, D Destination](name string, new func(C, Env) (D, error)) {
	c := reflect.TypeFor[C]()
	switch {
	case name == "":
		panic("sink: Register with an empty type name")
	case c.Kind() != reflect.Struct:
		panic(fmt.Sprintf("sink: type %q: its configuration %v is not a struct", name, c))
	}
	if _, dup := types[name]; dup {
		panic(fmt.Sprintf("sink: type %q registered twice", name))
	}
	types[name] = Type{name: name, config: c, new: func(config any, env Env) (Destination, error) {
		var spec C
		switch p := config.(type) {
		case nil:
		case *C:
			spec = *p
		default:
			return nil, fmt.Errorf("sink type %q: a configuration of type %T, want *%v", name, config, c)
		}
		d, err := new(spec, env)
		if err != nil {
			return nil, err // not d: a nil pointer in a Destination is not nil
		}
		return d, nil
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

// Name is the type's name.
func (t Type) Name() string { return t.name }

// Config is the struct type a sink's settings decode into.
func (t Type) Config() reflect.Type { return t.config }

// New makes a destination from settings: a pointer to the type's Config, or nil for its zero
// value.
func (t Type) New(config any, env Env) (Destination, error) { return t.new(config, env) }
