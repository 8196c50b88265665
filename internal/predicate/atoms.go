package predicate

import (
	"strconv"
	"strings"

	celast "github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/operators"
	"github.com/google/cel-go/common/types"
)

// Atom is a test that every match of a predicate passes: a field (Var and Path) == a value, or
// in a list of values. An index over atoms can find the predicates that could match a message
// without evaluating the others.
type Atom struct {
	// Var is the variable: "source", "key", "headers" or "body".
	Var string
	// Path is, for headers, the header's name; for body, the field names from the root
	// (body.customer.tier is ["customer", "tier"]; an empty Path is the body itself); empty for
	// source and key.
	Path []string
	// Values are the constants the field must equal one of: one for ==, the list for in, none
	// for in [] (which never matches). Each is a string, int64, uint64, float64 or bool. For
	// a body field the comparison is CEL's: numbers are equal across int, uint and double
	// (1 == 1.0), and a value of another type is not equal. A number is an integer of magnitude
	// below 2^53 or a finite double with a fraction: beyond 2^53 CEL's == and in disagree, and
	// its == is not transitive, so no index could mirror it and such a test is no atom. Keys
	// gives the values as an index compares them.
	Values []any
}

// String returns the atom as CEL source.
func (a Atom) String() string {
	var b strings.Builder
	b.WriteString(a.Var)
	writePath(&b, a.Path)
	if len(a.Values) == 1 {
		return b.String() + " == " + literal(a.Values[0])
	}
	b.WriteString(" in [")
	for i, v := range a.Values {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(literal(v))
	}
	return b.String() + "]"
}

// writePath writes field names as CEL selections: .name, or ["name"] when name is no identifier.
func writePath(b *strings.Builder, path []string) {
	for _, p := range path {
		if isIdent(p) {
			b.WriteString("." + p)
		} else {
			b.WriteString("[" + strconv.Quote(p) + "]")
		}
	}
}

func literal(v any) string {
	switch v := v.(type) {
	case string:
		return strconv.Quote(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case uint64:
		return strconv.FormatUint(v, 10) + "u"
	case float64:
		s := strconv.FormatFloat(v, 'g', -1, 64)
		if !strings.ContainsAny(s, ".eEnN") {
			s += ".0"
		}
		return s
	case bool:
		return strconv.FormatBool(v)
	}
	return "null"
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		if c != '_' && (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (i == 0 || c < '0' || c > '9') {
			return false
		}
	}
	switch s {
	case "true", "false", "null", "in", "as", "break", "const", "continue", "else", "for", "function",
		"if", "import", "let", "loop", "package", "namespace", "return", "var", "void", "while":
		return false
	}
	return true
}

// Atoms lists the equality and membership tests that every match requires: the top-level &&
// conjuncts of the form field == constant or field in [constants], where field is source,
// key, headers.name or a path of field names into the body (no list indexes), and the
// constants are strings, bools or numbers that an index can compare exactly (see Atom.Values).
// Tests under ||, !, ?: or a comprehension, and tests against anything but literals, are not
// atoms. Atoms is empty when there are none, and for a predicate that matches everything. The
// slice is shared: do not modify it.
//
// An atom is true, false, or an error when its field cannot be read (a missing header or body
// field, a body that is not an object down to the path), except `in []`, which is false
// whatever the field: CEL's && then makes the predicate false if another conjunct is false,
// and an error otherwise. So a message that fails an atom
// never matches; one whose field is missing does not match either, but an index that skips it
// must still count the error that evaluation would have counted.
func (p *Predicate) Atoms() []Atom { return p.atoms }

// Decided reports whether the atoms are the whole predicate: every top-level && conjunct is an
// atom. Then the predicate is true when every atom is true, false when any atom is false, and
// an error otherwise (some atom's field is missing, as Match would report). An index that
// checks all the atoms need not evaluate such a predicate.
func (p *Predicate) Decided() bool { return p.decided }

// allAtoms reports whether every top-level && conjunct of e is an atom.
func allAtoms(e celast.Expr) bool {
	if e.Kind() == celast.CallKind && e.AsCall().FunctionName() == operators.LogicalAnd {
		args := e.AsCall().Args()
		return allAtoms(args[0]) && allAtoms(args[1])
	}
	return len(findAtoms(e)) == 1
}

// findAtoms walks the top-level && conjuncts of a checked expression.
func findAtoms(e celast.Expr) []Atom {
	if e.Kind() != celast.CallKind {
		return nil
	}
	call := e.AsCall()
	args := call.Args()
	switch call.FunctionName() {
	case operators.LogicalAnd:
		return append(findAtoms(args[0]), findAtoms(args[1])...)
	case operators.Equals:
		if a, ok := atomField(args[0]); ok {
			if v, ok := atomValue(args[1]); ok {
				a.Values = []any{v}
				return []Atom{a}
			}
		}
		if a, ok := atomField(args[1]); ok {
			if v, ok := atomValue(args[0]); ok {
				a.Values = []any{v}
				return []Atom{a}
			}
		}
	case operators.In:
		a, ok := atomField(args[0])
		if !ok || args[1].Kind() != celast.ListKind {
			return nil
		}
		a.Values = []any{}
		for _, el := range args[1].AsList().Elements() {
			v, ok := atomValue(el)
			if !ok {
				return nil
			}
			a.Values = append(a.Values, v)
		}
		return []Atom{a}
	}
	return nil
}

// atomField recognises source, key, headers.name and body paths of field names.
func atomField(e celast.Expr) (Atom, bool) {
	root, segs, ok := fastPath(e)
	if !ok {
		return Atom{}, false
	}
	switch root {
	case varSource, varKey:
		if len(segs) == 0 {
			return Atom{Var: root}, true
		}
	case varHeaders:
		if len(segs) == 1 && !segs[0].isIndex {
			return Atom{Var: root, Path: []string{segs[0].name}}, true
		}
	case varBody:
		path := make([]string, 0, len(segs))
		for _, s := range segs {
			if s.isIndex {
				return Atom{}, false
			}
			path = append(path, s.name)
		}
		return Atom{Var: root, Path: path}, true
	}
	return Atom{}, false
}

// atomValue is a literal that an index can compare exactly: one with a Key.
func atomValue(e celast.Expr) (any, bool) {
	if e.Kind() != celast.LiteralKind {
		return nil, false
	}
	var c any
	switch v := e.AsLiteral().(type) {
	case types.String:
		c = string(v)
	case types.Int:
		c = int64(v)
	case types.Uint:
		c = uint64(v)
	case types.Double:
		c = float64(v)
	case types.Bool:
		c = bool(v)
	default:
		return nil, false
	}
	if _, ok := constKey(c); !ok {
		return nil, false
	}
	return c, true
}
