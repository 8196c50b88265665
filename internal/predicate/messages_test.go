package predicate

import "testing"

// The parser's and checker's messages people meet most read as sentences about the predicate,
// never as a dump of the grammar's tokens.
func TestPlainMessages(t *testing.T) {
	for src, want := range map[string]string{
		`body.n ==`:                   `the predicate ends where a value was expected (a field such as body.x, a number, a "string", or a parenthesis)`,
		`(body.n == 1`:                `a ')' is missing at the end`,
		`body.n == 1)`:                `this ')' closes no '('`,
		`body.n === 1`:                `'=' alone is not an operator: compare with ==`,
		`foo == 1`:                    `unknown name 'foo': a predicate reads source, key, headers, body, seq and time (a field of a JSON body is body.foo)`,
		`key == 5`:                    `== cannot compare a string with an int`,
		`size(body) + "a" == 1`:       `+ does not apply to (int, string)`,
		`body.n == 1 and body.m == 2`: `'and' is not an operator in CEL: write && for and, || for or, ! for not`,
		`body.n == 1 ;`:               `the character ';' has no meaning in a predicate`,
		`body.n in [1,2`:              `the predicate ends early: ']' or ',' was expected here`,
		`key.startsWith(1)`:           `startsWith(int) cannot be called on a string`,
		`body.n.matches(1)`:           `matches(int) cannot be called on a value of any type`,
		`body..n`:                     `cannot read '..' here`,
	} {
		_, err := Compile(src, Limits{})
		e, ok := err.(*Error)
		if !ok {
			t.Errorf("%s: %v, want an *Error", src, err)
			continue
		}
		if e.Message != want {
			t.Errorf("%s:\n got %s\nwant %s", src, e.Message, want)
		}
	}
}
