package predicate

import (
	"regexp"
	"strings"
)

// CEL's parser speaks in its grammar's words ("mismatched input '<EOF>' expecting {'[', '{',
// …, IDENTIFIER}") and its checker in overload names ("'_==_' applied to '(string, int)'").
// plain rewrites the messages people meet most into a sentence about the predicate; the
// position beside it says where. A message it does not know is kept as CEL wrote it.
var (
	reMismatched  = regexp.MustCompile(`^Syntax error: (?:mismatched|extraneous) input '(.*)' expecting (.*)$`)
	reMissing     = regexp.MustCompile(`^Syntax error: missing '(.*)' at '(.*)'$`)
	reToken       = regexp.MustCompile(`^Syntax error: token recognition error at: '(.*)'$`)
	reNoViable    = regexp.MustCompile(`^Syntax error: no viable alternative at input '(.*)'$`)
	reUndeclared  = regexp.MustCompile(`^undeclared reference to '(.*)' \(in container '.*'\)$`)
	reNoOverload  = regexp.MustCompile(`^found no matching overload for '(.*)' applied to '(.*)'$`)
	reOverloadArg = regexp.MustCompile(`^\((.*)\)$`)
	reMemberArgs  = regexp.MustCompile(`^(.*)\.\((.*)\)$`)
)

// operatorNames are CEL's internal names of the operators, as a predicate writes them.
var operatorNames = map[string]string{
	"_==_": "==", "_!=_": "!=", "_<_": "<", "_<=_": "<=", "_>_": ">", "_>=_": ">=",
	"_+_": "+", "_-_": "-", "_*_": "*", "_/_": "/", "_%_": "%", "_&&_": "&&", "_||_": "||",
	"!_": "!", "-_": "unary -", "_[_]": "[ ]", "@in": "in", "_?_:_": "?:",
}

func plain(msg string) string {
	if m := reMismatched.FindStringSubmatch(msg); m != nil {
		got, want := m[1], m[2]
		operand := strings.Contains(want, "IDENTIFIER")
		switch {
		case got == "<EOF>" && operand:
			return "the predicate ends where a value was expected (a field such as body.x, a number, a \"string\", or a parenthesis)"
		case got == "<EOF>":
			return "the predicate ends early: " + expecting(want) + " was expected here"
		case operand:
			return "'" + got + "' where a value was expected (a field such as body.x, a number, a \"string\", or a parenthesis)"
		case want == "<EOF>" && (got == "and" || got == "or" || got == "not"):
			return "'" + got + "' is not an operator in CEL: write && for and, || for or, ! for not"
		case want == "<EOF>" && got == ")":
			return "this ')' closes no '('"
		case want == "<EOF>":
			return "'" + got + "' after a complete expression: join conditions with && or ||"
		}
		return "'" + got + "' where " + expecting(want) + " was expected"
	}
	if m := reMissing.FindStringSubmatch(msg); m != nil {
		if m[2] == "<EOF>" {
			return "a '" + m[1] + "' is missing at the end"
		}
		return "a '" + m[1] + "' is missing before '" + m[2] + "'"
	}
	if m := reToken.FindStringSubmatch(msg); m != nil {
		t := m[1]
		switch {
		case strings.HasPrefix(t, "="):
			return "'=' alone is not an operator: compare with =="
		case strings.HasPrefix(t, "'") || strings.HasPrefix(t, `"`):
			return "a string that is not closed: its closing quote is missing"
		}
		return "the character '" + t + "' has no meaning in a predicate"
	}
	if m := reNoViable.FindStringSubmatch(msg); m != nil {
		return "cannot read '" + strings.TrimSpace(m[1]) + "' here"
	}
	if m := reUndeclared.FindStringSubmatch(msg); m != nil {
		return "unknown name '" + m[1] + "': a predicate reads source, key, headers, body, seq and time (a field of a JSON body is body." + m[1] + ")"
	}
	if m := reNoOverload.FindStringSubmatch(msg); m != nil {
		fn, args := m[1], m[2]
		if op, ok := operatorNames[fn]; ok {
			if a := reOverloadArg.FindStringSubmatch(args); a != nil {
				if l, r, two := strings.Cut(a[1], ", "); two && strings.Contains("== != < <= > >=", op) {
					return op + " cannot compare " + article(l) + " with " + article(r)
				}
				return op + " does not apply to (" + a[1] + ")"
			}
			return op + " does not apply to " + args
		}
		if a := reMemberArgs.FindStringSubmatch(args); a != nil {
			on := a[1]
			if on == "dyn" {
				on = "value of any type" // what the body's fields are to the checker
			}
			return fn + "(" + a[2] + ") cannot be called on " + article(on)
		}
		return fn + " does not take " + args
	}
	return msg
}

// expecting turns an ANTLR expected set ({']', ','} or ')') into words: ']' or ','.
func expecting(set string) string {
	set = strings.TrimSuffix(strings.TrimPrefix(set, "{"), "}")
	parts := strings.Split(set, ", ")
	if len(parts) == 1 {
		return parts[0]
	}
	return strings.Join(parts[:len(parts)-1], ", ") + " or " + parts[len(parts)-1]
}

// article puts a or an before a type's name.
func article(name string) string {
	if name != "" && strings.ContainsRune("aeiou", rune(name[0])) {
		return "an " + name
	}
	return "a " + name
}
