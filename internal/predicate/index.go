package predicate

import (
	"math"
	"slices"
	"strings"
)

// What an index of atoms needs: a Key for each value an atom lists, and a BodyField that reads a
// message's value at an atom's body path and gives its Key, so that a map lookup finds the atoms
// that the value passes.
//
// CEL's == is heterogeneous over numbers and rounds an int to a double when it compares the
// two, so it is not transitive beyond 2^53 (9007199254740993 == 9007199254740992.0 and
// 9007199254740992 == 9007199254740992.0, yet the ints differ), and no map key can mirror it
// there; `in` over constants (cel-go's set membership) hashes exact types instead, which agrees
// with == only where conversions are lossless. An atom therefore holds only numbers that are
// integers of magnitude below 2^53, whatever their CEL type (1, 1u, 1.0), or finite doubles with
// a fraction (1.5). For those, and for the body values they meet, both == and `in` are
// equality of Keys:
//
//   - an integer n below 2^53 (int, uint or double) equals exactly the ints n, the uints n and
//     the doubles n (-0.0 is 0): its Key is n's;
//   - a double with a fraction equals exactly the doubles with its bits: its Key is its bits;
//   - any other number (an int or double of magnitude 2^53 or more, ±Inf) equals none of those
//     constants, so it has no Key; nor do null, lists and maps, which equal no string, bool or
//     number;
//   - strings and bools equal their own kind's same value.

// maxExact bounds the integers whose Key is their value: below it, every int, uint and double
// converts to the others without loss.
const maxExact = 1 << 53

// Key is a value as an index of atoms compares it: a field's value passes an atom exactly when
// the value's Key is one of the atom's Keys. Keys are comparable, for map keys. A Key made from a
// message (BodyField.Key) may view the message's bytes: it is valid until the Input is Reset.
type Key struct {
	kind keyKind
	n    uint64 // an integer's value, a double's bits, a bool as 0 or 1
	s    string
}

type keyKind uint8

const (
	keyNone keyKind = iota
	keyString
	keyBool
	keyInt    // an integer of magnitude below 2^53, whatever its CEL type
	keyDouble // a finite double with a fraction
)

// indexKey is v's Key; ok is false when no atom's value can equal v.
func indexKey(v val) (k Key, ok bool) {
	switch v.k {
	case kString:
		return Key{kind: keyString, s: v.s}, true
	case kBool:
		if v.b {
			return Key{kind: keyBool, n: 1}, true
		}
		return Key{kind: keyBool}, true
	case kInt:
		if v.i > -maxExact && v.i < maxExact {
			return Key{kind: keyInt, n: uint64(v.i)}, true
		}
	case kUint:
		if v.u < maxExact {
			return Key{kind: keyInt, n: v.u}, true
		}
	case kDouble:
		f := v.f
		switch {
		case math.IsNaN(f) || math.IsInf(f, 0):
		case math.Trunc(f) != f:
			return Key{kind: keyDouble, n: math.Float64bits(f)}, true
		case f > -maxExact && f < maxExact:
			return Key{kind: keyInt, n: uint64(int64(f))}, true // -0.0 is 0
		}
	}
	return Key{}, false
}

// constKey is the Key of an atom's value: a string, int64, uint64, float64 or bool.
func constKey(c any) (Key, bool) {
	switch c := c.(type) {
	case string:
		return indexKey(val{k: kString, s: c})
	case bool:
		return indexKey(val{k: kBool, b: c})
	case int64:
		return indexKey(val{k: kInt, i: c})
	case uint64:
		return indexKey(val{k: kUint, u: c})
	case float64:
		return indexKey(val{k: kDouble, f: c})
	}
	return Key{}, false
}

// Keys returns the Keys of the atom's values, without repeats (1 and 1.0 have one Key): a value
// passes the atom exactly when its Key is among them. There are none for `in []`, which nothing
// passes.
func (a Atom) Keys() []Key {
	keys := make([]Key, 0, len(a.Values))
	for _, v := range a.Values {
		k, ok := constKey(v)
		if !ok {
			// Atoms hold only values with Keys; findAtoms sees to it.
			panic("predicate: atom value without a key")
		}
		if !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	return keys
}

// BodyField reads one path of field names into message bodies (an Atom's Path, for Var
// "body"), for an index that files predicates under their body atoms. It reads through the
// Input, so the body is parsed once per message for the index and the predicates alike, and the
// value is kept for the predicates that read the same path. A BodyField is immutable and safe
// for concurrent use, each goroutine with its own Input.
type BodyField struct {
	path []string
	get  valFn
}

// NewBodyField returns the reader of body.path[0].path[1]…; an empty path reads the body itself.
func NewBodyField(path []string) *BodyField {
	segs := make([]segment, len(path))
	for i, name := range path {
		segs[i] = segment{name: name, missing: missingKey(name)}
	}
	return &BodyField{path: append([]string(nil), path...), get: pathOperand(varBody, segs).get}
}

// String returns the path as CEL source: body.customer.tier.
func (f *BodyField) String() string {
	var b strings.Builder
	b.WriteString(varBody)
	writePath(&b, f.path)
	return b.String()
}

// Key reads the field on the message that in shows.
//
// When the field cannot be read (the body is not an object down to it, a name is missing, the
// JSON is nested too deep), err is the error that CEL evaluation meets there: every atom on the
// field fails with it, so a predicate with such an atom does not match, and fails (counts as a
// predicate error) unless another of its && conjuncts is false. Otherwise ok says whether the
// value has a Key; when it has none (null, a list, a map, a number of magnitude 2^53 or more), it
// passes no atom, and a predicate with an atom on the field is false without error.
//
// Key allocates nothing. k may view the message's bytes: it is valid until in is Reset.
func (f *BodyField) Key(in *Input) (k Key, ok bool, err error) {
	if in == nil || in.msg == nil {
		return Key{}, false, errNoMessage
	}
	v, err := f.get(in)
	if err != nil {
		return Key{}, false, err
	}
	k, ok = indexKey(v)
	return k, ok, nil
}
