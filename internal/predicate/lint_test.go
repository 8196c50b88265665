package predicate

import (
	"testing"

	"github.com/streamux/streamux/internal/stream"
)

func TestComparisons(t *testing.T) {
	for _, tc := range []struct {
		src, body   string
		text, field string
		pos         int
		holds       string // "" for no mismatch
		warn        string
	}{
		{src: `body.n == "5"`, body: `{"n":5}`, text: `body.n == "5"`, field: "body.n", holds: "number",
			warn: `body.n is a number in 1 of the 1 messages checked, but it is compared with "5": in CEL a number never equals a string, so this comparison is always false (!= always true); did you mean body.n == 5?`},
		{src: `key == "a" && 5 != body.x.y`, body: `{"x":{"y":"5"}}`, text: `body.x.y != 5`, field: "body.x.y", pos: 14, holds: "string",
			warn: `body.x.y is a string in 1 of the 1 messages checked, but it is compared with 5: in CEL a string never equals a number, so this comparison is always false (!= always true); did you mean body.x.y == "5"?`},
		{src: `body["a-b"] in ["x", "y"]`, body: `{"a-b":1.5}`, text: `body["a-b"] in ["x", "y"]`, field: `body["a-b"]`, holds: "number",
			warn: `body["a-b"] is a number in 1 of the 1 messages checked, but it is compared with "x", "y": in CEL a number never equals a string, so this comparison is always false (!= always true)`},
		{src: `body.n == 5`, body: `{"n":5.5}`, text: `body.n == 5`, field: "body.n"},
		{src: `body.n == 5`, body: `{"m":5}`, text: `body.n == 5`, field: "body.n"},
		{src: `body.n == 5`, body: `{"n":null}`, text: `body.n == 5`, field: "body.n"},
		{src: `body.tags == "a"`, body: `{"tags":["a"]}`, text: `body.tags == "a"`, field: "body.tags", holds: "list",
			warn: `body.tags is a list in 1 of the 1 messages checked, but it is compared with "a": in CEL a list never equals a string, so this comparison is always false (!= always true)`},
	} {
		p, err := Compile(tc.src, Limits{})
		if err != nil {
			t.Fatalf("%s: %v", tc.src, err)
		}
		cs := p.Comparisons()
		if len(cs) != 1 {
			t.Fatalf("%s: %d comparisons, want 1", tc.src, len(cs))
		}
		c := cs[0]
		if c.Text != tc.text || c.Field != tc.field || c.Position != tc.pos {
			t.Errorf("%s: %q %q at %d, want %q %q at %d", tc.src, c.Text, c.Field, c.Position, tc.text, tc.field, tc.pos)
		}
		var in Input
		in.Reset(&stream.Message{Body: []byte(tc.body)})
		holds, bad := c.Mismatch(&in)
		if bad != (tc.holds != "") || holds != tc.holds {
			t.Errorf("%s on %s: mismatch %v %q, want %q", tc.src, tc.body, bad, holds, tc.holds)
			continue
		}
		if bad {
			if w := c.Warning(holds, 1, 1); w != tc.warn {
				t.Errorf("%s: warning\n%s\nwant\n%s", tc.src, w, tc.warn)
			}
		}
	}
	for _, src := range []string{`body.n == body.m`, `body.n == 1 || body.n == "1"`[:11] + ` && key == "a"`, `body.n in [1, "a"]`, `headers.x == "1"`, `body.n > 5`, ``} {
		p, err := Compile(src, Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Comparisons()) > 1 || src != `body.n == 1 && key == "a"` && len(p.Comparisons()) != 0 {
			t.Errorf("%s: comparisons %+v", src, p.Comparisons())
		}
	}
}
