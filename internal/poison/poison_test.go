package poison

import (
	"bytes"
	"strings"
	"testing"

	"github.com/valyala/fastjson"
)

func TestBytes(t *testing.T) {
	buf := []byte("a body that is done with")
	view := buf[2:6]
	Bytes(buf[:0]) // the whole capacity, not the length
	switch {
	case !Enabled && string(view) != "body":
		t.Fatalf("without the tag, Bytes changed the buffer: %q", buf)
	case Enabled && bytes.Contains(buf, []byte("body")):
		t.Fatalf("Bytes left the content: %q", buf)
	}
}

// Parser relies on how fastjson keeps what it parses: a copy in a buffer of its own, which the
// strings of its values view, reused by the next parse. A fastjson that did otherwise fails this
// test with the tag, and Parser must then be written anew.
func TestParser(t *testing.T) {
	for _, doc := range []string{
		`{"tier":"gold","n":1}`,
		"  \n\t{\"tier\" : \"gold\\u0021\", \"n\": 1}  ",
		`"gold"`,
		`{"tier":"gold","pad":"` + strings.Repeat("x", 70<<10) + `"}`, // beyond the prepared spaces
	} {
		var p fastjson.Parser
		in := []byte(doc)
		_, _ = p.ParseBytes(in) // warm: values of a parse that grew the cache are not reset
		v, err := p.ParseBytes(in)
		if err != nil {
			t.Fatal(err)
		}
		if o := v.Get("tier"); o != nil {
			v = o
		}
		s, err := v.StringBytes()
		if err != nil || !bytes.HasPrefix(s, []byte("gold")) {
			t.Fatalf("%.40q: %q, %v", doc, s, err)
		}
		Parser(&p, in)
		if string(in) != doc {
			t.Fatalf("Parser changed the document: %.40q", in)
		}
		if !Enabled {
			if !bytes.HasPrefix(s, []byte("gold")) {
				t.Fatalf("without the tag, Parser changed the parser's values: %q", s)
			}
			continue
		}
		if bytes.Contains(s, []byte("gold")) {
			t.Errorf("%.40q: a string of the parsed document still reads %q", doc, s)
		}
		if v.Type() == fastjson.TypeString {
			t.Errorf("%.40q: a value of the parsed document is still a string", doc)
		}
	}
}

// The hooks cost a hot path nothing with the tag either, where buffers are no larger than the
// prepared spaces: the router's allocation tests run in poison builds too.
func TestParserAllocatesNothing(t *testing.T) {
	var p fastjson.Parser
	doc := []byte(`{"tier":"gold","tags":["a","b"]}`)
	n := testing.AllocsPerRun(100, func() {
		if _, err := p.ParseBytes(doc); err != nil {
			t.Fatal(err)
		}
		Parser(&p, doc)
		Bytes(doc[:0:0])
	})
	if n != 0 {
		t.Errorf("%.1f allocations per document, want 0", n)
	}
}
