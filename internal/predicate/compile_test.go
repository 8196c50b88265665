package predicate

import (
	"errors"
	"strings"
	"testing"
)

func TestCompileErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		src     string
		lim     Limits
		code    string
		pos     int
		message []string // substrings of the message
	}{
		// Syntax.
		{src: `key ==`, code: CodeInvalid, pos: 6, message: []string{"ends where a value was expected"}},
		{src: `key == "a" &&`, code: CodeInvalid, pos: 13, message: []string{"ends where a value was expected"}},
		{src: `key == "a`, code: CodeInvalid, pos: 7, message: []string{"not closed"}},
		{src: `key = "a"`, code: CodeInvalid, pos: 4, message: []string{"compare with =="}},
		{src: `(key == "a"`, code: CodeInvalid, pos: 11, message: []string{"')' is missing"}},
		{src: "key == \"a\" &&\n  ) ", code: CodeInvalid, pos: 16, message: []string{"')' where a value was expected"}},
		{src: `"é" == key &&`, code: CodeInvalid, pos: 13}, // runes, not bytes
		{src: "key == \"\xff\"", code: CodeInvalid, pos: 8, message: []string{"UTF-8"}},
		// Types and names.
		{src: `foo == 1`, code: CodeInvalid, pos: 0, message: []string{"unknown name 'foo'"}},
		{src: `key == "a" && colour == "red"`, code: CodeInvalid, pos: 14, message: []string{"colour"}},
		{src: `key == 1`, code: CodeInvalid, pos: 4, message: []string{"== cannot compare a string with an int"}},
		{src: `seq == "1"`, code: CodeInvalid, pos: 4, message: []string{"== cannot compare an int with a string"}},
		{src: `has(key)`, code: CodeInvalid, pos: 4, message: []string{"has()"}},
		{src: `key.nosuch("a")`, code: CodeInvalid, pos: 10, message: []string{"nosuch"}},
		{src: `key.matches("(")`, code: CodeInvalid, pos: 12, message: []string{"matches"}},
		{src: `time > timestamp("yesterday")`, code: CodeInvalid, pos: 17, message: []string{"timestamp"}},
		{src: `foo == 1 && bar == 2`, code: CodeInvalid, pos: 0, message: []string{"foo", "1 more error"}},
		// Not a bool.
		{src: `key + "x"`, code: CodeInvalid, pos: 0, message: []string{"bool", "string"}},
		{src: `  seq + 1`, code: CodeInvalid, pos: 2, message: []string{"bool", "int"}},
		{src: `// a comment` + "\n" + `headers`, code: CodeInvalid, pos: 13, message: []string{"bool", "map"}},
		{src: `time`, code: CodeInvalid, pos: 0, message: []string{"bool", "timestamp"}},
		// Length, in bytes; the position is in runes.
		{src: strings.Repeat("a", 4097), code: CodeTooLong, pos: 4096, message: []string{"4097", "4096"}},
		{src: strings.Repeat("é", 2049), code: CodeTooLong, pos: 2048, message: []string{"4098", "4096"}},
		{src: "ééé", lim: Limits{MaxBytes: 5}, code: CodeTooLong, pos: 2, message: []string{"6 bytes", "5 bytes"}},
		{src: `key == "abcdef"`, lim: Limits{MaxBytes: 10}, code: CodeTooLong, pos: 10, message: []string{"length limit is 10"}},
		// Cost.
		{src: `body.items.exists(a, body.items.exists(b, a == b))`, code: CodeTooCostly, pos: -1, message: []string{"cost limit is 100000"}},
		{src: `body.tags.exists(t, t.lowerAscii().contains("vip"))`, code: CodeTooCostly, pos: -1, message: []string{"100000"}},
		{src: `body.a.all(x, body.b.all(y, body.c.all(z, x + y == z)))`, code: CodeTooCostly, pos: -1, message: []string{"cost limit is 100000"}},
		{src: `body.s.replace("a", body.s).replace("b", body.s).size() > 0`, code: CodeTooCostly, pos: -1, message: []string{"100000"}},
		{src: `key.contains("x")`, lim: Limits{MaxCost: 10}, code: CodeTooCostly, pos: -1, message: []string{"cost limit is 10"}},
	}
	for _, c := range cases {
		p, err := Compile(c.src, c.lim)
		if err == nil {
			t.Errorf("Compile(%.60q) = %v, want an error", c.src, p)
			continue
		}
		var e *Error
		if !errors.As(err, &e) {
			t.Errorf("Compile(%.60q): error %T, want *Error", c.src, err)
			continue
		}
		if e.Code != c.code || e.Position != c.pos {
			t.Errorf("Compile(%.60q): code %s, position %d; want %s, %d (%s)", c.src, e.Code, e.Position, c.code, c.pos, e.Message)
		}
		for _, s := range c.message {
			if !strings.Contains(e.Message, s) {
				t.Errorf("Compile(%.60q): message %q does not say %q", c.src, e.Message, s)
			}
		}
		if !strings.Contains(e.Error(), e.Message) {
			t.Errorf("Error() = %q, missing the message", e.Error())
		}
	}
}

func TestCompileWithinLimits(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		src string
		lim Limits
	}{
		{strings.Repeat(" ", 4000) + `key == "a"`, Limits{}},
		{`key == "abcdef"`, Limits{MaxBytes: 15}},
		{`body.items.exists(a, body.items.exists(b, a == b))`, Limits{MaxCost: 100_000_000}},
		{`body.customer.tags.exists(t, t.startsWith("vip") || t == "gold")`, Limits{}},
		{`type(body.n) == int && string(body.n).contains("7")`, Limits{}},
		{`body.amount` /* dyn */, Limits{}},
	} {
		if _, err := Compile(c.src, c.lim); err != nil {
			t.Errorf("Compile(%.40q, %+v): %v", c.src, c.lim, err)
		}
	}
}
