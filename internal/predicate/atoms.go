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
	// (1 == 1.0), and a value of another type is not equal.
	Values []any
}

// String returns the atom as CEL source.
func (a Atom) String() string {
	var b strings.Builder
	b.WriteString(a.Var)
	for _, p := range a.Path {
		if isIdent(p) {
			b.WriteString("." + p)
		} else {
			b.WriteString("[" + strconv.Quote(p) + "]")
		}
	}
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
// key, headers.name or a path of field names into the body. It is empty when there are none,
// and for a predicate that matches everything. The slice is shared: do not modify it.
func (p *Predicate) Atoms() []Atom { return p.atoms }

// Decided reports whether the atoms are the whole predicate: every top-level && conjunct is an
// atom, so a message that passes every atom matches, and one that fails any does not (a
// missing field fails its atom, as it makes the predicate not match). An index that checks
// all the atoms need not evaluate such a predicate.
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

func atomValue(e celast.Expr) (any, bool) {
	if e.Kind() != celast.LiteralKind {
		return nil, false
	}
	switch v := e.AsLiteral().(type) {
	case types.String:
		return string(v), true
	case types.Int:
		return int64(v), true
	case types.Uint:
		return uint64(v), true
	case types.Double:
		return float64(v), true
	case types.Bool:
		return bool(v), true
	}
	return nil, false
}
